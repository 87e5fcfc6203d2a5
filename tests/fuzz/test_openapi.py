"""Both services' HTTP APIs, fuzzed with schemathesis from their own OpenAPI documents.

Each app is built in-process, in the `api` role, on a fresh migrated database and called through
its ASGI interface without its lifespan: the HTTP handlers only write to the database and the
outbox, and the role needs no broker, relay or consumer. Every operation gets valid and invalid
requests, authenticated as a real user of the service, and two properties are checked
separately, so a failure of one never hides a failure of the other:

- no request is answered with a 5xx;
- every response matches the document: its content type, and its body's JSON Schema.

(`status_code_conformance` is left out on purpose: the contract's 401/404/409/412/428 answers
are not in the generated documents, and the requirement does not ask for them.)

`FUZZ_EXAMPLES` sets the examples per operation (a few in CI, many in `make fuzz`), `FUZZ_SEED`
the seed. A run is reproducible for a given seed; every failure comes with a curl command.

Operations are driven through `APIOperation.as_strategy()` and `@given` rather than through
schemathesis' pytest integration (`schemathesis.pytest.from_fixture`), which fails on pytest 9.2
(it relies on `Node._nodeid`, which pytest 9.2 no longer has).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from starlette.types import Receive, Scope, Send

from order_svc.app import create_app as create_order_app
from order_svc.settings import OrderSettings
from shared.persistence.database import drop_database
from shared.runtime.roles import Role
from shared.web.tokens import SigningKey
from tests.support.databases import new_database
from tests.support.settings import NO_RATE_LIMITS
from user_svc.app import create_app as create_user_app
from user_svc.settings import UserSettings

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
JWT_SECRET = "fuzz-test-secret-0123456789abcdef-0123"
SIGNING_KEY = SigningKey.from_secret(JWT_SECRET)
PASSWORD = "correct horse battery"

NO_SERVER_ERROR: list[CheckFunction] = [not_a_server_error]
AS_DOCUMENTED: list[CheckFunction] = [response_schema_conformance, content_type_conformance]

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # Requests to a real database are slow for Hypothesis' taste, and invalid-data strategies
    # filter a lot; neither says anything about the API.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class WithoutServiceLifespan:
    """The app behind a lifespan of its own instead of the service's.

    Startup does nothing (the keys are static), and shutdown only closes the database's
    connections, in the event loop that opened them: schemathesis serves every request from one
    loop, in a thread of its own.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.app.state.database.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[tuple[WithoutServiceLifespan, asgi.ASGIClient]]:
    served = WithoutServiceLifespan(app)
    try:
        with asgi.get_client(served) as client:
            yield served, client
    finally:
        asgi.shutdown_lifespans()


@dataclass
class Api:
    schema: schemathesis.BaseSchema
    cases: Counter[str] = field(default_factory=Counter)

    def report(self, service: str) -> None:
        """How much was fuzzed, for `make fuzz -s` and the issue notes."""
        print(f"\n{service}: {sum(self.cases.values())} requests over {len(self.cases)} operations")


def load_schema(served: WithoutServiceLifespan, *, token: str) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict({"headers": {"Authorization": f"Bearer {token}"}})
    return schemathesis.openapi.from_asgi("/openapi.json", served, config=config)


def reach_past_the_guards(schema: schemathesis.BaseSchema, owned: dict[str, str]) -> None:
    """Some generated ids become the caller's own, and some `If-Match` headers a real early
    version, so requests also get past "not yours" (404) and "stale" (412) to the handlers behind
    them, and mutations really happen."""

    @schema.hook
    def flatmap_path_parameters(
        context: Any, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        mine = {name: owned[name] for name in path_parameters or {} if name in owned}
        if not path_parameters or not mine:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **mine}])

    @schema.hook
    def flatmap_headers(
        context: Any, headers: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        name = next((n for n in headers or {} if n.lower() == "if-match"), None)
        if headers is None or name is None:
            return st.just(headers)
        versions = [{**headers, name: f'"{version}"'} for version in (1, 2, 3)]
        return st.sampled_from([headers, *versions])


@pytest.fixture(scope="module")
async def user_api(migrated_templates: None) -> AsyncIterator[Api]:
    url = await new_database("user_svc")
    app = create_user_app(
        UserSettings(USER_SVC_DATABASE_URL=url, JWT_SECRET=JWT_SECRET, **NO_RATE_LIMITS),
        Role.API,
    )
    try:
        with serving(app) as (served, client):
            email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
            registration = {"email": email, "name": "Fuzz", "password": PASSWORD}
            user = client.post("/users", json=registration)
            assert user.status_code == 201, user.text
            login = client.post("/auth/token", data={"username": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            schema = load_schema(served, token=login.json()["access_token"])
            reach_past_the_guards(schema, {"user_id": user.json()["id"]})
            api = Api(schema)
            yield api
            api.report("user_svc")
    finally:
        await drop_database(url)


@pytest.fixture(scope="module")
async def order_api(
    migrated_templates: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    url = await new_database("order_svc")
    keys = tmp_path_factory.mktemp("keys") / "token-keys.pem"
    keys.write_bytes(SIGNING_KEY.public_pem)
    app = create_order_app(
        OrderSettings(ORDER_SVC_DATABASE_URL=url, JWT_PUBLIC_KEYS_FILE=keys, **NO_RATE_LIMITS),
        Role.API,
    )
    token = SIGNING_KEY.issue(uuid.uuid4(), ttl_seconds=3600)
    try:
        with serving(app) as (served, client):
            order = client.post(
                "/orders",
                json={"items": [{"sku": "FUZZ-1", "quantity": 1, "unit_price": 100}]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert order.status_code == 202, order.text
            schema = load_schema(served, token=token)
            reach_past_the_guards(schema, {"order_id": order.json()["id"]})
            api = Api(schema)
            yield api
            api.report("order_svc")
    finally:
        await drop_database(url)


def fuzz(api: Api, checks: list[CheckFunction]) -> None:
    """Valid and invalid requests to every operation; fails naming each operation that broke."""
    failures: dict[str, str] = {}
    operations = [loaded.ok() for loaded in api.schema.get_all_operations()]
    for operation in operations:
        # Invalid requests alone cannot be made for an operation without parameters or body.
        requests = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @FUZZ
        @seed(SEED)
        @given(case=requests)
        def answered_as_promised(case: schemathesis.Case) -> None:
            api.cases[case.operation.label] += 1
            case.call_and_validate(checks=checks)

        try:
            answered_as_promised()
        except (AssertionError, FailureGroup) as failure:
            failures[operation.label] = str(failure)
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())
    assert set(api.cases) == {operation.label for operation in operations}


def test_user_svc_never_answers_with_a_server_error(user_api: Api) -> None:
    fuzz(user_api, NO_SERVER_ERROR)


def test_user_svc_answers_as_its_openapi_document_says(user_api: Api) -> None:
    fuzz(user_api, AS_DOCUMENTED)


def test_order_svc_never_answers_with_a_server_error(order_api: Api) -> None:
    fuzz(order_api, NO_SERVER_ERROR)


def test_order_svc_answers_as_its_openapi_document_says(order_api: Api) -> None:
    fuzz(order_api, AS_DOCUMENTED)
