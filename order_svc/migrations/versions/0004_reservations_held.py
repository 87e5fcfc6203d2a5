"""which participants reserved for an order

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("credit_reserved", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column(
        "orders",
        sa.Column("stock_reserved", sa.Boolean(), server_default="false", nullable=False),
    )
    # Orders placed before inventory_svc took part were never sent to it: none of them waits for
    # its stock, or those still pending would wait forever.
    op.execute("UPDATE orders SET stock_reserved = true")


def downgrade() -> None:
    op.drop_column("orders", "stock_reserved")
    op.drop_column("orders", "credit_reserved")
