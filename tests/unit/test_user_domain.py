"""The user aggregate: registration, profile changes and its side of the credit saga."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    UserCreditRejected,
    UserCreditReleased,
    UserCreditReserved,
    UserDeactivated,
    UserRegistered,
    UserUpdated,
)
from user_svc.domain import Reservation, ReservationState, User, UserStatus

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")


def registered_user(*, credit_limit: int = 1_000) -> User:
    user = User.register(id=USER_ID, email="ada@example.com", name="Ada", credit_limit=credit_limit)
    user.events.clear()
    return user


def test_registering_a_user_raises_user_registered_at_version_1() -> None:
    user = User.register(id=USER_ID, email="ada@example.com", name="Ada", credit_limit=1_000)

    assert user.version == 1
    assert user.status is UserStatus.ACTIVE
    assert user.credit_reserved == 0
    [event] = user.events
    assert event.type == "user.registered"
    assert event.subject == USER_ID
    assert event.aggregate_version == 1
    assert event.data == UserRegistered(
        user_id=USER_ID, email="ada@example.com", name="Ada", credit_limit=1_000
    )


def test_renaming_a_user_bumps_its_version_and_raises_user_updated_at_the_new_version() -> None:
    user = registered_user()

    user.rename("Ada Lovelace")

    assert user.name == "Ada Lovelace"
    assert user.version == 2
    [event] = user.events
    assert event.type == "user.updated"
    assert event.aggregate_version == 2
    assert event.data == UserUpdated(user_id=USER_ID, name="Ada Lovelace")


def test_deactivating_a_user_bumps_its_version_and_raises_user_deactivated() -> None:
    user = registered_user()

    user.deactivate()

    assert user.status is UserStatus.DEACTIVATED
    assert user.version == 2
    [event] = user.events
    assert event.type == "user.deactivated"
    assert event.aggregate_version == 2
    assert event.data == UserDeactivated(user_id=USER_ID)


def test_deactivating_a_deactivated_user_is_a_conflict_and_changes_nothing() -> None:
    user = registered_user()
    user.deactivate()
    user.events.clear()

    with pytest.raises(Conflict):
        user.deactivate()

    assert user.version == 2
    assert user.events == []


def test_reserving_credit_within_the_limit_reserves_it() -> None:
    user = registered_user(credit_limit=1_000)

    reservation = user.reserve_credit(order_id=ORDER_ID, amount=300)

    assert reservation.state is ReservationState.RESERVED
    assert reservation.order_id == ORDER_ID
    assert reservation.user_id == USER_ID
    assert reservation.amount == 300
    assert reservation.reason is None
    assert user.credit_reserved == 300
    assert user.version == 2


def test_reserving_credit_raises_user_credit_reserved_correlated_by_the_order_id() -> None:
    user = registered_user(credit_limit=1_000)

    user.reserve_credit(order_id=ORDER_ID, amount=300)

    [event] = user.events
    assert event.type == "user.credit_reserved"
    assert event.subject == USER_ID
    assert event.aggregate_version == 2
    assert event.correlation_id == ORDER_ID
    assert event.data == UserCreditReserved(user_id=USER_ID, order_id=ORDER_ID, amount=300)


def test_reserving_credit_exactly_up_to_the_limit_is_allowed() -> None:
    user = registered_user(credit_limit=1_000)
    user.reserve_credit(order_id=uuid4(), amount=600)

    reservation = user.reserve_credit(order_id=ORDER_ID, amount=400)

    assert reservation.state is ReservationState.RESERVED
    assert user.credit_reserved == 1_000


def test_reserving_credit_over_the_limit_is_rejected_as_insufficient_credit() -> None:
    user = registered_user(credit_limit=1_000)
    user.reserve_credit(order_id=uuid4(), amount=600)
    user.events.clear()

    reservation = user.reserve_credit(order_id=ORDER_ID, amount=401)

    assert reservation.state is ReservationState.REJECTED
    assert reservation.reason is CreditRejectionReason.INSUFFICIENT_CREDIT
    [event] = user.events
    assert event.type == "user.credit_rejected"
    assert event.correlation_id == ORDER_ID
    assert event.data == UserCreditRejected(
        user_id=USER_ID,
        order_id=ORDER_ID,
        amount=401,
        reason=CreditRejectionReason.INSUFFICIENT_CREDIT,
    )


def test_a_rejected_reservation_changes_neither_version_nor_reserved_credit() -> None:
    user = registered_user(credit_limit=1_000)

    user.reserve_credit(order_id=ORDER_ID, amount=1_001)

    assert user.version == 1
    assert user.credit_reserved == 0
    [event] = user.events
    assert event.aggregate_version == 1


def test_reserving_credit_for_an_inactive_user_is_rejected_as_user_inactive() -> None:
    user = registered_user(credit_limit=1_000)
    user.deactivate()
    user.events.clear()

    reservation = user.reserve_credit(order_id=ORDER_ID, amount=1)

    assert reservation.state is ReservationState.REJECTED
    assert reservation.reason is CreditRejectionReason.USER_INACTIVE
    assert user.credit_reserved == 0
    assert user.version == 2
    [event] = user.events
    assert event.type == "user.credit_rejected"
    assert isinstance(event.data, UserCreditRejected)
    assert event.data.reason is CreditRejectionReason.USER_INACTIVE


def test_releasing_a_reserved_reservation_restores_the_credit_and_marks_it_released() -> None:
    user = registered_user(credit_limit=1_000)
    reservation = user.reserve_credit(order_id=ORDER_ID, amount=300)
    user.events.clear()

    user.release_credit(reservation)

    assert reservation.state is ReservationState.RELEASED
    assert user.credit_reserved == 0
    assert user.version == 3
    [event] = user.events
    assert event.type == "user.credit_released"
    assert event.aggregate_version == 3
    assert event.correlation_id == ORDER_ID
    assert event.data == UserCreditReleased(user_id=USER_ID, order_id=ORDER_ID, amount=300)


def test_releasing_a_reservation_twice_is_a_conflict_and_changes_nothing() -> None:
    user = registered_user(credit_limit=1_000)
    reservation = user.reserve_credit(order_id=ORDER_ID, amount=300)
    user.release_credit(reservation)
    user.events.clear()

    with pytest.raises(Conflict):
        user.release_credit(reservation)

    assert user.credit_reserved == 0
    assert user.version == 3
    assert user.events == []


def test_releasing_a_rejected_reservation_is_a_conflict() -> None:
    user = registered_user(credit_limit=1_000)
    reservation = user.reserve_credit(order_id=ORDER_ID, amount=1_001)

    with pytest.raises(Conflict):
        user.release_credit(reservation)


def test_an_order_for_an_unknown_user_is_rejected_as_unknown_user_at_version_0() -> None:
    reservation = Reservation.reject_unknown_user(order_id=ORDER_ID, user_id=USER_ID, amount=300)
    [event] = reservation.events

    assert reservation.state is ReservationState.REJECTED
    assert reservation.reason is CreditRejectionReason.UNKNOWN_USER
    assert event.type == "user.credit_rejected"
    assert event.subject == USER_ID
    assert event.aggregate_version == 0
    assert event.correlation_id == ORDER_ID
    assert event.data == UserCreditRejected(
        user_id=USER_ID,
        order_id=ORDER_ID,
        amount=300,
        reason=CreditRejectionReason.UNKNOWN_USER,
    )


def test_a_tombstone_remembers_the_order_as_cancelled() -> None:
    reservation = Reservation.tombstone(order_id=ORDER_ID, user_id=USER_ID, amount=300)

    assert reservation.state is ReservationState.CANCELLED
    assert reservation.order_id == ORDER_ID
    assert reservation.user_id == USER_ID
    assert reservation.amount == 300


def test_a_tombstone_raises_no_event() -> None:
    reservation = Reservation.tombstone(order_id=ORDER_ID, user_id=USER_ID, amount=300)

    assert reservation.events == []
