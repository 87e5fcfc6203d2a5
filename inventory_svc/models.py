"""inventory_svc's tables: the stock of each SKU, each order's reservation, outbox and inbox.

The stock invariant is a check constraint: `0 <= reserved <= on_hand`, whatever the code does.
A reservation keeps the quantities it holds per SKU in `items` (JSON: `[{sku, quantity}]`), read
and written with its row, so that releasing it is exact, however the stock changed meanwhile.
"""

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
from sqlalchemy.dialects.postgresql import JSONB

from shared.messaging.tables import add_messaging_tables

metadata = MetaData()

stock = Table(
    "stock",
    metadata,
    # Bytewise order ("C"): listing by sku gives the same order on every server, whatever its
    # locale, and the key's index serves it.
    Column("sku", Text(collation="C"), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("on_hand BETWEEN 0 AND 1000000000", name="ck_stock_on_hand"),
    CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="ck_stock_reserved"),
    CheckConstraint("version >= 1", name="ck_stock_version"),
)

stock_reservations = Table(
    "stock_reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("status", Text, nullable=False),
    Column("items", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('reserved', 'rejected', 'released', 'cancelled')",
        name="ck_stock_reservations_status",
    ),
    CheckConstraint("jsonb_typeof(items) = 'array'", name="ck_stock_reservations_items"),
    CheckConstraint("version >= 1", name="ck_stock_reservations_version"),
)

outbox, inbox = add_messaging_tables(metadata)
