"""One line about why a document broke its contract, for logs, probes and error answers."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(e: ValidationError, whole: str = "document") -> str:
    """`where: what` of the first error (`whole` when the document itself is wrong)."""
    errors = e.errors()
    if not errors:
        return str(e)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or whole
    return f"{where}: {first['msg']}"
