"""user_svc's unit of work and the repositories it exposes on its one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

import asyncpg
from sqlalchemy import ARRAY, Uuid, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import HotQuery
from shared.envelope import CloudEvent
from shared.errors import Conflict
from shared.events import CreditRejectionReason, OrderCancelled, OrderCreated
from shared.locked_rows import LockedRows
from shared.uow import UnitOfWork
from user_svc.domain import Reservation, ReservationState, User, UserStatus
from user_svc.models import credit_reservations, outbox, users

# The statements of the saga's hot path, built once with bound parameters and run on the
# driver: building and executing a statement through SQLAlchemy on every call cost more than
# the database's work (see README Performance).
_USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
_USER = HotQuery(_USER_BY_ID)
_USER_FOR_UPDATE = HotQuery(_USER_BY_ID.with_for_update())
_RESERVATION_FIELDS = ("order_id", "user_id", "amount", "state", "reason")
_ADD_RESERVATION = HotQuery(
    pg_insert(credit_reservations)
    .values({name: bindparam(name) for name in _RESERVATION_FIELDS})
    .on_conflict_do_nothing(index_elements=[credit_reservations.c.order_id])
    .returning(credit_reservations.c.order_id)
)
_ADD_RESERVATIONS = HotQuery(
    pg_insert(credit_reservations)
    .from_select(
        _RESERVATION_FIELDS,
        select(
            *(
                func.unnest(bindparam(f"{name}s", type_=ARRAY(credit_reservations.c[name].type)))
                for name in _RESERVATION_FIELDS
            )
        ),
    )
    .on_conflict_do_nothing(index_elements=[credit_reservations.c.order_id])
    .returning(credit_reservations.c.order_id)
)
_RESERVATION = HotQuery(
    select(credit_reservations).where(credit_reservations.c.order_id == bindparam("order_id"))
)
_RESERVATIONS = HotQuery(
    select(credit_reservations).where(
        credit_reservations.c.order_id == any_(bindparam("order_ids", type_=ARRAY(Uuid)))
    )
)


class Users:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._locked = LockedRows(users)

    async def lock(self, user_ids: Sequence[UUID]) -> None:
        """Lock these users for the rest of the transaction, in one statement; `get` then
        answers from what it read, and `save` holds their writes back until `flush`."""
        await self._locked.lock(self._connection, user_ids)

    async def get(self, user_id: UUID, *, for_update: bool = False) -> User | None:
        row = self._locked.get(user_id)
        if row is None:
            query = _USER_FOR_UPDATE if for_update else _USER
            row = await query.fetchrow(self._connection, user_id=user_id)
        return _user(row) if row else None

    async def credentials(self, email: str) -> tuple[User, str] | None:
        row = (await self._connection.execute(select(users).where(users.c.email == email))).first()
        return (_user(row._mapping), row.password_hash) if row else None

    async def add(self, user: User, *, password_hash: str) -> bool:
        """Insert a new user; False if the email is taken (the unique key decides, not a lookup)."""
        result = await self._connection.execute(
            pg_insert(users)
            .values(
                id=user.id,
                email=user.email,
                name=user.name,
                password_hash=password_hash,
                status=user.status,
                credit_limit=user.credit_limit,
                credit_reserved=user.credit_reserved,
                version=user.version,
            )
            .on_conflict_do_nothing(index_elements=[users.c.email])
            .returning(users.c.id)
        )
        return result.first() is not None

    async def save(self, user: User, *, expected_version: int) -> None:
        values = {
            "name": user.name,
            "status": user.status,
            "credit_reserved": user.credit_reserved,
            "version": user.version,
            "updated_at": datetime.now(UTC),
        }
        await self._locked.save(
            self._connection, user.id, expected_version=expected_version, values=values
        )

    async def flush(self) -> None:
        await self._locked.flush(self._connection)


class Reservations:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        # Orders read up front for a batch (`read`), with their decision or None if undecided.
        self._known: dict[UUID, Reservation | None] = {}
        # Decisions `add` held back for `flush`.
        self._held: dict[UUID, Reservation] = {}

    async def read(self, order_ids: Sequence[UUID]) -> None:
        """Read these orders' decisions in one statement; `get` and `add` then answer from it,
        and `add` holds its insert back until `flush`.

        Exact while the orders' users are locked (read after `Users.lock`): every decision is
        recorded under its user's lock. The one that is not, for an unknown user, may race
        with another transaction; `flush` then finds the order decided and fails the batch,
        whose events are applied again one by one."""
        if not order_ids:
            return
        rows = await _RESERVATIONS.fetch(self._connection, order_ids=list(set(order_ids)))
        self._known.update(dict.fromkeys(order_ids))
        self._known.update({row["order_id"]: _reservation(row) for row in rows})

    async def get(self, order_id: UUID) -> Reservation | None:
        if order_id in self._known:
            known = self._known[order_id]
            return None if known is None else replace(known)
        row = await _RESERVATION.fetchrow(self._connection, order_id=order_id)
        return None if row is None else _reservation(row)

    async def add(self, reservation: Reservation) -> bool:
        """Record an order's decision; False if another transaction recorded one first."""
        order_id = reservation.order_id
        if order_id in self._known:
            if self._known[order_id] is not None:
                return False
            self._known[order_id] = self._held[order_id] = replace(reservation)
            return True
        recorded = await _ADD_RESERVATION.fetchrow(self._connection, **_values(reservation))
        return recorded is not None

    async def save(self, reservation: Reservation) -> None:
        order_id = reservation.order_id
        if order_id in self._known:
            self._known[order_id] = replace(reservation)
        if order_id in self._held:
            self._held[order_id] = replace(reservation)
            return
        await self._connection.execute(
            update(credit_reservations)
            .where(credit_reservations.c.order_id == order_id)
            .values(state=reservation.state, updated_at=func.now())
        )

    async def flush(self) -> None:
        if not self._held:
            return
        held, self._held = list(self._held.values()), {}
        rows = [_values(r) for r in held]
        recorded = await _ADD_RESERVATIONS.fetch(
            self._connection,
            **{f"{name}s": [row[name] for row in rows] for name in _RESERVATION_FIELDS},
        )
        if len(recorded) != len(held):
            raise Conflict("another transaction decided an order of this batch first")


class UserUnitOfWork(UnitOfWork):
    users: Users
    reservations: Reservations

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.users = Users(self.connection)
        self.reservations = Reservations(self.connection)
        return self

    async def preload(self, events: Sequence[Any]) -> None:
        """Every saga event locks its user, then reads or records its order's decision: the
        batch's users are locked at once, then its orders' decisions read at once."""
        saga = [e for e in events if isinstance(e, OrderCreated | OrderCancelled)]
        await self.users.lock([e.user_id for e in saga])
        await self.reservations.read([e.order_id for e in saga])

    async def flush(self) -> None:
        await self.reservations.flush()
        await self.users.flush()

    def collect(self, user: User) -> None:
        """Take the events the user raised into this unit of work."""
        self.emit(*user.events)
        user.events.clear()


def unit_of_work(engine: AsyncEngine, cause: CloudEvent | None = None) -> UserUnitOfWork:
    return UserUnitOfWork(engine, outbox_table=outbox, source="/user_svc", cause=cause)


def _user(row: Mapping[str, Any] | asyncpg.Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        status=UserStatus(row["status"]),
        credit_limit=row["credit_limit"],
        credit_reserved=row["credit_reserved"],
        version=row["version"],
    )


def _reservation(row: Mapping[str, Any] | asyncpg.Record) -> Reservation:
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
