"""Talking to the upstream services: JSON commands passed through intact (control client), and
merged.csv streamed chunk by chunk (a raw connection per download, services/gateway/relay.py; the downloads
client for an https:// merger, services/gateway/downloads.py). Upstream failures become UpstreamError."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping

import httpx
from starlette.responses import Response

from services.gateway import relay
from services.gateway.downloads import RelayResponse, Slot
from services.gateway.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout, UpstreamUnreachable

log = logging.getLogger(__name__)

#: Request headers a client may send that the merger understands (conditional and range requests).
MERGED_REQUEST_HEADERS = ("range", "if-range", "if-none-match", "if-modified-since")
#: Response headers of the merger passed back to the client.
MERGED_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "cache-control",
    "content-disposition",
    "retry-after",
)
#: Response headers of the generator passed back with its JSON.
COMMAND_RESPONSE_HEADERS = ("content-type", "location", "retry-after")
#: merged.csv is relayed in chunks of this size: fewer, larger writes (the socket reads alone can be
#: a few KiB each), memory bounded by one chunk per download.
STREAM_CHUNK_BYTES = 256 * 1024


def to_upstream_error(e: httpx.HTTPError, component: str, url: str, timeout_s: float) -> UpstreamError:
    if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout):
        return UpstreamUnreachable(f"{component} is unreachable at {url}", component=component)
    if isinstance(e, httpx.TimeoutException):
        return UpstreamTimeout(f"{component} did not answer within {timeout_s:g}s ({url})", component=component)
    return UpstreamBadResponse(f"{component} gave a broken answer ({type(e).__name__}) at {url}", component=component)


def _pick(headers: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: headers[n] for n in names if n in headers}


async def call_json(
    client: httpx.AsyncClient,
    component: str,
    method: str,
    url: str,
    *,
    body: bytes | None,
    timeout_s: float,
) -> httpx.Response:
    """Send `body` (the client's bytes, unchanged) and return the upstream's answer."""
    headers = {"content-type": "application/json"} if body is not None else {}
    try:
        resp = await client.request(method, url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as e:
        err = to_upstream_error(e, component, url, timeout_s)
        log.warning("upstream call failed", extra={"component": component, "url": url, "error": err.message})
        raise err from None
    if resp.status_code >= 500:
        log.warning("upstream error", extra={"component": component, "url": url, "status": resp.status_code})
    if resp.status_code == 401:
        log.error("internal secret refused", extra={"component": component, "url": url})
        raise refused_secret(component)
    return resp


def refused_secret(component: str) -> UpstreamBadResponse:
    """The upstream answered 401: the gateway's internal secret is not its (a setup error, not the
    caller's; a 401 passed on would read as "your API key is wrong")."""
    return UpstreamBadResponse(
        f"{component} refused the gateway's internal secret: give both the same DEVICESTREAM_INTERNAL_SECRET",
        component=component,
    )


def answer_as_is(resp: httpx.Response) -> Response:
    """The upstream's answer unchanged: same status code, same body, same content type."""
    return Response(content=resp.content, status_code=resp.status_code, headers=command_headers(resp))


def command_headers(resp: httpx.Response) -> dict[str, str]:
    return _pick(resp.headers, COMMAND_RESPONSE_HEADERS)


async def stream_merged(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    send_timeout_s: float,
    slot: Slot,
    upstream_headers: Mapping[str, str] | None = None,
) -> Response:
    """GET or HEAD merged.csv from the merger and stream it back chunk by chunk (never buffered
    whole), with the status (200/206/304/404/416) and the caching and range headers intact.
    `slot` (a download place) is released however the download ends; a client that takes no
    chunk for `send_timeout_s` is dropped. A plain http:// merger is relayed over a raw connection
    (services/gateway/relay.py: large reads, the fast path); an https:// one through `client` (httpx).
    `upstream_headers` (the internal secret) go along on the raw path; httpx adds its own."""
    headers = {**_pick(request_headers, MERGED_REQUEST_HEADERS), "accept-encoding": "identity"}
    if url.startswith("http://"):
        try:
            answer = await relay.open_answer(
                method,
                url,
                {**(upstream_headers or {}), **headers},
                connect_timeout_s=connect_timeout_s,
                read_timeout_s=read_timeout_s,
            )
        except BaseException:
            slot.release()
            raise
        return await _relayed(
            answer.status_code,
            answer.headers,
            answer.body(read_timeout_s),
            answer.close,
            method,
            send_timeout_s,
            slot,
        )
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    req = client.build_request(method, url, headers=headers, timeout=timeout)
    try:
        resp = await client.send(req, stream=True)
    except httpx.HTTPError as e:
        slot.release()
        raise to_upstream_error(e, "merger", url, connect_timeout_s) from None
    except BaseException:
        slot.release()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.aiter_raw(chunk_size=STREAM_CHUNK_BYTES):
                yield chunk
        except httpx.HTTPError as e:
            # Headers are sent already: all we can do is end the response short (the client sees
            # fewer bytes than Content-Length) and say so in the log.
            log.warning("merged.csv stream broke off", extra={"url": url, "error": repr(e)})

    return await _relayed(resp.status_code, resp.headers, body(), resp.aclose, method, send_timeout_s, slot)


async def _relayed(
    status_code: int,
    upstream_headers: Mapping[str, str],
    chunks: AsyncIterator[bytes],
    close_upstream: Callable[[], Awaitable[None] | None],
    method: str,
    send_timeout_s: float,
    slot: Slot,
) -> Response:
    """The client's answer to the merger's (`status_code`, headers, body `chunks`): empty for HEAD,
    204 and 304, streamed otherwise; `close_upstream` (sync or async) and the slot release run
    however it ends. A 401 is the gateway's setup error, not the client's."""

    async def close() -> None:
        try:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
            if (done := close_upstream()) is not None:
                await done  # also when the client went away or stalled mid-download
        finally:
            slot.release()

    out_headers = _pick(upstream_headers, MERGED_RESPONSE_HEADERS)
    if status_code == 401:
        await close()
        raise refused_secret("merger")
    if method == "HEAD" or status_code in (204, 304):
        await close()
        # Response() would compute its own content-length for an empty body; keep the merger's.
        r = Response(status_code=status_code)
        r.raw_headers = [(k.encode(), v.encode()) for k, v in out_headers.items()]
        return r
    return RelayResponse(
        chunks, send_timeout_s=send_timeout_s, on_close=close, status_code=status_code, headers=out_headers
    )


async def fetch_tail(
    client: httpx.AsyncClient, url: str, *, window_bytes: int, timeout_s: float
) -> tuple[bytes, int | None]:
    """The last `window_bytes` of merged.csv (all of it when smaller), read with a HEAD for the size
    and one byte Range: the cost does not grow with the file. Returns (bytes, file size); (b"", None)
    before anything is merged. services/gateway/tail.py finds the rows in them."""
    try:
        head = await client.head(url, timeout=timeout_s)
        if head.status_code == 404:
            return b"", None
        if head.status_code == 401:
            raise refused_secret("merger")
        if head.status_code != 200:
            raise UpstreamBadResponse(f"merger answered HEAD {url} with {head.status_code}", component="merger")
        size = int(head.headers.get("content-length", "0"))
        if size == 0:
            return b"", 0
        start = max(0, size - window_bytes)
        resp = await client.get(
            url,
            headers={"range": f"bytes={start}-{size - 1}", "accept-encoding": "identity"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as e:
        raise to_upstream_error(e, "merger", url, timeout_s) from None
    except ValueError:
        raise UpstreamBadResponse("merger sent an invalid Content-Length", component="merger") from None
    if resp.status_code not in (200, 206):  # 200: a merger that ignores Range sent the whole (small) file
        raise UpstreamBadResponse(f"merger answered a Range request with {resp.status_code}", component="merger")
    return resp.content, size
