"""initial schema

Revision ID: 0001
Revises:
Create Date: 2027-01-10 00:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.persistence.migration_ops import (
    create_messaging_tables,
    create_outbox_notify_trigger,
    drop_messaging_tables,
    drop_outbox_notify_trigger,
)

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    create_messaging_tables()
    create_outbox_notify_trigger()
    op.create_table(
        "stock",
        sa.Column("sku", sa.Text(collation="C"), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("on_hand BETWEEN 0 AND 1000000000", name="ck_stock_on_hand"),
        sa.CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="ck_stock_reserved"),
        sa.CheckConstraint("version >= 1", name="ck_stock_version"),
        sa.PrimaryKeyConstraint("sku"),
    )
    op.create_table(
        "stock_reservations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('reserved', 'rejected', 'released', 'cancelled')",
            name="ck_stock_reservations_status",
        ),
        sa.CheckConstraint("jsonb_typeof(items) = 'array'", name="ck_stock_reservations_items"),
        sa.CheckConstraint("version >= 1", name="ck_stock_reservations_version"),
        sa.PrimaryKeyConstraint("order_id"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("stock_reservations")
    op.drop_table("stock")
    drop_outbox_notify_trigger()
    drop_messaging_tables()
