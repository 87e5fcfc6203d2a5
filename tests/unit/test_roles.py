"""Process roles: the command line, the ports and migration defaults, and what each role runs.

No I/O: a database pool is described but never opened, and no part is started. The roles as running
processes are tested in `tests/e2e/test_roles.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from order_svc.app import SPEC as ORDER_SPEC
from order_svc.settings import OrderSettings
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from shared.runtime import composition as service
from shared.runtime import roles
from shared.runtime.parts import Runtime
from shared.runtime.roles import Role
from shared.settings import ServiceSettings
from shared.web.tokens import StaticKeys
from user_svc.settings import UserSettings

ROLE_ENV = ("OPS_PORT", "MIGRATE_ON_START", "USER_SVC_PORT", "ORDER_SVC_PORT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ROLE_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_no_role_on_the_command_line_means_all() -> None:
    assert roles.parse([], service="user_svc") is Role.ALL


@pytest.mark.parametrize("name", ["all", "api", "worker", "relay", "migrate"])
def test_each_role_is_named_on_the_command_line(name: str) -> None:
    assert roles.parse([name], service="user_svc") == name


def test_an_unknown_role_is_a_usage_error_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        roles.parse(["consumer"], service="order_svc")

    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "usage: python -m order_svc" in error
    assert "invalid choice: 'consumer'" in error
    assert "'worker'" in error


@pytest.mark.parametrize(
    ("settings", "role", "port"),
    [
        (UserSettings, Role.ALL, 8001),
        (UserSettings, Role.API, 8001),
        (UserSettings, Role.WORKER, 9001),
        (UserSettings, Role.RELAY, 10001),
        (OrderSettings, Role.ALL, 8002),
        (OrderSettings, Role.API, 8002),
        (OrderSettings, Role.WORKER, 9002),
        (OrderSettings, Role.RELAY, 10002),
    ],
)
def test_every_role_of_both_services_has_its_own_default_port(
    settings: Callable[[], ServiceSettings], role: Role, port: int
) -> None:
    assert roles.listen_port(role, settings()) == port


@pytest.mark.parametrize("role", [Role.WORKER, Role.RELAY])
def test_ops_port_moves_a_worker_or_a_relay(role: Role) -> None:
    settings = OrderSettings(OPS_PORT=9000)

    assert roles.listen_port(role, settings) == 9000


@pytest.mark.parametrize("role", [Role.ALL, Role.API])
def test_ops_port_leaves_the_api_on_the_service_port(role: Role) -> None:
    settings = OrderSettings(ORDER_SVC_PORT=8000, OPS_PORT=9000)

    assert roles.listen_port(role, settings) == 8000


def test_a_default_ops_port_out_of_range_asks_for_ops_port() -> None:
    settings = OrderSettings(ORDER_SVC_PORT=64_000)

    with pytest.raises(ValueError, match="OPS_PORT"):
        roles.listen_port(Role.RELAY, settings)


@pytest.mark.parametrize(
    ("role", "migrates"),
    [(Role.ALL, True), (Role.API, False), (Role.WORKER, False), (Role.RELAY, False)],
)
def test_only_all_migrates_on_start_by_default(role: Role, migrates: bool) -> None:
    assert roles.migrates_on_start(role, UserSettings()) is migrates


@pytest.mark.parametrize("role", [Role.ALL, Role.API, Role.WORKER, Role.RELAY])
@pytest.mark.parametrize("setting", [True, False])
def test_migrate_on_start_decides_for_every_role(role: Role, setting: bool) -> None:
    settings = UserSettings(MIGRATE_ON_START=setting)

    assert roles.migrates_on_start(role, settings) is setting


@pytest.mark.parametrize(
    ("role", "checks"),
    [
        (Role.ALL, ["database", "token_keys", "broker", "consumer"]),
        (Role.API, ["database", "token_keys"]),
        (Role.WORKER, ["database", "broker", "consumer"]),
        (Role.RELAY, ["database", "broker"]),
    ],
)
def test_each_role_is_ready_when_what_it_runs_is(role: Role, checks: list[str]) -> None:
    settings = OrderSettings()
    runtime = Runtime(
        service.parts_of(
            role,
            ORDER_SPEC,
            settings,
            database=Database(settings.database_url),
            metrics=Metrics(),
            token_keys=StaticKeys([]),
        )
    )

    assert list(runtime.checks) == checks


async def statuses(app: FastAPI, *paths: str) -> dict[str, int]:
    """What the app answers to a GET of each path (no lifespan: nothing is started)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return {path: (await client.get(path)).status_code for path in paths}


@pytest.mark.parametrize("role", [Role.WORKER, Role.RELAY])
async def test_a_worker_or_a_relay_serves_the_operations_routes_only(role: Role) -> None:
    app = service.create_ops_app(ORDER_SPEC, OrderSettings(), role=role)

    assert await statuses(app, "/healthz", "/metrics", "/orders", "/openapi.json", "/docs") == {
        "/healthz": 200,
        "/metrics": 200,
        "/orders": 404,
        "/openapi.json": 404,
        "/docs": 404,
    }


async def test_an_api_serves_its_routes_beside_the_operations_routes() -> None:
    app = service.create_app(ORDER_SPEC, OrderSettings(), StaticKeys([]), role=Role.API)

    assert await statuses(app, "/healthz", "/metrics", "/orders", "/openapi.json") == {
        "/healthz": 200,
        "/metrics": 200,
        "/orders": 401,
        "/openapi.json": 200,
    }


@pytest.mark.parametrize("role", [Role.WORKER, Role.RELAY, Role.MIGRATE])
def test_only_the_roles_with_an_api_get_the_api_app(role: Role) -> None:
    with pytest.raises(ValueError, match="serves no HTTP API"):
        service.create_app(ORDER_SPEC, OrderSettings(), StaticKeys([]), role=role)
