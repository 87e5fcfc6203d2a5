"""Distributed tracing (OpenTelemetry): one trace from the HTTP request through every event.

The trace context travels inside the data, not beside it: the unit of work writes the current
span's W3C `traceparent` into each CloudEvent it puts in the outbox, so the context survives the
commit, the relay, retries and crashes; the consumer continues it in a span of its own, and the
events it raises carry that span's context onward. `POST /orders` -> user_svc's reservation ->
order_svc's confirmation is therefore one trace.

Configured by the standard `OTEL_*` variables, read by the SDK itself where it can:
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the resource; the service's own name only
when `OTEL_SERVICE_NAME` is unset), `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, the
`OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` settings of the exporter and its batching, and
`OTEL_SDK_DISABLED`. `OTEL_TRACES_EXPORTER` names the exporters, as the SDK's entry points name
them (`otlp`, `console`, `none`); unset, it is `otlp` where an OTLP endpoint is given and `none`
otherwise, so a process with no collector configured does not retry a localhost one.

A process that exports nothing makes no spans at all: they would cost every request and every
statement for nobody. Its traces are still carried: a request that brings no `traceparent` gets
trace ids of its own (`request_span`), which go on its log lines and into the events it raises,
and consumers continue them, so a collector can be switched on for one service at a time.

asyncpg statements and aio-pika publishes and deliveries become spans through the
OpenTelemetry instrumentation packages. Work that belongs to no request or message (the
relay's polling, housekeeping sweeps, a consumer batch's shared statements) runs `untraced`:
each of its statements would otherwise start a trace of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_ids = RandomIdGenerator()
tracer = trace.get_tracer("eventful")

# The SDK's entry point of each OTLP transport; only http/protobuf is installed.
_OTLP_ENTRY_POINTS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


def configure_tracing(service: str) -> None:
    """Make and export this process's spans as the `OTEL_*` variables say, and trace its
    libraries; nothing at all if they export nothing.

    Called before any connection is opened."""
    exporters = span_exporters()
    if not exporters:
        return
    provider = tracer_provider(service)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument_libraries()


def tracer_provider(service: str) -> TracerProvider:
    """A provider as the `OTEL_*` variables describe it (its resource and sampler), named
    `service` unless `OTEL_SERVICE_NAME` names it; it exports nothing yet."""
    # Resource.create lets the attributes given in code override the environment's: merge the
    # environment's back on top, so the service's name is only the default.
    resource = Resource.create({SERVICE_NAME: service}).merge(OTELResourceDetector().detect())
    return TracerProvider(resource=resource)


def span_exporters() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (none when `OTEL_SDK_DISABLED` is true)."""
    if os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return []
    endpoint = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or os.environ.get(
        OTEL_EXPORTER_OTLP_ENDPOINT
    )
    names = os.environ.get(OTEL_TRACES_EXPORTER) or ("otlp" if endpoint else "none")
    return [
        _exporter(name)
        for name in (part.strip().lower() for part in names.split(","))
        if name and name != "none"
    ]


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        protocol = (
            os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
            or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL)
            or "http/protobuf"
        )
        name = _OTLP_ENTRY_POINTS.get(protocol, protocol)
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        known = sorted(e.name for e in entry_points(group="opentelemetry_traces_exporter"))
        raise ValueError(
            f"{OTEL_TRACES_EXPORTER}: no span exporter {name!r} is installed "
            f"(installed: otlp, none, {', '.join(known)})"
        )
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def instrument_libraries() -> None:
    """Spans for every asyncpg statement and every aio-pika publish and delivery."""
    # AsyncPGInstrumentor's constructor has no annotations.
    for instrumentor in (AsyncPGInstrumentor(), AioPikaInstrumentor()):  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def publishes_traced() -> bool:
    """Whether a publish makes a span in this process (`configure_tracing` found an exporter)."""
    return bool(AioPikaInstrumentor().is_instrumented_by_opentelemetry)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, if there is a valid one."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def _context_of(traceparent: str | None) -> Context:
    """A context holding only the span `traceparent` names (an empty one without it), so
    whatever the caller's context held, `untraced` included, does not carry over."""
    return _propagator.extract(
        {"traceparent": traceparent} if traceparent else {}, context=Context()
    )


@contextmanager
def in_trace_of(traceparent: str | None) -> Iterator[None]:
    """Spans started inside are children of `traceparent`'s span (or start a trace)."""
    token = context.attach(_context_of(traceparent))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def request_span(name: str, *, traceparent: str | None) -> Iterator[Span]:
    """The server span of one HTTP request, continuing the caller's trace (or starting one).

    Where this process makes no spans and the caller sent no trace, the request still gets ids
    of its own, sampled, as a span of ours would have: its log lines and the events it raises
    carry them, and a service that does export records the rest of the trace."""
    span = tracer.start_span(name, context=_context_of(traceparent), kind=SpanKind.SERVER)
    if not span.get_span_context().is_valid:
        span = NonRecordingSpan(
            SpanContext(
                trace_id=_ids.generate_trace_id(),
                span_id=_ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
    with trace.use_span(span, end_on_exit=True):
        yield span


@contextmanager
def continued_span(name: str, *, traceparent: str | None, kind: SpanKind) -> Iterator[Span]:
    """A span that continues the trace of `traceparent` (or starts one), current inside."""
    with in_trace_of(traceparent), tracer.start_as_current_span(name, kind=kind) as span:
        yield span


@contextmanager
def untraced() -> Iterator[None]:
    """No spans from the instrumented libraries inside, but in an `in_trace_of` or a
    `continued_span` opened inside."""
    with suppress_instrumentation():
        yield
