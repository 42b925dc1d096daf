"""The raw relay of merged.csv (services/gateway/relay.py) against a real socket server that answers exactly
the bytes each test gives: Content-Length bodies (with bytes arriving with the head and in pieces),
chunked bodies, an answer cut off mid-body, garbage, silence, and the request it sends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from devicestream.processes import free_ports
from services.gateway import relay
from services.gateway.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnreachable

pytestmark = pytest.mark.integration  # real sockets on loopback

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/merged.csv?deviceId=D001"


def answering(*pieces: bytes, seen: list[bytes] | None = None, hold: bool = False) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        for p in pieces:
            writer.write(p)
            await writer.drain()
            await asyncio.sleep(0.01)
        if hold:
            await asyncio.sleep(30)
        writer.close()

    return handler


async def collect(url: str, method: str = "GET", read_timeout_s: float = 5) -> tuple[relay.RawAnswer, bytes]:
    answer = await relay.open_answer(
        method, url, {"X-Internal-Token": "s", "range": "bytes=0-"}, connect_timeout_s=2, read_timeout_s=5
    )
    try:
        body = b"".join([c async for c in answer.body(read_timeout_s)])
    finally:
        answer.close()
    return answer, body


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_body_in_pieces_and_the_request_sent() -> None:
    body = bytes(range(256)) * 20_000  # 5 MB: several reads of READ_BYTES

    async def main() -> None:
        seen: list[bytes] = []
        head = f'HTTP/1.1 206 Partial Content\r\nContent-Length: {len(body)}\r\nETag: "g-1"\r\n\r\n'.encode()
        server, url = await serve(answering(head + body[:10], body[10:3000], body[3000:], seen=seen))
        async with server:
            answer, got = await collect(url)
        assert answer.status_code == 206 and answer.headers["etag"] == '"g-1"'
        assert got == body
        request = seen[0].decode()
        assert request.startswith("GET /merged.csv?deviceId=D001 HTTP/1.1\r\n")
        for line in ("Connection: close", "X-Internal-Token: s", "range: bytes=0-", "Accept-Encoding: identity"):
            assert f"\r\n{line}\r\n" in request, request

    run(main())


def test_chunked_body_is_dechunked() -> None:
    async def main() -> None:
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        server, url = await serve(answering(chunked[:60], chunked[60:]))
        async with server:
            _, got = await collect(url)
        assert got == b"hello world"

    run(main())


def test_head_answer_has_no_body_to_wait_for() -> None:
    async def main() -> None:
        server, url = await serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n", hold=True))
        async with server:
            answer = await relay.open_answer("HEAD", url, {}, connect_timeout_s=2, read_timeout_s=5)
            answer.close()
        assert answer.status_code == 200 and answer.headers["content-length"] == "999"

    run(main())


def test_cut_off_answer_ends_short_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> bytes:
        server, url = await serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x" * 40))
        async with server:
            _, got = await collect(url)
        return got

    with caplog.at_level(logging.WARNING, logger="services.gateway.relay"):
        assert run(main()) == b"x" * 40
    assert "stream broke off" in caplog.text


def test_stalled_upstream_ends_the_body_after_the_read_timeout() -> None:
    async def main() -> bytes:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        server, url = await serve(answering(head, b"y" * 10, hold=True))
        async with server:
            _, got = await collect(url, read_timeout_s=0.5)
        return got

    assert run(main()) == b"y" * 10


def test_garbage_silence_and_nobody() -> None:
    async def main() -> None:
        server, url = await serve(answering(b"this is not http\r\n\r\n"))
        async with server:
            with pytest.raises(UpstreamBadResponse):
                await relay.open_answer("GET", url, {}, connect_timeout_s=2, read_timeout_s=5)
        server, url = await serve(answering(hold=True))
        async with server:
            with pytest.raises(UpstreamTimeout):
                await relay.open_answer("GET", url, {}, connect_timeout_s=2, read_timeout_s=0.5)
        (port,) = free_ports(1)
        with pytest.raises(UpstreamUnreachable):
            await relay.open_answer(
                "GET", f"http://127.0.0.1:{port}/merged.csv", {}, connect_timeout_s=2, read_timeout_s=1
            )

    run(main())


def test_closing_mid_body_closes_the_merger_connection() -> None:
    """A client that leaves (or stalls and is dropped) closes the answer: the merger stops sending."""

    async def main() -> None:
        stopped = asyncio.Event()

        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
            try:
                while True:
                    writer.write(b"z" * 65536)
                    await writer.drain()
            except (ConnectionError, OSError):
                stopped.set()

        server, url = await serve(endless)
        async with server:
            answer = await relay.open_answer("GET", url, {}, connect_timeout_s=2, read_timeout_s=5)
            body = answer.body(5)
            assert len(await anext(body)) > 0
            await body.aclose()
            answer.close()
            await asyncio.wait_for(stopped.wait(), 10)

    run(main())
