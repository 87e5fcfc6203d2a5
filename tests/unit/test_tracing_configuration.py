"""Tracing is configured by the standard OpenTelemetry variables (`OTEL_*`), as the SDK reads
them, with the service's own name only as the default, and exports nowhere unless told where."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.observability.tracing import span_exporters, tracer_provider

OTEL_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def configured(service: str = "order_svc") -> TracerProvider:
    """The provider, exporting to what the variables name, as a service process configures it."""
    provider = tracer_provider(service)
    for exporter in span_exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def one_span(provider: TracerProvider) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span("work").end()
    [span] = exporter.get_finished_spans()
    return span


def test_the_service_name_is_the_services_own_by_default() -> None:
    span = one_span(configured("order_svc"))

    assert span.resource.attributes["service.name"] == "order_svc"


def test_otel_service_name_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-eu")

    span = one_span(configured("order_svc"))

    assert span.resource.attributes["service.name"] == "orders-eu"


def test_otel_resource_attributes_are_on_every_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,service.version=1.2.3"
    )

    attributes = one_span(configured()).resource.attributes

    assert attributes["deployment.environment.name"] == "staging"
    assert attributes["service.version"] == "1.2.3"
    assert attributes["service.name"] == "order_svc"


def test_otel_service_name_wins_over_a_name_in_the_resource_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")

    span = one_span(configured())

    assert span.resource.attributes["service.name"] == "from-service-name"


def test_the_sdk_reads_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    provider = configured()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    span = provider.get_tracer("test").start_span("work")
    span.end()

    assert exporter.get_finished_spans() == ()
    # Not sampled, but still a trace: its ids go on log lines and into events.
    assert span.get_span_context().is_valid


def test_nothing_is_exported_unless_an_exporter_or_an_endpoint_is_named() -> None:
    assert span_exporters() == []


def test_otel_traces_exporter_names_the_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    [exporter] = span_exporters()

    assert isinstance(exporter, ConsoleSpanExporter)


def test_otel_sdk_disabled_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")

    assert span_exporters() == []


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it receives."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Receiving", (Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def test_an_otlp_endpoint_alone_turns_on_otlp_export(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-otlp")
    provider = configured()

    provider.get_tracer("test").start_span("exported-work").end()
    provider.force_flush()

    [(path, body)] = received
    assert path == "/v1/traces"
    assert b"exported-work" in body
    assert b"orders-otlp" in body


def test_an_exporter_that_is_not_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")

    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER: no span exporter 'zipkin'"):
        span_exporters()


def test_otel_traces_exporter_none_exports_nothing_even_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = configured()

    provider.get_tracer("test").start_span("work").end()
    provider.force_flush()

    assert received == []
