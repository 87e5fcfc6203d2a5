"""user_svc configuration (environment names from CONTRACT.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator

from shared.settings import DEVELOPMENT_JWT_SECRET, RateLimit, ServiceSettings, env

log = logging.getLogger(__name__)


class UserSettings(ServiceSettings):
    host: Annotated[str, Field(validation_alias=env("USER_SVC_HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536, validation_alias=env("USER_SVC_PORT"))] = 8001
    database_url: Annotated[str, Field(validation_alias=env("USER_SVC_DATABASE_URL"))] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/user_svc"
    )
    default_credit_limit: Annotated[
        int, Field(ge=0, validation_alias=env("USER_DEFAULT_CREDIT_LIMIT"))
    ] = 100_000

    jwt_private_key_file: Annotated[
        Path | None, Field(validation_alias=env("JWT_PRIVATE_KEY_FILE"))
    ] = None
    jwt_secret: Annotated[SecretStr, Field(min_length=32, validation_alias=env("JWT_SECRET"))] = (
        SecretStr(DEVELOPMENT_JWT_SECRET)
    )
    jwt_published_keys_file: Annotated[
        Path | None, Field(validation_alias=env("JWT_PUBLISHED_KEYS_FILE"))
    ] = None
    # Comma-separated emails whose tokens carry the `admin` role; matched ignoring case and
    # surrounding spaces, as the emails themselves are (user_svc stores them in lower case).
    admin_emails_list: Annotated[str, Field(validation_alias=env("ADMIN_EMAILS"))] = ""
    access_token_ttl_seconds: Annotated[
        int, Field(gt=0, le=86_400, validation_alias=env("ACCESS_TOKEN_TTL_SECONDS"))
    ] = 900

    login_rate_limit: Annotated[RateLimit, Field(validation_alias=env("LOGIN_RATE_LIMIT"))] = (
        "300/minute"
    )
    login_account_rate_limit: Annotated[
        RateLimit, Field(validation_alias=env("LOGIN_ACCOUNT_RATE_LIMIT"))
    ] = "10/minute"
    registration_rate_limit: Annotated[
        RateLimit, Field(validation_alias=env("REGISTRATION_RATE_LIMIT"))
    ] = "300/minute"
    registration_account_rate_limit: Annotated[
        RateLimit, Field(validation_alias=env("REGISTRATION_ACCOUNT_RATE_LIMIT"))
    ] = "10/minute"

    @property
    def admin_emails(self) -> frozenset[str]:
        return frozenset(
            email.strip().lower() for email in self.admin_emails_list.split(",") if email.strip()
        )

    @model_validator(mode="after")
    def _refuse_development_key_in_production(self) -> UserSettings:
        if self.jwt_private_key_file is None and (
            self.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
        ):
            if self.app_env == "production":
                raise ValueError(
                    "JWT_PRIVATE_KEY_FILE or JWT_SECRET must be set when APP_ENV=production"
                )
            log.warning(
                "no token signing key configured: using the development key (APP_ENV=development)"
            )
        return self
