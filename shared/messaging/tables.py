"""The messaging tables every service has in its own database: `outbox` and `inbox`.

Defined once here and added to each service's metadata, so both services' relays and consumers
run against the same shapes.

- `outbox`: one row per event, written in the transaction of the state change that caused it.
  `seq` gives publication order; `published_at` is set only after the broker confirmed the
  message. The partial index keeps the relay's claim query proportional to the backlog, not to
  the history.
- `inbox`: one row per (consumer, event id) processed. Its primary key *is* the idempotency
  check: a second delivery of the same event conflicts on insert and is skipped.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
)


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
    )
    Index(
        "ix_outbox_unpublished",
        outbox.c.seq,
        postgresql_where=outbox.c.published_at.is_(None),
    )
    Index(
        "ix_outbox_published_at",
        outbox.c.published_at,
        postgresql_where=outbox.c.published_at.is_not(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    Index("ix_inbox_processed_at", inbox.c.processed_at)
    return outbox, inbox
