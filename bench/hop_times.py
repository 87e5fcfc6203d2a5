"""The instants of the latency model (`bench.hops`): each timed order's, read back from the
services' outboxes and inboxes, and each timed read's, from its `Server-Timing`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from bench.hops import PARTICIPANTS, Timeline, needed
from shared.persistence.database import dsn


def _seconds(value: datetime | str) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.timestamp()


async def saga_timelines(
    *,
    databases: Mapping[str, str],
    placed: Mapping[str, float],
    delivered: Mapping[str, float],
) -> list[Timeline]:
    """Each placed order's instants, read back from the services' outboxes and inboxes
    (`databases`: each service's URL by name); orders with any instant missing are left out."""
    if not placed:
        return []
    since = datetime.fromtimestamp(min(placed.values()) - 1, UTC)
    connections = {service: await asyncpg.connect(dsn(url)) for service, url in databases.items()}
    try:
        own = await connections["order_svc"].fetch(
            "SELECT id, type, subject, body, published_at FROM outbox "
            "WHERE type = ANY($1::text[]) AND subject = ANY($2::text[])",
            ["order.created", "order.confirmed"],
            list(placed),
        )
        created = [row["id"] for row in own if row["type"] == "order.created"]
        reservations = {
            participant: await connections[participant].fetch(
                "SELECT id, type, body, published_at FROM outbox "
                "WHERE type = $1 AND created_at >= $2",
                reservation,
                since,
            )
            for participant, reservation in PARTICIPANTS.items()
        }
        # When each participant applied order.created, and order_svc each reservation.
        applied = {
            participant: await _applied(connections[participant], created)
            for participant in PARTICIPANTS
        }
        applied["order_svc"] = await _applied(
            connections["order_svc"],
            [row["id"] for rows in reservations.values() for row in rows],
        )
    finally:
        for connection in connections.values():
            await connection.close()

    return _assemble(placed, delivered, own, reservations, applied)


def _assemble(
    placed: Mapping[str, float],
    delivered: Mapping[str, float],
    own: Sequence[asyncpg.Record],
    reservations: Mapping[str, Sequence[asyncpg.Record]],
    applied: Mapping[str, Mapping[Any, float]],
) -> list[Timeline]:
    instants = {order_id: {"sent": sent} for order_id, sent in placed.items()}
    by_cause: dict[str, str] = {}
    completing: dict[str, str] = {}  # order.confirmed's cause -> its order
    for row in own:
        envelope = json.loads(row["body"])
        order_id = row["subject"]
        by_cause[str(row["id"])] = order_id
        _instants(instants[order_id], row, envelope, delivered)
        if row["type"] == "order.confirmed":
            completing[str(envelope.get("causationid"))] = order_id
        for participant in PARTICIPANTS:
            if row["id"] in applied[participant]:
                at = applied[participant][row["id"]]
                instants[order_id][f"order.created:applied@{participant}"] = at
    later: dict[str, str] = {}
    for participant, rows in reservations.items():
        for row in rows:
            envelope = json.loads(row["body"])
            order_id = by_cause.get(str(envelope.get("causationid")))
            if order_id is None:
                continue
            _instants(instants[order_id], row, envelope, delivered)
            if row["id"] in applied["order_svc"]:
                instants[order_id][f"{row['type']}:applied"] = applied["order_svc"][row["id"]]
            if str(row["id"]) in completing:
                later[order_id] = participant
    return [
        Timeline(timeline, later[order_id])
        for order_id, timeline in instants.items()
        if order_id in later and needed(later[order_id]) <= timeline.keys()
    ]


async def _applied(connection: asyncpg.Connection, event_ids: list[Any]) -> dict[Any, float]:
    rows = await connection.fetch(
        "SELECT event_id, processed_at FROM inbox WHERE event_id = ANY($1::uuid[])", event_ids
    )
    return {row["event_id"]: _seconds(row["processed_at"]) for row in rows}


def _instants(
    timeline: dict[str, float],
    row: asyncpg.Record,
    envelope: Mapping[str, Any],
    delivered: Mapping[str, float],
) -> None:
    kind = envelope["type"]
    timeline[f"{kind}:commit"] = _seconds(envelope["time"])
    if row["published_at"] is not None:
        timeline[f"{kind}:claimed"] = _seconds(row["published_at"])
    if str(row["id"]) in delivered:
        timeline[f"{kind}:delivered"] = delivered[str(row["id"])]


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
