"""outbox notify trigger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:00:00.000000

"""

from collections.abc import Sequence

from shared.persistence.migration_ops import (
    create_outbox_notify_trigger,
    drop_outbox_notify_trigger,
)

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_notify_trigger()


def downgrade() -> None:
    drop_outbox_notify_trigger()
