"""user_svc's use cases: HTTP commands and the saga's event handlers, each `(input, uow)`.

Each handler loads what it needs through the unit of work, lets the domain decide, saves with
the version it loaded (`WHERE version = :expected`), and commits state and events together.
Saga handlers lock the user row first, so that an order's creation and cancellation for the same
user are decided one after the other, never interleaved.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from shared.envelope import CloudEvent
from shared.errors import Conflict, NotFound, StaleVersion, Unauthorized
from shared.events import OrderCancelled, OrderCreated
from user_svc.domain import ReservationState, User, UserStatus, reject_unknown_user, tombstone
from user_svc.passwords import Passwords
from user_svc.uow import UserUnitOfWork


@dataclass(frozen=True, kw_only=True)
class RegisterUser:
    email: str
    name: str
    password: str
    credit_limit: int


@dataclass(frozen=True, kw_only=True)
class RenameUser:
    user_id: UUID
    name: str
    expected_version: int


@dataclass(frozen=True, kw_only=True)
class DeactivateUser:
    user_id: UUID
    expected_version: int


async def register_user(command: RegisterUser, uow: UserUnitOfWork, passwords: Passwords) -> User:
    password_hash = await passwords.hash(command.password)
    user = User.register(
        id=uuid4(), email=command.email, name=command.name, credit_limit=command.credit_limit
    )
    async with uow:
        if not await uow.users.add(user, password_hash=password_hash):
            raise Conflict("a user with this email already exists")
        uow.collect(user)
        await uow.commit()
    return user


async def authenticate(
    email: str, password: str, uow: UserUnitOfWork, passwords: Passwords
) -> User:
    async with uow:
        found = None if "\x00" in email else await uow.users.credentials(email)
    user, password_hash = found if found else (None, None)
    valid = await passwords.verify(password, password_hash)
    if user is None or not valid or user.status is not UserStatus.ACTIVE:
        raise Unauthorized("wrong email or password, or the account is deactivated")
    return user


async def get_user(user_id: UUID, uow: UserUnitOfWork) -> User:
    async with uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def rename_user(command: RenameUser, uow: UserUnitOfWork) -> User:
    async with uow:
        user = await _current(uow, command.user_id, command.expected_version)
        user.rename(command.name)
        await uow.users.save(user, expected_version=command.expected_version)
        uow.collect(user)
        await uow.commit()
    return user


async def deactivate_user(command: DeactivateUser, uow: UserUnitOfWork) -> User:
    async with uow:
        user = await _current(uow, command.user_id, command.expected_version)
        user.deactivate()
        await uow.users.save(user, expected_version=command.expected_version)
        uow.collect(user)
        await uow.commit()
    return user


async def _current(uow: UserUnitOfWork, user_id: UUID, expected_version: int) -> User:
    user = await uow.users.get(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    if user.version != expected_version:
        raise StaleVersion(f"user is at version {user.version}, not {expected_version}")
    return user


async def on_order_created(event: OrderCreated, _: CloudEvent, uow: UserUnitOfWork) -> None:
    """Saga step 1: reserve the order's total, or reject it with a reason.

    The decision is recorded by inserting the order's reservation row; if one is already
    there (decided before, or cancelled before we got here), the insert does nothing and
    neither does this handler: the user's changes are only in memory until saved.
    """
    user = await uow.users.get(event.user_id, for_update=True)
    if user is None:
        reservation, rejected = reject_unknown_user(
            order_id=event.order_id, user_id=event.user_id, amount=event.total
        )
        # No user row to lock: a concurrent cancel may have left its tombstone first.
        if await uow.reservations.add(reservation):
            uow.emit(rejected)
        return
    loaded_version = user.version
    reservation = user.reserve_credit(order_id=event.order_id, amount=event.total)
    if not await uow.reservations.add(reservation):
        return
    if user.version != loaded_version:
        await uow.users.save(user, expected_version=loaded_version)
    uow.collect(user)


async def on_order_cancelled(event: OrderCancelled, _: CloudEvent, uow: UserUnitOfWork) -> None:
    """Saga compensation: release the order's credit, or make sure it is never reserved."""
    user = await uow.users.get(event.user_id, for_update=True)
    reservation = await uow.reservations.get(event.order_id)
    if reservation is None:
        marker = tombstone(order_id=event.order_id, user_id=event.user_id, amount=event.total)
        if await uow.reservations.add(marker):
            return
        # Decided meanwhile by a concurrent order.created (possible only without a user row).
        reservation = await uow.reservations.get(event.order_id)
        if reservation is None:
            raise RuntimeError(f"reservation of order {event.order_id} vanished")
    if reservation.state is not ReservationState.RESERVED or user is None:
        return
    loaded_version = user.version
    user.release_credit(reservation)
    await uow.reservations.save(reservation)
    await uow.users.save(user, expected_version=loaded_version)
    uow.collect(user)
