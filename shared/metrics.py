"""Prometheus metrics of one service process, on a registry of its own.

A registry per composition root (not the global default) lets tests run several services in
one process without name clashes. Names follow Prometheus conventions: `_total` for counters,
`_seconds` for durations.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.messages_consumed = Counter(
            "consumer_messages_total",
            "Messages consumed, by outcome (applied, duplicate, dead_lettered).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "consumer_handler_duration_seconds",
            "Time to process one message, from delivery to acknowledgement.",
            ["type"],
            registry=self.registry,
        )
