"""Pure rules of the gateway's browser-facing checks (no I/O): which Host names the gateway answers
to (against DNS rebinding), whether a state-changing request comes from another site (against
cross-site request forgery) and whether its body is JSON.

The cross-site rule is Go 1.25's net/http CrossOriginProtection: safe methods always pass;
`Sec-Fetch-Site` (sent by every browser since 2023) must be `same-origin` or `none`; without it an
`Origin` must name this host; a request with neither header is not from a browser (curl, scripts)
and passes. Origins in GATEWAY_CORS_ORIGINS are trusted. Each function returns None when the
request may go on, else the reason it is refused."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def host_name(host_header: str) -> str:
    """'Example.COM:8000' -> 'example.com', '[::1]:8000' -> '::1' (no port, lower case, no final dot)."""
    h = host_header.strip().lower()
    if h.startswith("["):
        h = h[1:].partition("]")[0]
    elif h.count(":") == 1:
        h = h.partition(":")[0]
    return h.rstrip(".")


def default_allowed_hosts(bind_host: str) -> list[str]:
    """Loopback names, plus the address the gateway is bound to when it is a specific one."""
    hosts = list(LOOPBACK_HOSTS)
    bound = host_name(bind_host)
    if bound not in _ANY_ADDRESS and bound not in hosts:
        hosts.append(bound)
    return hosts


def host_refusal(host_header: str | None, allowed: Iterable[str]) -> str | None:
    allowed = list(allowed)
    if "*" in allowed:
        return None
    if not host_header:
        return "the request has no Host header"
    name = host_name(host_header)
    for pattern in allowed:
        p = pattern.lower()
        if name == p or (p.startswith("*.") and name.endswith(p[1:])):
            return None
    return f"Host {name!r} is not one of this gateway's names (GATEWAY_ALLOWED_HOSTS: {', '.join(allowed)})"


def cross_site_refusal(
    method: str,
    host_header: str | None,
    origin: str | None,
    sec_fetch_site: str | None,
    trusted_origins: Iterable[str],
) -> str | None:
    if method.upper() in SAFE_METHODS:
        return None
    if origin is not None and origin.rstrip("/") in {o.rstrip("/") for o in trusted_origins}:
        return None
    if sec_fetch_site is not None:
        if sec_fetch_site.lower() in ("same-origin", "none"):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {sec_fetch_site}, Origin: {origin or '-'})"
    if origin is None:
        return None  # not a browser: curl, scripts, other services
    parts = urlsplit(origin)
    if parts.netloc and host_header and parts.netloc.lower() == host_header.strip().lower():
        return None
    return f"cross-site request refused (Origin {origin} is not this gateway, {host_header or '-'})"


def media_type_refusal(method: str, content_type: str | None) -> str | None:
    """State-changing requests carry JSON or no body type at all (a bodyless curl -X POST); HTML
    forms can only send urlencoded, multipart or text/plain bodies, so those are refused."""
    if method.upper() in SAFE_METHODS or content_type is None:
        return None
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return None
    return f"request body must be application/json, not {media or 'empty'!r}"
