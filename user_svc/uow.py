"""user_svc's unit of work and the repositories it exposes on its one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert

from shared.errors import Conflict
from shared.events import CreditRejectionReason, OrderCancelled, OrderCreated, OrderRejected
from shared.persistence.database import Database
from shared.persistence.held_rows import HeldRows
from shared.persistence.repository import Repository
from shared.persistence.statements import Statement
from shared.persistence.unit_of_work import UnitOfWork
from user_svc.domain import Reservation, ReservationState, User, UserStatus
from user_svc.models import credit_reservations, outbox, users

_NEW_USER_FIELDS = (
    "id",
    "email",
    "name",
    "password_hash",
    "status",
    "credit_limit",
    "credit_reserved",
    "version",
)
# A new user conflicts on its email, not on its key: the unique email decides, not a lookup.
_ADD_USER = Statement(
    insert(users)
    .values({name: bindparam(name) for name in _NEW_USER_FIELDS})
    .on_conflict_do_nothing(index_elements=[users.c.email])
    .returning(users.c.id)
)


class Users(Repository[User]):
    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self._rows = HeldRows(users)

    async def lock(self, user_ids: Sequence[UUID]) -> None:
        """Lock these users for the rest of the transaction, in one statement."""
        await self._rows.load(self.connection, user_ids, lock=True)

    async def get(self, user_id: UUID, *, for_update: bool = False) -> User | None:
        await self._rows.load(self.connection, [user_id], lock=for_update)
        row = self._rows.get(user_id)
        return None if row is None else self.seen(user_from(row))

    async def add(self, user: User, *, password_hash: str) -> bool:
        """Insert a new user; False if the email is taken."""
        added = await _ADD_USER.fetchrow(
            self.connection,
            id=user.id,
            email=user.email,
            name=user.name,
            password_hash=password_hash,
            status=user.status,
            credit_limit=user.credit_limit,
            credit_reserved=user.credit_reserved,
            version=user.version,
        )
        if added is None:
            return False
        self.seen(user)
        return True

    async def save(self, user: User, *, expected_version: int) -> None:
        values = {
            "name": user.name,
            "status": user.status,
            "credit_reserved": user.credit_reserved,
            "version": user.version,
            "updated_at": datetime.now(UTC),
        }
        self._rows.update(user.id, values, expected_version=expected_version)

    async def flush(self) -> None:
        await self._rows.flush(self.connection)


class Reservations(Repository[Reservation]):
    """Each order's credit decision. Decisions are written only under their user's lock (or,
    for an unknown user, race on the order's key), so reading them unlocked is exact."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self._rows = HeldRows(credit_reservations, key="order_id")

    async def read(self, order_ids: Sequence[UUID]) -> None:
        """Read these orders' decisions in one statement."""
        await self._rows.load(self.connection, order_ids, lock=False)

    async def get(self, order_id: UUID) -> Reservation | None:
        await self.read([order_id])
        row = self._rows.get(order_id)
        return None if row is None else self.seen(reservation_from(row))

    async def add(self, reservation: Reservation) -> None:
        """Record an order's decision; `Conflict` if it has one already."""
        if not await self._rows.insert(self.connection, _values(reservation)):
            raise Conflict(f"order {reservation.order_id} is decided already")
        self.seen(reservation)

    async def save(self, reservation: Reservation) -> None:
        self._rows.update(
            reservation.order_id,
            {"state": reservation.state.value, "updated_at": datetime.now(UTC)},
        )

    async def flush(self) -> None:
        await self._rows.flush(self.connection)


class UserUnitOfWork(UnitOfWork):
    users: Users
    reservations: Reservations

    def open(self, connection: asyncpg.Connection) -> Sequence[Repository[Any]]:
        self.users = Users(connection)
        self.reservations = Reservations(connection)
        return (self.users, self.reservations)

    async def preload(self, events: Sequence[Any]) -> None:
        """Every saga event locks its user, then reads its order's decision: the batch's users
        are locked at once, then its orders' decisions read at once."""
        saga = [e for e in events if isinstance(e, OrderCreated | OrderRejected | OrderCancelled)]
        await self.users.lock([e.user_id for e in saga])
        await self.reservations.read([e.order_id for e in saga])


def unit_of_work(database: Database) -> UserUnitOfWork:
    return UserUnitOfWork(database, outbox_table=outbox, source="/user_svc")


def user_from(row: Mapping[str, Any]) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        status=UserStatus(row["status"]),
        credit_limit=row["credit_limit"],
        credit_reserved=row["credit_reserved"],
        version=row["version"],
    )


def reservation_from(row: Mapping[str, Any]) -> Reservation:
    return Reservation(
        order_id=row["order_id"],
        user_id=row["user_id"],
        amount=row["amount"],
        state=ReservationState(row["state"]),
        reason=CreditRejectionReason(row["reason"]) if row["reason"] else None,
    )


def _values(reservation: Reservation) -> dict[str, Any]:
    return {
        "order_id": reservation.order_id,
        "user_id": reservation.user_id,
        "amount": reservation.amount,
        "state": reservation.state.value,
        "reason": reservation.reason.value if reservation.reason else None,
    }
