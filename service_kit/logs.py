"""One logging setup for every component: timestamp, level, component, logger, message, and the
`extra` context (topic, partition, offset, path, ...) appended as key=value."""

from __future__ import annotations

import logging
import sys

_STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        ctx = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STD)
        return f"{base} {ctx}" if ctx else base


def configure_logging(component: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ContextFormatter(f"%(asctime)s %(levelname)s {component} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every failed connection attempt at ERROR while a broker is starting or away;
    # our own code reports the resulting state (degraded, not ready) once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("py4j").setLevel(logging.WARNING)
