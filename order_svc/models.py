"""order_svc's tables: orders and their items, the customers replica, outbox and inbox.

The customers replica keeps a version per group of fields (`name_version`, `status_version`)
besides the row's `version`, because `user.*` events carry partial state: see
`shared.persistence.versioning.apply_if_newer`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from shared.messaging.tables import add_messaging_tables

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    # Which participants of the saga have reserved for the order (it is confirmed when both).
    Column("credit_reserved", Boolean, nullable=False, server_default="false"),
    Column("stock_reserved", Boolean, nullable=False, server_default="false"),
    Column("total", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("idempotency_key", Text),
    Column("request_fingerprint", Text),
    CheckConstraint(
        "status IN ('pending', 'confirmed', 'rejected', 'cancelled')", name="ck_orders_status"
    ),
    CheckConstraint("total >= 0", name="ck_orders_total"),
    CheckConstraint("version >= 1", name="ck_orders_version"),
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_idempotency_key"),
)
Index("ix_orders_user_newest", orders.c.user_id, orders.c.created_at.desc(), orders.c.id.desc())
# The undecided orders only: the workers measure the oldest of them (`order_svc.pending_orders`).
Index("ix_orders_pending", orders.c.created_at, postgresql_where=orders.c.status == "pending")

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", Uuid, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    PrimaryKeyConstraint("order_id", "position", name="pk_order_items"),
    CheckConstraint("quantity BETWEEN 1 AND 10000", name="ck_order_items_quantity"),
    CheckConstraint("unit_price BETWEEN 0 AND 1000000000", name="ck_order_items_unit_price"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text),
    Column("status", Text),
    Column("name_version", Integer, nullable=False, server_default="0"),
    Column("status_version", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
)

outbox, inbox = add_messaging_tables(metadata)
