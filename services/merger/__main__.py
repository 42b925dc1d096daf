"""`python -m services.merger`: run the merger service (the launcher starts it exactly like this)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from services.merger.memory import release_memory_promptly


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    release_memory_promptly()  # before polars is loaded: the imports below load it
    import uvicorn

    from service_kit.logs import configure_logging
    from services.merger.app import create_app
    from services.merger.settings import MergerSettings

    settings = MergerSettings()
    configure_logging("merger")
    # SIGTERM: uvicorn stops accepting requests and runs the lifespan shutdown, which lets the commit
    # in progress finish (merged.csv and state.json stay consistent) before the process exits. uvicorn
    # then re-raises the signal to the handler installed before it: exit 0, a requested stop.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
