"""The gateway against a hostile web page: cross-site form posts and DNS rebinding are refused by
a real gateway process, while curl-style clients and same-origin browser requests pass (the
dashboard itself runs in Chromium in test_dashboard.py). The rules are unit-tested below."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.gateway.origin import (
    cross_site_refusal,
    default_allowed_hosts,
    host_name,
    host_refusal,
    media_type_refusal,
)
from tests.documents import generator_status, status_of
from tests.gateway.conftest import Stack, make_stack, start_stack

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def gw(tmp_path: Path, kafka: object) -> Iterator[Stack]:
    yield from start_stack(make_stack(tmp_path, kafka), "generator", "gateway")


@pytest.mark.integration
def test_cross_site_form_post_is_refused(gw: Stack) -> None:
    u = gw.url
    start = httpx.post(f"{u}/generator/start", json={"rate": 1})
    assert start.status_code == 202, start.text
    # what a browser sends for <form method=post action=http://127.0.0.1:8000/generator/stop> on evil.example
    r = httpx.post(
        f"{u}/generator/stop",
        content=b"",
        headers={**FORM, "origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "cross_site" and "cross-site" in r.json()["detail"]
    # an older browser without Sec-Fetch-Site: the foreign Origin alone is enough
    r = httpx.post(f"{u}/generator/stop", headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "cross_site"
    # same-site is not same-origin (another port on localhost is another app)
    r = httpx.post(f"{u}/generator/stop", headers={"origin": "http://127.0.0.1:1", "sec-fetch-site": "same-site"})
    assert r.status_code == 403
    # a form body without any browser header: still not JSON
    r = httpx.post(f"{u}/generator/stop", content=b"a=b", headers=FORM)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", r.text
    r = httpx.post(f"{u}/generator/start", content=b'{"rate": 1}', headers={"content-type": "text/plain"})
    assert r.status_code == 415, r.text
    assert generator_status(gw.generator_url).state == "running"

    # the same page's own requests (the dashboard) and curl pass
    same = {"origin": u, "sec-fetch-site": "same-origin"}
    r = httpx.put(f"{u}/generator/rate", json={"rate": 2}, headers=same)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{u}/generator/stop")  # curl -X POST: no body, no Origin
    assert r.status_code == 200 and status_of(r).state == "stopped", r.text
    # reads are not state-changing: a cross-site GET is answered (the browser keeps it from the page: no CORS)
    assert httpx.get(f"{u}/generator/status", headers={"sec-fetch-site": "cross-site"}).status_code == 200


@pytest.mark.integration
def test_dns_rebinding_is_refused(gw: Stack) -> None:
    u = gw.url
    # evil.example resolved to 127.0.0.1 after the page loaded: same origin for the browser, but Host says so
    for method, path in (("GET", "/status"), ("GET", "/merged.csv"), ("POST", "/generator/stop"), ("GET", "/")):
        r = httpx.request(method, f"{u}{path}", headers={"host": f"evil.example:{gw.gw_port}"})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"] == "host_not_allowed" and "evil.example" in r.json()["detail"]
    for host in (f"localhost:{gw.gw_port}", f"127.0.0.1:{gw.gw_port}", "localhost"):
        assert httpx.get(f"{u}/generator/status", headers={"host": host}).status_code == 200, host
    # liveness answers whatever the name (container healthchecks), and so do metrics (Prometheus
    # scrapes gateway:8000 in compose.yaml)
    assert httpx.get(f"{u}/healthz", headers={"host": "gateway:8000"}).status_code == 200
    assert httpx.get(f"{u}/metrics", headers={"host": "gateway:8000"}).status_code == 200


@pytest.mark.integration
def test_configured_hosts(tmp_path: Path, kafka: object) -> None:
    with make_stack(tmp_path, kafka, GATEWAY_ALLOWED_HOSTS="pipeline.lan,*.corp.example") as s:
        s.start_all("generator", "gateway")
        ok = httpx.get(f"{s.url}/generator/status", headers={"host": "a.corp.example:8000"})
        assert ok.status_code == 200
        assert httpx.get(f"{s.url}/generator/status", headers={"host": "localhost"}).status_code == 403


def test_host_rules() -> None:
    assert host_name("Example.COM:8000") == "example.com"
    assert host_name("[::1]:8000") == "::1" and host_name("::1") == "::1" and host_name("a.b.") == "a.b"
    assert default_allowed_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    assert default_allowed_hosts("192.168.1.5")[-1] == "192.168.1.5"
    allowed = default_allowed_hosts("127.0.0.1")
    assert host_refusal("localhost:8000", allowed) is None and host_refusal("[::1]:1", allowed) is None
    assert "evil.example" in (host_refusal("evil.example", allowed) or "")
    assert host_refusal(None, allowed) and host_refusal("anything", ["*"]) is None
    assert host_refusal("x.corp", ["*.corp"]) is None and host_refusal("corp", ["*.corp"])
    assert host_refusal("xcorp", ["*.corp"])


def test_cross_site_rules() -> None:
    def refused(method: str, origin: str | None, site: str | None, trusted: tuple[str, ...] = ()) -> bool:
        return cross_site_refusal(method, "127.0.0.1:8000", origin, site, trusted) is not None

    assert not refused("GET", "http://evil.example", "cross-site")
    assert not refused("POST", None, None)  # curl
    assert not refused("POST", "http://127.0.0.1:8000", "same-origin")
    assert not refused("POST", None, "none")  # typed into the address bar / bookmark
    assert not refused("POST", "http://127.0.0.1:8000", None)
    assert refused("POST", "http://evil.example", "cross-site")
    assert refused("PUT", None, "same-site")
    assert refused("POST", "http://evil.example", None) and refused("POST", "null", None)
    assert refused("POST", "http://127.0.0.1:9999", None)
    assert not refused("POST", "http://dash.example", "cross-site", ("http://dash.example",))
    assert media_type_refusal("POST", None) is None
    assert media_type_refusal("POST", "application/json; charset=utf-8") is None
    assert media_type_refusal("POST", "application/merge-patch+json") is None
    for ct in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"):
        assert media_type_refusal("POST", ct), ct
    assert media_type_refusal("GET", "text/plain") is None
