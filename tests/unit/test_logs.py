"""Structured logs: JSON lines that carry the service and, while a message is handled or an HTTP
request served, its ids."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from shared.events import DomainEvent, UserUpdated
from shared.messaging.envelope import wrap
from shared.observability.logs import configure_logging, message_context
from shared.observability.metrics import Metrics
from shared.observability.tracing import current_traceparent
from shared.web.middleware import install_observability_middleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
NEW_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


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


def app_that_logs() -> FastAPI:
    app = FastAPI()
    install_observability_middleware(app, Metrics())

    @app.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("order_svc.api").info("working")
        return {}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    @app.get("/traceparent")
    async def traceparent() -> dict[str, str | None]:
        """What the events raised here would carry."""
        logging.getLogger("order_svc.api").info("raising")
        return {"traceparent": current_traceparent()}

    return app


async def get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_that_logs())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get(path, headers=headers)


def written(buffer: io.StringIO, event: str) -> dict[str, object]:
    [line] = [line for line in lines(buffer) if line["event"] == event]
    return line


async def test_a_line_written_while_serving_a_request_carries_its_request_and_trace_ids(
    json_logs: io.StringIO,
) -> None:
    await get("/work", **{"X-Request-ID": "req-42", "traceparent": TRACEPARENT})

    line = written(json_logs, "working")

    assert line["request_id"] == "req-42"
    assert line["trace_id"] == TRACE_ID


async def test_a_request_that_brings_no_trace_has_one_on_its_lines_and_in_its_events(
    json_logs: io.StringIO,
) -> None:
    response = await get("/traceparent")

    trace_id = written(json_logs, "raising")["trace_id"]
    assert isinstance(trace_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert response.json()["traceparent"].split("-")[1] == trace_id


async def test_the_response_echoes_the_callers_request_id(json_logs: io.StringIO) -> None:
    response = await get("/work", **{"X-Request-ID": "req-42"})

    assert response.headers["X-Request-ID"] == "req-42"


async def test_the_response_says_how_long_the_service_took_in_server_timing(
    json_logs: io.StringIO,
) -> None:
    response = await get("/work")

    timing = re.fullmatch(r"app;dur=(\d+\.\d{3})", response.headers["Server-Timing"])
    assert timing is not None
    assert 0 < float(timing.group(1)) < 60_000


async def test_a_request_without_an_id_gets_a_new_one_in_its_response_and_on_its_lines(
    json_logs: io.StringIO,
) -> None:
    response = await get("/work")

    request_id = response.headers["X-Request-ID"]
    assert NEW_REQUEST_ID.fullmatch(request_id)
    assert written(json_logs, "working")["request_id"] == request_id


@pytest.mark.parametrize(
    "malformed",
    ["two words", 'quote"d', "new\\nline", "x" * 129, "ünïcode"],
    ids=["space", "quote", "backslash", "too-long", "non-ascii"],
)
async def test_a_malformed_request_id_is_replaced(json_logs: io.StringIO, malformed: str) -> None:
    transport = httpx.ASGITransport(app=app_that_logs())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get("/work", headers=[("X-Request-ID", malformed.encode())])

    request_id = response.headers["X-Request-ID"]
    assert NEW_REQUEST_ID.fullmatch(request_id)
    assert written(json_logs, "working")["request_id"] == request_id


async def test_a_line_written_after_the_request_carries_no_request_id(
    json_logs: io.StringIO,
) -> None:
    await get("/work", **{"X-Request-ID": "req-42"})
    logging.getLogger("order_svc.api").info("idle")

    assert "request_id" not in written(json_logs, "idle")


async def test_an_unhandled_error_is_answered_500_and_logged_once_with_the_requests_ids(
    json_logs: io.StringIO,
) -> None:
    response = await get("/crash", **{"X-Request-ID": "req-42", "traceparent": TRACEPARENT})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "req-42"
    [line] = [line for line in lines(json_logs) if line["level"] == "error"]
    assert "RuntimeError: a bug" in str(line["exception"])
    assert line["request_id"] == "req-42"
    assert line["trace_id"] == TRACE_ID
