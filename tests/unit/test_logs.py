"""Structured logs: JSON lines that carry the service and, while a message is handled, its ids."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from shared.events import DomainEvent, UserUpdated
from shared.messaging.envelope import wrap
from shared.observability.logs import configure_logging, message_context


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """JSON logging as the service configures it, its handler writing into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(service="order_svc", format="json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers, root.level = saved[0], saved[1]


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [dict(json.loads(line)) for line in buffer.getvalue().splitlines()]


def test_a_library_log_line_is_json_with_the_service(
    json_logs: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").info("Application startup complete.")

    line = lines(json_logs)[-1]

    assert line["event"] == "Application startup complete."
    assert line["service"] == "order_svc"
    assert line["level"] == "info"
    assert line["logger"] == "uvicorn.error"
    assert "timestamp" in line


def test_a_line_written_while_handling_a_message_carries_its_identity(
    json_logs: io.StringIO,
) -> None:
    user_id, order_id = uuid.uuid4(), uuid.uuid4()
    envelope = wrap(
        DomainEvent(
            data=UserUpdated(user_id=user_id, name="Ada"),
            subject=user_id,
            aggregate_version=2,
            correlation_id=order_id,
        ),
        source="/user_svc",
    )

    with message_context(envelope):
        logging.getLogger("shared.messaging.consumer").warning("retrying")
    logging.getLogger("shared.messaging.consumer").warning("after")

    during, after = lines(json_logs)[-2:]
    assert during["event_id"] == str(envelope.id)
    assert during["event_type"] == "user.updated"
    assert during["subject"] == str(user_id)
    assert during["correlation_id"] == str(order_id)
    assert envelope.traceparent is not None
    assert during["trace_id"] == envelope.traceparent.split("-")[1]
    assert "event_id" not in after


def test_an_exception_is_rendered_inside_the_json_line(
    json_logs: io.StringIO,
) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("shared.messaging.relay").exception("relay failed")

    line = lines(json_logs)[-1]

    assert "RuntimeError: boom" in str(line["exception"])
