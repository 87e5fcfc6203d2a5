"""Bringing a service's database to its latest schema with Alembic.

Migrations run in a worker thread because Alembic's async env calls `asyncio.run`, which cannot
nest inside the service's (or a test's) running loop. Replicas may migrate at once: the env
takes an advisory lock (`shared.persistence.migration_env`).
"""

from __future__ import annotations

import asyncio
from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(package: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files(package) / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(package: str, url: str) -> None:
    """Bring the service's database to the latest revision (idempotent, safe for replicas)."""
    await asyncio.to_thread(command.upgrade, alembic_config(package, url), "head")
