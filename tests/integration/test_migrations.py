"""Each service's migrations build exactly the schema its models describe, and unwind cleanly."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command

from shared.persistence.database import drop_database
from shared.persistence.migrations import alembic_config
from tests.support.databases import new_database

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("package", ["user_svc", "order_svc", "inventory_svc"])
async def test_the_migrated_schema_matches_the_models(
    package: str, migrated_templates: None
) -> None:
    url = await new_database(package)
    try:
        # Raises if autogenerate would find anything to change.
        await asyncio.to_thread(command.check, alembic_config(package, url))
    finally:
        await drop_database(url)


@pytest.mark.parametrize("package", ["user_svc", "order_svc", "inventory_svc"])
async def test_migrations_downgrade_to_nothing_and_upgrade_again(
    package: str, migrated_templates: None
) -> None:
    url = await new_database(package)
    config = alembic_config(package, url)
    try:
        await asyncio.to_thread(command.downgrade, config, "base")
        await asyncio.to_thread(command.upgrade, config, "head")
        await asyncio.to_thread(command.check, config)
    finally:
        await drop_database(url)
