"""Shared bits of the stand-in services (test code only: real processes speaking the documented
contracts, so the gateway can be tested before the real services exist)."""

from __future__ import annotations

import logging
import os

import uvicorn
from fastapi import FastAPI

from service_kit.logs import configure_logging


def serve(app: FastAPI, name: str) -> None:
    configure_logging(f"standin-{name}")
    logging.getLogger(__name__).info("stand-in %s starting", name)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["STANDIN_PORT"]), log_config=None, access_log=False)
