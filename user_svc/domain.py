"""The user aggregate and its side of the credit saga. Plain Python: no I/O, no frameworks.

Invariants kept here (and again by check constraints in the database):
- `0 <= credit_reserved <= credit_limit`;
- a reservation is decided once per order: reserved or rejected, and a reserved one is released
  at most once;
- an order rejected or cancelled before its reservation was decided is never reserved
  afterwards (the tombstone `cancelled` state), so a late `order.created` cannot leave credit
  held.
Every change of a user bumps its `version` by one; the raised event carries the new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    UserCreditRejected,
    UserCreditReleased,
    UserCreditReserved,
    UserDeactivated,
    UserRegistered,
    UserUpdated,
)


class UserStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class ReservationState(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    RELEASED = "released"
    CANCELLED = "cancelled"
    """The order was rejected or cancelled before its reservation was decided: never reserve
    it."""


@dataclass(kw_only=True)
class Reservation:
    """An order's credit decision at this service, one per order (its key is the order)."""

    order_id: UUID
    user_id: UUID
    amount: int
    state: ReservationState
    reason: CreditRejectionReason | None = None
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def reject_unknown_user(cls, *, order_id: UUID, user_id: UUID, amount: int) -> Reservation:
        """An order for a user this service has never registered: rejected, at version 0."""
        reason = CreditRejectionReason.UNKNOWN_USER
        reservation = cls(
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            state=ReservationState.REJECTED,
            reason=reason,
        )
        reservation.events.append(
            DomainEvent(
                data=UserCreditRejected(
                    user_id=user_id, order_id=order_id, amount=amount, reason=reason
                ),
                subject=user_id,
                aggregate_version=0,
                correlation_id=order_id,
            )
        )
        return reservation

    @classmethod
    def tombstone(cls, *, order_id: UUID, user_id: UUID, amount: int) -> Reservation:
        """Remember that an order ended before its reservation was decided."""
        return cls(
            order_id=order_id, user_id=user_id, amount=amount, state=ReservationState.CANCELLED
        )


@dataclass(kw_only=True)
class User:
    id: UUID
    email: str
    name: str
    status: UserStatus = UserStatus.ACTIVE
    credit_limit: int
    credit_reserved: int = 0
    version: int = 1
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def register(cls, *, id: UUID, email: str, name: str, credit_limit: int) -> User:
        user = cls(id=id, email=email, name=name, credit_limit=credit_limit)
        user._raise(UserRegistered(user_id=id, email=email, name=name, credit_limit=credit_limit))
        return user

    def rename(self, name: str) -> None:
        self._change()
        self.name = name
        self._raise(UserUpdated(user_id=self.id, name=name))

    def deactivate(self) -> None:
        if self.status is UserStatus.DEACTIVATED:
            raise Conflict("the user is already deactivated")
        self._change()
        self.status = UserStatus.DEACTIVATED
        self._raise(UserDeactivated(user_id=self.id))

    def reserve_credit(self, *, order_id: UUID, amount: int) -> Reservation:
        """Decide an order's reservation: reserve it if the user is active and it fits."""
        reason: CreditRejectionReason | None = None
        if self.status is not UserStatus.ACTIVE:
            reason = CreditRejectionReason.USER_INACTIVE
        elif self.credit_reserved + amount > self.credit_limit:
            reason = CreditRejectionReason.INSUFFICIENT_CREDIT
        if reason is not None:
            self._raise(
                UserCreditRejected(
                    user_id=self.id, order_id=order_id, amount=amount, reason=reason
                ),
                correlation_id=order_id,
            )
            return Reservation(
                order_id=order_id,
                user_id=self.id,
                amount=amount,
                state=ReservationState.REJECTED,
                reason=reason,
            )
        self._change()
        self.credit_reserved += amount
        self._raise(
            UserCreditReserved(user_id=self.id, order_id=order_id, amount=amount),
            correlation_id=order_id,
        )
        return Reservation(
            order_id=order_id, user_id=self.id, amount=amount, state=ReservationState.RESERVED
        )

    def release_credit(self, reservation: Reservation) -> None:
        if reservation.user_id != self.id:
            raise Conflict(f"reservation of order {reservation.order_id} is not this user's")
        if reservation.state is not ReservationState.RESERVED:
            raise Conflict(f"reservation of order {reservation.order_id} is {reservation.state}")
        self._change()
        self.credit_reserved -= reservation.amount
        reservation.state = ReservationState.RELEASED
        self._raise(
            UserCreditReleased(
                user_id=self.id, order_id=reservation.order_id, amount=reservation.amount
            ),
            correlation_id=reservation.order_id,
        )

    def _change(self) -> None:
        self.version += 1

    def _raise(
        self,
        data: UserRegistered
        | UserUpdated
        | UserDeactivated
        | UserCreditReserved
        | UserCreditRejected
        | UserCreditReleased,
        *,
        correlation_id: UUID | None = None,
    ) -> None:
        self.events.append(
            DomainEvent(
                data=data,
                subject=self.id,
                aggregate_version=self.version,
                correlation_id=correlation_id,
            )
        )
