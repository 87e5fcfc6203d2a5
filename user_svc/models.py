"""user_svc's tables. Money invariants are check constraints, emails are unique in the database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
)

from shared.messaging.tables import add_messaging_tables

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("credit_limit", BigInteger, nullable=False),
    Column("credit_reserved", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('active', 'deactivated')", name="ck_users_status"),
    CheckConstraint("credit_limit >= 0", name="ck_users_credit_limit"),
    CheckConstraint(
        "credit_reserved >= 0 AND credit_reserved <= credit_limit", name="ck_users_credit_reserved"
    ),
    CheckConstraint("version >= 1", name="ck_users_version"),
)

credit_reservations = Table(
    "credit_reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("amount >= 0", name="ck_credit_reservations_amount"),
    CheckConstraint(
        "state IN ('reserved', 'rejected', 'released', 'cancelled')",
        name="ck_credit_reservations_state",
    ),
)

outbox, inbox = add_messaging_tables(metadata)
