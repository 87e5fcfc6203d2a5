"""order_svc configuration (environment names from CONTRACT.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.settings import VerifierSettings, env


class OrderSettings(VerifierSettings):
    host: Annotated[str, Field(validation_alias=env("ORDER_SVC_HOST"))] = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536, validation_alias=env("ORDER_SVC_PORT"))] = 8002
    database_url: Annotated[str, Field(validation_alias=env("ORDER_SVC_DATABASE_URL"))] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/order_svc"
    )
