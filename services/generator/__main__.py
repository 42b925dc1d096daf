"""`python -m services.generator`: settings from the environment, logging, uvicorn.

uvicorn turns SIGTERM/SIGINT into a lifespan shutdown, which stops the run and flushes every
event in flight before the process exits."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from service_kit.logs import configure_logging
from services.generator.app import create_app
from services.generator.settings import GeneratorSettings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # Before uvicorn runs: exit at once. After its graceful shutdown uvicorn re-raises the signal it
    # caught; with this handler restored the process then exits with 0 instead of dying by SIGTERM.
    raise SystemExit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = GeneratorSettings()
    configure_logging("generator")
    logging.getLogger(__name__).info(
        "starting", extra={"host": settings.host, "port": settings.port, "topic": settings.topic}
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.flush_timeout_s) + 5,
    )


if __name__ == "__main__":
    main()
