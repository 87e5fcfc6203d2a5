"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:21:10.552343

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.persistence.migration_ops import create_messaging_tables, drop_messaging_tables

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    create_messaging_tables()
    op.create_table(
        "credit_reservations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
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
            "state IN ('reserved', 'rejected', 'released', 'cancelled')",
            name="ck_credit_reservations_state",
        ),
        sa.CheckConstraint("amount >= 0", name="ck_credit_reservations_amount"),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index(
        op.f("ix_credit_reservations_user_id"), "credit_reservations", ["user_id"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("credit_limit", sa.BigInteger(), nullable=False),
        sa.Column("credit_reserved", sa.BigInteger(), nullable=False),
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
        sa.CheckConstraint("status IN ('active', 'deactivated')", name="ck_users_status"),
        sa.CheckConstraint("credit_limit >= 0", name="ck_users_credit_limit"),
        sa.CheckConstraint(
            "credit_reserved >= 0 AND credit_reserved <= credit_limit",
            name="ck_users_credit_reserved",
        ),
        sa.CheckConstraint("version >= 1", name="ck_users_version"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("users")
    op.drop_index(op.f("ix_credit_reservations_user_id"), table_name="credit_reservations")
    op.drop_table("credit_reservations")
    drop_messaging_tables()
