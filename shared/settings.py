"""Settings common to every service, read from the environment (names fixed by CONTRACT.md).

Each service subclasses `ServiceSettings` to add its own HTTP address and database. Nothing is
read at import time: the composition root builds a settings object and passes it down, so tests
can run several differently configured services in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import limits
from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.web.route_limits import parse_route_limits

# The contract's development default for `JWT_SECRET`: public, so never accepted in production.
DEVELOPMENT_JWT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105


def env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def _rate_limit(value: str) -> str:
    """Refuse a malformed limit at start rather than at the first request."""
    limits.parse(value)
    return value


def _route_limits(value: str) -> str:
    parse_route_limits(value)
    return value


def _storage_url(value: str | None) -> str | None:
    if not value:
        return None
    if not value.startswith(("redis://", "rediss://")):
        raise ValueError("must be a redis:// or rediss:// URL, or unset for process memory")
    return value


RateLimit = Annotated[str, AfterValidator(_rate_limit)]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int
    database_url: str

    app_env: Annotated[
        Literal["development", "production"], Field(validation_alias=env("APP_ENV"))
    ] = "development"
    amqp_url: Annotated[str, Field(validation_alias=env("AMQP_URL"))] = (
        "amqp://guest:guest@127.0.0.1:5672/"
    )

    # Role-dependent defaults (None: decided by the role, see `shared.runtime.roles`).
    ops_port: Annotated[int | None, Field(gt=0, lt=65536, validation_alias=env("OPS_PORT"))] = None
    migrate_on_start: Annotated[bool | None, Field(validation_alias=env("MIGRATE_ON_START"))] = None

    database_pool_size: Annotated[
        int, Field(gt=0, le=1000, validation_alias=env("DATABASE_POOL_SIZE"))
    ] = 20

    relay_batch_size: Annotated[int, Field(gt=0, validation_alias=env("RELAY_BATCH_SIZE"))] = 200
    relay_poll_seconds: Annotated[
        float, Field(gt=0, validation_alias=env("RELAY_POLL_SECONDS"))
    ] = 1.0
    outbox_retention_seconds: Annotated[
        float, Field(ge=0, validation_alias=env("OUTBOX_RETENTION_SECONDS"))
    ] = 86_400.0
    inbox_retention_seconds: Annotated[
        float, Field(ge=0, validation_alias=env("INBOX_RETENTION_SECONDS"))
    ] = 7 * 86_400.0
    housekeeping_interval_seconds: Annotated[
        float, Field(gt=0, validation_alias=env("HOUSEKEEPING_INTERVAL_SECONDS"))
    ] = 60.0

    max_request_bytes: Annotated[int, Field(gt=0, validation_alias=env("MAX_REQUEST_BYTES"))] = (
        64 * 1024
    )
    max_message_bytes: Annotated[int, Field(gt=0, validation_alias=env("MAX_MESSAGE_BYTES"))] = (
        256 * 1024
    )

    # Per client; generous: far above what a person or a well-behaved program sends
    # (docs/design/security.md).
    rate_limit_reads: Annotated[RateLimit, Field(validation_alias=env("RATE_LIMIT_READS"))] = (
        "500/second"
    )
    rate_limit_writes: Annotated[RateLimit, Field(validation_alias=env("RATE_LIMIT_WRITES"))] = (
        "200/second"
    )
    rate_limits: Annotated[
        str, AfterValidator(_route_limits), Field(validation_alias=env("RATE_LIMITS"))
    ] = ""
    rate_limit_storage_url: Annotated[
        str | None,
        BeforeValidator(_storage_url),
        Field(validation_alias=env("RATE_LIMIT_STORAGE_URL")),
    ] = None
    rate_limit_key_prefix: Annotated[
        str, Field(min_length=1, validation_alias=env("RATE_LIMIT_KEY_PREFIX"))
    ] = "eventful"

    consumer_prefetch: Annotated[int, Field(gt=0, validation_alias=env("CONSUMER_PREFETCH"))] = 64
    consumer_batch_size: Annotated[
        int, Field(gt=0, le=1000, validation_alias=env("CONSUMER_BATCH_SIZE"))
    ] = 16
    handler_max_attempts: Annotated[
        int, Field(gt=0, validation_alias=env("HANDLER_MAX_ATTEMPTS"))
    ] = 5

    access_log: Annotated[bool, Field(validation_alias=env("ACCESS_LOG"))] = False
    # Peers whose X-Forwarded-For names the client (the rate limits' per-address key): behind
    # an ingress or load balancer, its address; uvicorn's own default trusts only loopback.
    forwarded_allow_ips: Annotated[
        str, Field(min_length=1, validation_alias=env("FORWARDED_ALLOW_IPS"))
    ] = "127.0.0.1"
    log_format_override: Annotated[
        Literal["json", "console"] | None, Field(validation_alias=env("LOG_FORMAT"))
    ] = None

    @property
    def log_format(self) -> Literal["json", "console"]:
        """JSON lines in production (for log shippers), readable lines in development."""
        if self.log_format_override is not None:
            return self.log_format_override
        return "json" if self.app_env == "production" else "console"


class VerifierSettings(ServiceSettings):
    """The settings of a service that verifies user_svc's tokens without signing any: where
    its public keys come from (`shared.web.token_keys`)."""

    jwt_public_keys_file: Annotated[
        Path | None, Field(validation_alias=env("JWT_PUBLIC_KEYS_FILE"))
    ] = None
    user_svc_port: Annotated[int, Field(gt=0, lt=65536, validation_alias=env("USER_SVC_PORT"))] = (
        8001
    )
    jwks_url_override: Annotated[str | None, Field(validation_alias=env("JWKS_URL"))] = None
    jwt_secret: Annotated[SecretStr, Field(min_length=32, validation_alias=env("JWT_SECRET"))] = (
        SecretStr(DEVELOPMENT_JWT_SECRET)
    )

    @property
    def jwks_url(self) -> str:
        """user_svc's key set; by default on the port user_svc is told to listen on, so the
        services started side by side with the contract's variables find each other."""
        if self.jwks_url_override is not None:
            return self.jwks_url_override
        return f"http://127.0.0.1:{self.user_svc_port}/.well-known/jwks.json"
