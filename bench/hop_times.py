"""The instants of the latency model (`bench.hops`): each timed order's, read back from both
services' outboxes and inboxes, and each timed read's, from its `Server-Timing`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from bench.hops import SAGA
from shared.persistence.database import dsn


def _seconds(value: datetime | str) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.timestamp()


async def saga_timelines(
    *,
    order_db: str,
    user_db: str,
    placed: Mapping[str, float],
    delivered: Mapping[str, float],
) -> list[dict[str, float]]:
    """Each placed order's instants, by name (`sent`, `<event>:<instant>`), read back from both
    services' outboxes and inboxes; orders with any instant missing are left out."""
    if not placed:
        return []
    since = datetime.fromtimestamp(min(placed.values()) - 1, UTC)
    orders = await asyncpg.connect(dsn(order_db))
    users = await asyncpg.connect(dsn(user_db))
    try:
        own = await orders.fetch(
            "SELECT id, type, subject, body, published_at FROM outbox "
            "WHERE type = ANY($1::text[]) AND subject = ANY($2::text[])",
            ["order.created", "order.confirmed"],
            list(placed),
        )
        created_ids = [row["id"] for row in own if row["type"] == "order.created"]
        reserved = await users.fetch(
            "SELECT id, body, published_at FROM outbox "
            "WHERE type = 'user.credit_reserved' AND created_at >= $1",
            since,
        )
        reserved_ids = [row["id"] for row in reserved]
        applied = {
            row["event_id"]: row["processed_at"]
            for row in await users.fetch(
                "SELECT event_id, processed_at FROM inbox WHERE event_id = ANY($1::uuid[])",
                created_ids,
            )
        }
        applied.update(
            (row["event_id"], row["processed_at"])
            for row in await orders.fetch(
                "SELECT event_id, processed_at FROM inbox WHERE event_id = ANY($1::uuid[])",
                reserved_ids,
            )
        )
    finally:
        await orders.close()
        await users.close()

    timelines: dict[str, dict[str, float]] = {
        order_id: {"sent": sent} for order_id, sent in placed.items()
    }
    by_cause: dict[str, str] = {}
    for row in own:
        envelope = json.loads(row["body"])
        order_id = row["subject"]
        by_cause[str(row["id"])] = order_id
        _instants(timelines[order_id], row, envelope, delivered, applied)
    for row in reserved:
        envelope = json.loads(row["body"])
        order_id = by_cause.get(str(envelope.get("causationid")))
        if order_id is not None:
            _instants(timelines[order_id], row, envelope, delivered, applied)
    needed = {instant for hop in SAGA for _, start, end in hop.parts for instant in (start, end)}
    return [t for t in timelines.values() if needed <= t.keys()]


def _instants(
    timeline: dict[str, float],
    row: asyncpg.Record,
    envelope: Mapping[str, Any],
    delivered: Mapping[str, float],
    applied: Mapping[Any, datetime],
) -> None:
    kind = envelope["type"]
    timeline[f"{kind}:commit"] = _seconds(envelope["time"])
    if row["published_at"] is not None:
        timeline[f"{kind}:claimed"] = _seconds(row["published_at"])
    if str(row["id"]) in delivered:
        timeline[f"{kind}:delivered"] = delivered[str(row["id"])]
    if row["id"] in applied:
        timeline[f"{kind}:applied"] = _seconds(applied[row["id"]])


_SERVER_TIMING = re.compile(r"app;dur=([\d.]+)")


async def read_timings(url: str, token: str, *, requests: int) -> list[dict[str, float]]:
    """`requests` reads one after the other; each one's parts, in seconds."""
    timings = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as client:
        for _ in range(requests):
            started = time.perf_counter()
            async with client.get(url, headers=headers) as response:
                headed = time.perf_counter()
                await response.read()
                finished = time.perf_counter()
                if response.status != 200:
                    raise RuntimeError(f"GET {url}: {response.status}")
                found = _SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
            if found is None:
                raise RuntimeError(f"GET {url}: no Server-Timing app;dur in the response")
            service = float(found.group(1)) / 1000
            timings.append(
                {
                    "request": service,
                    "response": finished - headed,
                    "network": headed - started - service,
                }
            )
    return timings
