"""Structured logs: one JSON object per line in production, readable lines in development.

Every record, ours and the libraries' (uvicorn, aio-pika, SQLAlchemy), goes through the same
structlog processors, so each line carries the service name, whichever module wrote it. A line
written while a message is being handled also carries that message's event id, type, subject,
correlation id and trace id (bound with `message_context`); a line written while an HTTP request
is served (uvicorn's access line included) carries the request's id (`REQUEST_ID`, set by the
HTTP middleware) and its trace id. The trace id of a line is read from the current span when
the line is written, so serving a request that logs nothing costs nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.messaging.envelope import CloudEvent

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the HTTP request being served, if any."""


def configure_logging(*, service: str, format: Literal["json", "console"]) -> None:
    def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event.setdefault("service", service)
        return event

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        add_request_and_trace_ids,
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


def add_request_and_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The request's id, and the current span's trace id unless a message's is bound."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    if "trace_id" not in event:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            event["trace_id"] = format(span_context.trace_id, "032x")
    return event


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
