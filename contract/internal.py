"""The shared secret between the gateway and the services behind it (generator, merger).

The launcher makes a fresh one per stack (compose takes it from the environment) and gives it to
every component as DEVICESTREAM_INTERNAL_SECRET. The gateway sends it on every upstream call in
the `X-Internal-Token` header; the generator and the merger refuse their control and data routes
without it (401), so a local process or a container on the compose network cannot bypass the
gateway's API key. Probes and read-only status documents stay open (see README, Security).
The route guard built on these is service_kit/internal.py."""

from __future__ import annotations

import hmac

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

HEADER = "X-Internal-Token"
ENV_NAME = "DEVICESTREAM_INTERNAL_SECRET"


class InternalSecretSettings(BaseSettings):
    """Mixin for the settings class of every component that speaks to or answers the others."""

    internal_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(ENV_NAME, "internal_secret"),
        description="Shared secret between the gateway and the generator/merger (the launcher generates one "
        "per stack; compose needs it set). Empty: the generator and merger accept calls from anyone.",
    )

    @field_validator("internal_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """compose passes `${DEVICESTREAM_INTERNAL_SECRET:-}`: an empty value means no secret."""
        return None if value == "" else value


def secret_matches(expected: SecretStr, presented: str | None) -> bool:
    """Constant-time comparison of the presented token with the expected secret."""
    return presented is not None and hmac.compare_digest(expected.get_secret_value().encode(), presented.encode())


def outgoing_headers(secret: SecretStr | None) -> dict[str, str]:
    """Headers the gateway adds to every upstream request."""
    return {HEADER: secret.get_secret_value()} if secret is not None else {}
