"""Prometheus metrics of one service process, on a registry of its own.

A registry per composition root (not the global default) lets tests run several services in
one process without name clashes. Names follow Prometheus conventions: `_total` for counters,
`_seconds` for durations. Beside our own, each registry carries the client library's standard
collectors (`process_*`, `python_gc_*`, `python_info`), which the default registry would have
had, so the usual process dashboards and alerts work on every service process.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "relay_events_published_total",
            "Outbox events published to the broker and confirmed.",
            ["type"],
            registry=self.registry,
        )
        self.relay_confirm_duration = Histogram(
            "relay_confirm_duration_seconds",
            "Time from publishing a batch to the broker's last confirm of it.",
            registry=self.registry,
        )
        self.outbox_unpublished = Gauge(
            "outbox_unpublished_events",
            "Outbox events not yet confirmed by the broker (after the relay's last pass).",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when there is none).",
            registry=self.registry,
        )
        self.messages_consumed = Counter(
            "consumer_messages_total",
            "Messages consumed, by outcome (applied, duplicate, retried, dead_lettered).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "consumer_handler_duration_seconds",
            "Time to process one message, from delivery to acknowledgement.",
            ["type"],
            registry=self.registry,
        )
        self.event_age = Histogram(
            "consumer_event_age_seconds",
            "Age of an event when its consumer takes it: now minus the CloudEvent `time`.",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.rate_limit_storage_errors = Counter(
            "rate_limit_storage_errors_total",
            "Rate-limit store calls that failed or timed out (the request was served unlimited).",
            registry=self.registry,
        )
