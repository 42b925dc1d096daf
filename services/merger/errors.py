"""The merger's exceptions; app.py alone maps them to HTTP responses."""

from __future__ import annotations


class MergerError(Exception):
    """Base of every merger error."""


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
    """The merger has not loaded its state (yet), or cannot."""


class RangeNotSatisfiableError(MergerError):
    """A Range request that starts at or past the end of merged.csv."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable: merged.csv has {size} bytes")
        self.size = size


class InvalidQueryError(MergerError):
    """A filter of a merged.csv / merged.parquet query that cannot be applied (422 naming `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownDeviceError(MergerError):
    """GET /devices/{deviceId} for a device with no merged row."""


class QueryFailedError(MergerError):
    """A checked query that could not be computed (an I/O error...): 500 with this message."""


class QueriesBusyError(MergerError):
    """As many filtered answers run and wait as the merger keeps (503 with Retry-After)."""
