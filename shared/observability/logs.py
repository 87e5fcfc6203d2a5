"""Structured logs: one JSON object per line in production, readable lines in development.

Every record, ours and the libraries' (uvicorn, aio-pika, SQLAlchemy), goes through the same
structlog processors, so each line carries the service name, and a line written while a message
is being handled also carries that message's event id, type, subject, correlation id and trace
id (bound with `message_context`), whichever module wrote it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.messaging.envelope import CloudEvent


def configure_logging(*, service: str, format: Literal["json", "console"]) -> None:
    def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event.setdefault("service", service)
        return event

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # JSON needs the traceback rendered into a field; the console renderer formats it itself.
    renderers: list[Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if format == "json"
        else [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)


@contextmanager
def message_context(envelope: CloudEvent) -> Iterator[None]:
    """Bind the message's identity to every log line written while it is handled."""
    trace_id = envelope.traceparent.split("-")[1] if envelope.traceparent else None
    with structlog.contextvars.bound_contextvars(
        event_id=str(envelope.id),
        event_type=envelope.type,
        subject=envelope.subject,
        correlation_id=envelope.correlationid,
        trace_id=trace_id,
    ):
        yield
