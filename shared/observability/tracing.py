"""Distributed tracing (OpenTelemetry): one trace from the HTTP request through every event.

The trace context travels inside the data, not beside it: the unit of work writes the current
span's W3C `traceparent` into each CloudEvent it puts in the outbox, so the context survives the
commit, the relay, retries and crashes; the consumer continues it in a span of its own, and the
events it raises carry that span's context onward. `POST /orders` -> user_svc's reservation ->
order_svc's confirmation is therefore one trace.

Export is off by default and configured by the standard variables: `OTEL_TRACES_EXPORTER`
(`otlp` or `console`; anything else, or unset, exports nothing), `OTEL_EXPORTER_OTLP_ENDPOINT`
and friends for the OTLP exporter, `OTEL_SERVICE_NAME`. With export off the context is still
propagated, so a tracing collector can be switched on for one service at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("eventful")


def configure_tracing(service: str) -> None:
    exporter = _exporter(os.environ.get("OTEL_TRACES_EXPORTER", "none"))
    if exporter is None:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporter(name: str) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, if there is a valid one."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued_span(name: str, *, traceparent: str | None, kind: SpanKind) -> Iterator[Span]:
    """A span that continues the trace of `traceparent` (or starts one), current inside."""
    parent = _propagator.extract({"traceparent": traceparent} if traceparent else {})
    token = context.attach(parent)
    try:
        with tracer.start_as_current_span(name, kind=kind) as span:
            yield span
    finally:
        context.detach(token)


@contextmanager
def request_span(name: str, *, traceparent: str | None) -> Iterator[Span]:
    """The span of one HTTP request: under the web framework's server span if it opened one
    (recent FastAPI does, continuing the caller's context), else a server span of our own."""
    if trace.get_current_span().get_span_context().is_valid:
        with tracer.start_as_current_span(name) as span:
            yield span
    else:
        with continued_span(name, traceparent=traceparent, kind=SpanKind.SERVER) as span:
            yield span
