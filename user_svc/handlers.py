"""user_svc's use cases: HTTP commands and the saga's event handlers, over a unit of work.

Each handler loads what it needs through the unit of work's repositories, lets the domain
decide, saves with the version it loaded (`WHERE version = :expected`) and commits: the events
the domain raised on what it loaded or added go to the outbox with the change. Saga handlers
lock the user row first, so that an order's creation and cancellation for the same user are
decided one after the other, never interleaved.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from shared.errors import Conflict, NotFound, StaleVersion, Unauthorized
from shared.events import OrderCancelled, OrderCreated, OrderRejected
from shared.messaging.envelope import CloudEvent
from shared.web.tokens import ADMIN_ROLE
from user_svc.domain import Reservation, ReservationState, User, UserStatus
from user_svc.passwords import Passwords
from user_svc.queries import UserQueries
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
        await uow.commit()
    return user


async def authenticate(
    email: str, password: str, queries: UserQueries, passwords: Passwords
) -> User:
    found = None if "\x00" in email else await queries.credentials(email)
    user, password_hash = found if found else (None, None)
    valid = await passwords.verify(password, password_hash)
    if user is None or not valid or user.status is not UserStatus.ACTIVE:
        raise Unauthorized("wrong email or password, or the account is deactivated")
    return user


def roles_of(user: User, admin_emails: frozenset[str]) -> tuple[str, ...]:
    """The roles a user's tokens carry: `admin` for an email listed in `ADMIN_EMAILS`."""
    return (ADMIN_ROLE,) if user.email.lower() in admin_emails else ()


async def get_user(user_id: UUID, queries: UserQueries) -> User:
    user = await queries.user(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def rename_user(command: RenameUser, uow: UserUnitOfWork) -> User:
    async with uow:
        user = await _current(uow, command.user_id, command.expected_version)
        user.rename(command.name)
        await uow.users.save(user, expected_version=command.expected_version)
        await uow.commit()
    return user


async def deactivate_user(command: DeactivateUser, uow: UserUnitOfWork) -> User:
    async with uow:
        user = await _current(uow, command.user_id, command.expected_version)
        user.deactivate()
        await uow.users.save(user, expected_version=command.expected_version)
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

    An order is decided once: if it has a reservation row already (decided before, or cancelled
    before we got here), there is nothing to do. The user's lock makes that check exact; for an
    unknown user, with no row to lock, a concurrent cancel's tombstone conflicts with this
    decision on the order's key and the event is applied again.
    """
    user = await uow.users.get(event.user_id, for_update=True)
    if await uow.reservations.get(event.order_id) is not None:
        return
    if user is None:
        await uow.reservations.add(
            Reservation.reject_unknown_user(
                order_id=event.order_id, user_id=event.user_id, amount=event.total
            )
        )
        return
    loaded_version = user.version
    await uow.reservations.add(user.reserve_credit(order_id=event.order_id, amount=event.total))
    if user.version != loaded_version:
        await uow.users.save(user, expected_version=loaded_version)


async def on_order_cancelled(event: OrderCancelled, _: CloudEvent, uow: UserUnitOfWork) -> None:
    await _release(event.order_id, event.user_id, uow, total=event.total)


async def on_order_rejected(event: OrderRejected, _: CloudEvent, uow: UserUnitOfWork) -> None:
    """An order can be rejected by the other participant (out of stock) after its credit was
    reserved here; `order.rejected` carries no total, and a tombstone holds nothing anyway."""
    await _release(event.order_id, event.user_id, uow, total=0)


async def _release(order_id: UUID, user_id: UUID, uow: UserUnitOfWork, *, total: int) -> None:
    """Saga compensation: release the order's credit, or make sure it is never reserved."""
    user = await uow.users.get(user_id, for_update=True)
    reservation = await uow.reservations.get(order_id)
    if reservation is None:
        await uow.reservations.add(
            Reservation.tombstone(order_id=order_id, user_id=user_id, amount=total)
        )
        return
    if reservation.state is not ReservationState.RESERVED or user is None:
        return
    loaded_version = user.version
    user.release_credit(reservation)
    await uow.reservations.save(reservation)
    await uow.users.save(user, expected_version=loaded_version)
