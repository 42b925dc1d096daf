"""merged.csv (and merged.parquet) relayed from the merger over one raw HTTP/1.1 connection per
download: the merger's bytes are read with large reads (READ_BYTES) straight into a buffer, framed by
httptools (the C parser uvicorn uses: Content-Length or chunked), and handed to the client's
connection as they come. httpx reads 64 KiB at a time and passes every piece through h11 and its
chunker: at the merger's sendfile speed the event loop spent its time there (bench stage gateway).

`Connection: close` on every request: nothing is pooled, so a download that ends early (client gone
or stalled, upstream broken) closes its merger connection, and the merger stops sending. Only plain
http:// upstreams; services/gateway/upstream.py keeps httpx for an https:// merger URL."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from services.gateway.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnreachable

log = logging.getLogger(__name__)

#: One read from the merger's socket takes up to this much (memory: one buffer per download).
READ_BYTES = 1024 * 1024
#: Request headers the relay sets itself (a caller's are not sent twice).
_OWN_HEADERS = frozenset({"host", "connection", "accept-encoding", "content-length", "transfer-encoding"})
#: A status line and headers longer than this are not the merger's.
MAX_HEAD_BYTES = 64 * 1024


@dataclass
class _Parsed:
    """What httptools reported so far (its callbacks fill it)."""

    headers: dict[str, str] = field(default_factory=dict)
    head_done: bool = False
    complete: bool = False
    body: list[bytes] = field(default_factory=list)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def take(self) -> bytes:
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        return data


class RawAnswer:
    """The merger's answer: status and headers read, the body still on the socket. Iterate `body()`
    once; `close()` (idempotent) whatever happened."""

    def __init__(self, sock: socket.socket, parser: httptools.HttpResponseParser, parsed: _Parsed, url: str) -> None:
        self._sock = sock
        self._parser = parser
        self._parsed = parsed
        self.url = url
        self.status_code: int = parser.get_status_code()
        self.headers: Mapping[str, str] = parsed.headers
        #: The body's end is told by Content-Length or chunking (not by the connection closing).
        self._framed = "content-length" in parsed.headers or "transfer-encoding" in parsed.headers
        #: A plain Content-Length body (merged.csv, the usual case): bytes still to come. Those are
        #: passed on as read, without the parser; None: every read goes through the parser.
        self._left: int | None = None
        length = parsed.headers.get("content-length", "")
        if "transfer-encoding" not in parsed.headers and length.isdigit():
            self._left = 0 if parsed.complete else int(length) - sum(len(b) for b in parsed.body)

    async def body(self, read_timeout_s: float) -> AsyncIterator[bytes]:
        """The body's bytes as they come (de-chunked). An upstream that breaks off, stalls for
        `read_timeout_s` or sends a bad frame ends the body short, logged (headers are sent already:
        the client sees fewer bytes than Content-Length)."""
        loop = asyncio.get_running_loop()
        p = self._parsed
        if p.body:
            yield p.take()  # (what came with the head)
        try:
            while not p.complete and self._left != 0:
                want = READ_BYTES if self._left is None else min(READ_BYTES, self._left)
                async with asyncio.timeout(read_timeout_s):
                    data = await loop.sock_recv(self._sock, want)
                if not data:
                    if self._framed:  # (an unframed body ends with the connection)
                        raise ConnectionError("the merger closed the connection mid-answer")
                    return
                if self._left is not None:
                    self._left -= len(data)
                    yield data
                    continue
                self._parser.feed_data(data)
                if p.body:
                    yield p.take()
        except (OSError, TimeoutError, httptools.HttpParserError) as e:
            log.warning("merged.csv stream broke off", extra={"url": self.url, "error": repr(e)})

    def close(self) -> None:
        self._sock.close()


def _request(method: str, host: str, target: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if name.lower() in _OWN_HEADERS or "\r" in value or "\n" in value or not value.isascii():
            continue  # (set above once; or never sent: it could not be a valid header)
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connect(host: str, port: int, timeout_s: float, url: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    try:
        async with asyncio.timeout(timeout_s):
            for family, kind, proto, _, addr in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, addr)
                except OSError as e:
                    sock.close()
                    last = e
                    continue
                except BaseException:
                    sock.close()
                    raise
                return sock
    except (TimeoutError, OSError) as e:
        last = last or e
    log.warning("merger unreachable", extra={"url": url, "error": repr(last)})
    raise UpstreamUnreachable(f"merger is unreachable at {url}", component="merger")


async def open_answer(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> RawAnswer:
    """Send the request and read the merger's status and headers. Raises UpstreamUnreachable (no
    connection), UpstreamTimeout (no answer within `read_timeout_s`) or UpstreamBadResponse (not
    HTTP); the connection is closed then (and on cancellation)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"a raw relay speaks plain http only, not {url}")
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sock = await _connect(parts.hostname, port, connect_timeout_s, url)
    parsed = _Parsed()
    parser = httptools.HttpResponseParser(parsed)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(read_timeout_s):
            await loop.sock_sendall(sock, _request(method, parts.netloc, target, headers))
            seen = 0
            buf = bytearray(READ_BYTES)
            while not parsed.head_done:
                n = await loop.sock_recv_into(sock, buf)
                if n == 0:
                    raise UpstreamBadResponse(
                        f"merger closed the connection before answering ({url})", component="merger"
                    )
                seen += n
                parser.feed_data(memoryview(buf)[:n])
                if not parsed.head_done and seen > MAX_HEAD_BYTES:
                    raise UpstreamBadResponse(f"merger sent an oversized answer head ({url})", component="merger")
    except TimeoutError:
        sock.close()
        log.warning("merger did not answer", extra={"url": url, "timeout_s": read_timeout_s})
        raise UpstreamTimeout(f"merger did not answer within {read_timeout_s:g}s ({url})", component="merger") from None
    except httptools.HttpParserError as e:
        sock.close()
        log.warning("merger answered garbage", extra={"url": url, "error": repr(e)})
        raise UpstreamBadResponse(f"merger gave a broken answer (not HTTP) at {url}", component="merger") from None
    except OSError as e:
        sock.close()
        log.warning("merger connection failed", extra={"url": url, "error": repr(e)})
        raise UpstreamBadResponse(
            f"merger gave a broken answer ({type(e).__name__}) at {url}", component="merger"
        ) from None
    except BaseException:
        sock.close()
        raise
    return RawAnswer(sock, parser, parsed, url)
