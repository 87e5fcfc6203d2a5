"""Reads that answer HTTP queries: one statement each, outside any transaction.

A single statement already sees one consistent snapshot, so a read needs no BEGIN and no
ROLLBACK. Writes never come here: they go through the unit of work.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, select

from shared.persistence.database import Database
from shared.persistence.statements import Statement
from user_svc.domain import User
from user_svc.models import users
from user_svc.uow import user_from

_USER = Statement(select(users).where(users.c.id == bindparam("user_id")))
_CREDENTIALS = Statement(select(users).where(users.c.email == bindparam("email")))


class UserQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def user(self, user_id: UUID) -> User | None:
        async with self._database.connection() as connection:
            row = await _USER.fetchrow(connection, user_id=user_id)
        return None if row is None else user_from(row)

    async def credentials(self, email: str) -> tuple[User, str] | None:
        """The user with this email and their password hash."""
        async with self._database.connection() as connection:
            row = await _CREDENTIALS.fetchrow(connection, email=email)
        return None if row is None else (user_from(row), row["password_hash"])
