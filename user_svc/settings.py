"""user_svc configuration (environment names from CONTRACT.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.settings import ServiceSettings, env


class UserSettings(ServiceSettings):
    host: Annotated[str, Field(validation_alias=env("USER_SVC_HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536, validation_alias=env("USER_SVC_PORT"))] = 8001
    database_url: Annotated[str, Field(validation_alias=env("USER_SVC_DATABASE_URL"))] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/user_svc"
    )
    default_credit_limit: Annotated[
        int, Field(ge=0, validation_alias=env("USER_DEFAULT_CREDIT_LIMIT"))
    ] = 100_000
