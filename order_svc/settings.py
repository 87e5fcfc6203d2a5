"""order_svc configuration (environment names from CONTRACT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr

from shared.settings import DEVELOPMENT_JWT_SECRET, ServiceSettings, env


class OrderSettings(ServiceSettings):
    host: Annotated[str, Field(validation_alias=env("ORDER_SVC_HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536, validation_alias=env("ORDER_SVC_PORT"))] = 8002
    database_url: Annotated[str, Field(validation_alias=env("ORDER_SVC_DATABASE_URL"))] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/order_svc"
    )

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
        """user_svc's key set; by default on the port user_svc is told to listen on, so the two
        services started side by side with the contract's variables find each other."""
        if self.jwks_url_override is not None:
            return self.jwks_url_override
        return f"http://127.0.0.1:{self.user_svc_port}/.well-known/jwks.json"
