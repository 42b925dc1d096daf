"""The generator's and merger's guard of their control and data routes: a FastAPI dependency that
answers 401 unless the request carries the stack's internal secret (contract/internal.py: the header,
the setting, the comparison)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from contract.internal import ENV_NAME, HEADER, secret_matches

log = logging.getLogger(__name__)

_token = APIKeyHeader(name=HEADER, auto_error=False, scheme_name="internal", description="The stack's internal secret.")

#: OpenAPI answer of a refused call (add to each protected route's `responses`).
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": f"Missing or wrong {HEADER} (only the gateway may call this route)."}
}


def require_internal(secret: SecretStr | None, component: str) -> Callable[..., None]:
    """A FastAPI dependency: 401 unless the request carries `secret` (no-op when it is None)."""
    if secret is None:
        log.warning("%s has no %s: its control routes are open to anyone who can reach its port", component, ENV_NAME)

    def check(request: Request, token: Annotated[str | None, Security(_token)] = None) -> None:
        if secret is not None and not secret_matches(secret, token):
            raise HTTPException(
                status_code=401,
                detail=f"{component}: missing or wrong {HEADER}; call it through the gateway",
            )

    return check
