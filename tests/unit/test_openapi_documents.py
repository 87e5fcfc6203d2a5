"""The committed OpenAPI documents match the code, and what a route declares with
`shared.web.openapi.operation` (and the edge adds for it) is what the document says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from docsite import openapi as documents
from shared.web.auth import CurrentUserId
from shared.web.etags import IfMatch
from shared.web.openapi import (
    ETAG,
    LOCATION,
    Link,
    document_api,
    explicit_operation_id,
    header_refs,
    operation,
)

OPERATION_ID = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)+$")


def test_committed_documents_are_byte_for_byte_up_to_date() -> None:
    assert documents.main(["--check"]) == 0


def test_check_reports_an_edited_document_and_exits_1(tmp_path: Path) -> None:
    documents.DOCUMENTS.write(tmp_path)
    edited = tmp_path / "openapi" / "order_svc.json"
    edited.write_text(edited.read_text("utf-8").replace('"cancelOrder"', '"cancel"'))

    assert documents.DOCUMENTS.stale(tmp_path) == ["openapi/order_svc.json"]
    assert documents.main(["--check", "--dir", str(tmp_path)]) == 1


def test_check_reports_a_missing_document_and_one_of_no_service(tmp_path: Path) -> None:
    documents.DOCUMENTS.write(tmp_path)
    (tmp_path / "openapi" / "user_svc.json").unlink()
    (tmp_path / "openapi" / "billing_svc.json").write_text("{}\n")

    assert documents.DOCUMENTS.stale(tmp_path) == [
        "openapi/billing_svc.json",
        "openapi/user_svc.json",
    ]


@pytest.mark.parametrize("service", documents.present_services())
def test_every_operation_id_is_lower_camel_case_and_unique(service: str) -> None:
    paths = documents.openapi_documents()[service]["paths"]
    ids = [entry["operationId"] for operations in paths.values() for entry in operations.values()]

    assert [i for i in ids if not OPERATION_ID.fullmatch(i)] == []
    assert len(ids) == len(set(ids))


def test_a_route_without_an_operation_id_is_refused() -> None:
    app = FastAPI(generate_unique_id_function=explicit_operation_id)

    with pytest.raises(ValueError, match="/things has no operationId"):

        @app.get("/things")
        async def things() -> None: ...


class Thing(BaseModel):
    name: str


def documented(router: APIRouter) -> dict[str, Any]:
    app = FastAPI(generate_unique_id_function=explicit_operation_id)
    app.include_router(router)
    document_api(app, never_limited={"/healthz"}, servers=[{"url": "/"}])
    return app.openapi()


def test_a_route_states_its_operation_id_problems_and_success_headers() -> None:
    router = APIRouter()

    @router.post(
        "/things",
        **operation("makeThing", status=201, headers=[LOCATION, ETAG], problems={409: "Taken."}),
    )
    async def make(body: Thing) -> Thing:
        return body

    entry = documented(router)["paths"]["/things"]["post"]

    assert entry["operationId"] == "makeThing"
    assert {"Location", "ETag"} <= set(entry["responses"]["201"]["headers"])
    assert entry["responses"]["409"]["description"] == "Taken."
    assert "application/problem+json" in entry["responses"]["409"]["content"]
    assert "Retry-After" in entry["responses"]["503"]["headers"]


def test_the_edge_adds_401_400_413_422_and_429_with_rate_limit_headers_everywhere() -> None:
    router = APIRouter()

    @router.post("/things", **operation("makeThing"))
    async def make(body: Thing, caller: CurrentUserId) -> Thing:
        return body

    responses = documented(router)["paths"]["/things"]["post"]["responses"]

    assert set(responses) == {"200", "400", "401", "413", "422", "429", "503"}
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
    assert all(
        {"RateLimit", "RateLimit-Policy"} <= set(response["headers"])
        for response in responses.values()
    )
    assert "application/problem+json" in responses["422"]["content"]


def test_a_path_never_limited_declares_no_rate_limit() -> None:
    router = APIRouter()

    @router.get("/healthz", **operation("getHealth", reads_database=False))
    async def healthz() -> Thing:
        return Thing(name="ok")

    responses = documented(router)["paths"]["/healthz"]["get"]["responses"]

    assert set(responses) == {"200"}
    assert "RateLimit" not in responses["200"].get("headers", {})


@pytest.mark.parametrize(("if_match", "required"), [("required", True), ("when_exists", False)])
def test_a_conditional_route_declares_if_match_and_its_412_422_428(
    if_match: Any, required: bool
) -> None:
    router = APIRouter()

    @router.put("/things/{name}", **operation("putThing", if_match=if_match))
    async def put(name: str, condition: IfMatch = None) -> Thing:
        return Thing(name=name)

    entry = documented(router)["paths"]["/things/{name}"]["put"]
    [header] = [p for p in entry["parameters"] if p["in"] == "header"]

    assert (header["name"], header["required"]) == ("If-Match", required)
    assert {"412", "422", "428"} <= set(entry["responses"])


def test_a_route_links_its_success_response_to_the_operations_it_leads_to() -> None:
    router = APIRouter()
    change = Link(
        "putThing", {"name": "$response.body#/name", "header.If-Match": "$response.header.ETag"}
    )

    @router.get("/things/{name}", **operation("getThing", headers=[ETAG], links=[change]))
    async def get(name: str) -> Thing:
        return Thing(name=name)

    success = documented(router)["paths"]["/things/{name}"]["get"]["responses"]["200"]

    assert success["links"] == {"putThing": change.entry()}
    assert "ETag" in success["headers"]


def test_a_route_that_may_also_create_declares_its_second_success_status() -> None:
    router = APIRouter()
    created = {"model": Thing, "headers": header_refs(LOCATION, ETAG)}

    @router.put(
        "/things/{name}",
        **operation("setThing", headers=[ETAG], if_match="when_exists", responses={201: created}),
    )
    async def put(name: str, condition: IfMatch = None) -> Thing:
        return Thing(name=name)

    responses = documented(router)["paths"]["/things/{name}"]["put"]["responses"]

    assert {"ETag"} <= set(responses["200"]["headers"])
    assert {"Location", "ETag"} <= set(responses["201"]["headers"])
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
