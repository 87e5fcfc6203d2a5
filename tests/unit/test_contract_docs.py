"""The contract in `docs/contract/` and the code agree: the same event types, fields and routes.

The docs are the in-repository contract, so they must describe what the services really do.
Every event type documented is in the catalogue (`shared.events.EVENT_TYPES`) with exactly the
documented `data` fields, and every catalogued type is documented; every route documented for a
service is in that service's OpenAPI document (its app built, never started), and every route in
it is documented.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docsite.openapi import openapi_documents, present_services
from shared.events import EVENT_TYPES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contract"
EVENTS_PAGE = DOCS / "events.md"
HTTP_PAGE = DOCS / "http-api.md"


# A row of the events table: | `type` | publisher | consumers | `{field, field}` | when |
_EVENT_ROW = re.compile(
    r"^\| `(?P<type>[a-z]+\.[a-z_]+)` \|[^|]*\|[^|]*\| `\{(?P<fields>[^}]*)\}` \|"
)
# A documented call: `METHOD /path` at the start of a table cell.
_ROUTE = re.compile(r"^\| `(?P<method>GET|POST|PUT|PATCH|DELETE) (?P<path>/[^` ?]*)")
# Routes of "## Every service" belong to every service in this checkout; "## <service>" to that
# one, built or not.
_SECTION = re.compile(r"^## (?P<name>Every service|[a-z_]+_svc)\b")


def documented_events() -> dict[str, set[str]]:
    events: dict[str, set[str]] = {}
    for line in EVENTS_PAGE.read_text(encoding="utf-8").splitlines():
        if match := _EVENT_ROW.match(line):
            fields = {field.strip() for field in match["fields"].split(",") if field.strip()}
            events[match["type"]] = fields
    return events


def documented_routes() -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    section: str | None = None
    for line in HTTP_PAGE.read_text(encoding="utf-8").splitlines():
        if heading := _SECTION.match(line):
            section = heading["name"]
        elif line.startswith("## "):
            section = None
        elif section is not None and (match := _ROUTE.match(line)):
            owners = present_services() if section == "Every service" else [section]
            routes |= {(owner, f"{match['method']} {match['path']}") for owner in owners}
    return routes


@pytest.fixture(scope="module")
def served_routes() -> set[tuple[str, str]]:
    """(service, "METHOD /path") of every service in this checkout, from its OpenAPI document,
    plus what every service serves outside it: the metrics and the document itself."""
    routes = set()
    for service, document in openapi_documents().items():
        routes |= {(service, "GET /metrics"), (service, "GET /openapi.json")}
        for path, operations in document["paths"].items():
            routes |= {(service, f"{method.upper()} {path}") for method in operations}
    return routes


def test_the_pages_are_parsed_at_all() -> None:
    assert len(documented_events()) >= len(EVENT_TYPES)
    assert ("order_svc", "POST /orders") in documented_routes()
    assert ("user_svc", "GET /healthz") in documented_routes()


def test_every_catalogued_event_type_is_documented() -> None:
    assert set(EVENT_TYPES) - set(documented_events()) == set()


def test_every_documented_event_type_is_catalogued() -> None:
    missing = set(documented_events()) - set(EVENT_TYPES)
    assert missing == set(), f"documented but not in shared.events.EVENT_TYPES: {sorted(missing)}"


def test_each_documented_data_has_exactly_the_models_fields() -> None:
    for event_type, fields in documented_events().items():
        if event_type in EVENT_TYPES:
            assert fields == set(EVENT_TYPES[event_type].model_fields), event_type


def test_every_documented_route_is_served(served_routes: set[tuple[str, str]]) -> None:
    missing = documented_routes() - served_routes
    assert missing == set(), f"documented but not served: {sorted(missing)}"


def test_every_served_route_is_documented(served_routes: set[tuple[str, str]]) -> None:
    undocumented = served_routes - documented_routes()
    assert undocumented == set(), f"served but not in docs/contract/http-api.md: {undocumented}"
