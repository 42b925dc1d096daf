"""`python -m services.gateway`: settings from the environment, logging, uvicorn on settings.host/port."""

from __future__ import annotations

import uvicorn

from service_kit.logs import configure_logging
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep configure_logging's format
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
