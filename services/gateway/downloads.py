"""Downloads relayed from the merger, kept apart from the control plane: they have their own
connections (a raw one per download, services/gateway/relay.py; or their own httpx pool), at most
`max_downloads` run at once (the next one gets 503 with Retry-After instead of a queue), and a
client that stops reading is dropped after `send_timeout_s` (its slot and its merger connection
are freed). Status probes and generator commands use the other client, so stalled downloads cannot
starve them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from services.gateway.errors import DownloadsBusy

log = logging.getLogger(__name__)


class ClientStalled(Exception):
    """The client did not take the next chunk within the send timeout."""


class Slot:
    """One download's place; release() is idempotent (every exit path may call it)."""

    def __init__(self, slots: DownloadSlots) -> None:
        self._slots = slots
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.active -= 1


class DownloadSlots:
    """A non-blocking counter of running downloads (the event loop is single-threaded)."""

    def __init__(self, limit: int, retry_after_s: int = 2) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.active = 0

    def acquire(self) -> Slot:
        if self.active >= self.limit:
            raise DownloadsBusy(
                f"{self.active} downloads are running, the most this gateway serves at once "
                "(GATEWAY_MAX_DOWNLOADS); retry later",
                retry_after_s=self.retry_after_s,
            )
        self.active += 1
        return Slot(self)


@dataclass(frozen=True)
class DownloadPool:
    """The downloads' own client (own connection pool, `max_downloads` connections: an https://
    merger), their places, and the headers every request to the merger carries (the internal secret;
    the raw relay of services/gateway/relay.py, which a plain http:// merger gets, sends them itself)."""

    client: httpx.AsyncClient
    slots: DownloadSlots
    upstream_headers: Mapping[str, str] = field(default_factory=dict)


class RelayResponse(StreamingResponse):
    """A StreamingResponse whose every send must complete within `send_timeout_s`, and which runs
    `on_close` however it ends (done, client gone, client stalled, upstream broken)."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        send_timeout_s: float,
        on_close: Callable[[], Awaitable[None]],
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self.send_timeout_s = send_timeout_s
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await send(message)
            except TimeoutError:
                raise ClientStalled from None

        try:
            await super().__call__(scope, receive, timed_send)
        except ClientStalled:
            # Returning with the response unfinished makes the server close the connection.
            log.warning(
                "download dropped: the client took no data for %gs",
                self.send_timeout_s,
                extra={"path": scope.get("path"), "client": str(scope.get("client"))},
            )
        finally:
            await self.on_close()
