"""Why a record is rejected: the `reason` column of the Spark job's rejects, in the words both the
job (spark_job/transform.py) and `devicestream verify` (devicestream/validity.py) use."""

from __future__ import annotations

from typing import Final


class Reason:
    """The reasons a record is rejected (the `reason` column of the rejects)."""

    EMPTY: Final = "empty value"
    NOT_UTF8: Final = "not UTF-8"
    NOT_JSON: Final = "not JSON"
    NOT_OBJECT: Final = "not a JSON object"
    BAD_EVENT_TIME: Final = "eventTime is not an ISO-8601 timestamp with a zone"

    @staticmethod
    def missing(field: str) -> str:
        return f"missing {field}"

    @staticmethod
    def wrong_type(path: str, expected: str) -> str:
        return f"wrong type: {path} (expected {expected})"
