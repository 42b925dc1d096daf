"""The merger's exceptions. Each says its HTTP status, headers and answer's body; app.py maps the
base class to a response once (`on_merger_error`), and nothing else turns them into HTTP. The ones
raised inside the merge (a bad batch, a failed write, a corrupt state) never reach a route: they keep
the base's 500 and are reported in /merger/status and /readyz instead."""

from __future__ import annotations

from typing import Any


class MergerError(Exception):
    """Base of every merger error: the message is the answer's `detail`."""

    status_code = 500
    #: Seconds a client should wait before retrying (the Retry-After header), if any.
    retry_after_s: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}

    def body(self) -> dict[str, Any]:
        return {"detail": str(self)}


class InvalidBatchError(MergerError):
    """A batch file breaks the row contract; it is quarantined with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MergeAttemptError(MergerError):
    """A batch file could not be merged for an unexpected reason; it is retried (max_file_attempts),
    then quarantined with that reason."""


class CommitWriteError(MergerError, OSError):
    """A write of a commit failed or came up short (disk full, quota, I/O error): `step` is the one
    ("rows", "rejects", "journal", "state", "quarantine", "start") and `filename` the file written.
    Nothing was committed (or, for "state", the journal holds the commit) and no batch file was
    deleted; the pass is retried with a backoff. Use `of()` to build one."""

    step: str = ""

    @classmethod
    def of(cls, step: str, path: object, error: OSError) -> CommitWriteError:
        e = cls(error.errno or 5, error.strerror or str(error), str(path))  # 5: EIO
        e.step = step
        return e


class StateCorruptError(MergerError):
    """state.json and merged.csv disagree in a way that cannot be repaired automatically
    (e.g. merged.csv is shorter than the committed length). Merging stops until an operator acts."""


class NotReadyError(MergerError):
    """The merger has not loaded its state (yet), or cannot (503 with Retry-After)."""

    status_code = 503
    retry_after_s = 1


class RangeNotSatisfiableError(MergerError):
    """A Range request that starts at or past the end of merged.csv (416 with its size)."""

    status_code = 416

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable: merged.csv has {size} bytes")
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


class InvalidQueryError(MergerError):
    """A filter of a merged.csv / merged.parquet query that cannot be applied (422 naming `field`)."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def body(self) -> dict[str, Any]:
        # The shape of FastAPI's own validation errors: one way to read a 422.
        return {"detail": [{"loc": ["query", self.field], "msg": self.message, "type": "value_error"}]}


class UnknownDeviceError(MergerError):
    """GET /devices/{deviceId} for a device with no merged row (404)."""

    status_code = 404


class QueryFailedError(MergerError):
    """A checked query that could not be computed (an I/O error...): 500 with this message."""

    status_code = 500


class QueriesBusyError(MergerError):
    """As many filtered answers run and wait as the merger keeps (503 with Retry-After)."""

    status_code = 503
    retry_after_s = 2
