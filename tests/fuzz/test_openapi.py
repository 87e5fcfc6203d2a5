"""Every service's HTTP API, fuzzed by schemathesis from its published OpenAPI document with
every check on, as a user of those documents runs it: `st run --checks all` against the
services as real processes (on fresh databases and a fresh vhost), signed in as a real user who
is an administrator (listed in user_svc's `ADMIN_EMAILS`), so that inventory_svc's stock routes
are exercised past their 403.

Its phases send the documents' examples, boundary cases (each required header left out, methods
the document does not list, ...), valid and invalid requests to every operation, and stateful
sequences that follow the links it infers (a placed order's `Location` to reading and cancelling
it). Every check applies: no 5xx; every status, content type, body and header as documented;
invalid data refused and valid data accepted; a missing required header refused; 405 with a
correct `Allow` for other methods; auth not ignored; a created resource found. The two statuses
the defaults do not know for conditional requests, and the hook that keeps generated positive
cases positive, are in tests/fuzz/schemathesis.toml and tests/fuzz/hooks.py, with the reasons.

`FUZZ_EXAMPLES` sets the examples per operation (a few in CI, many in `make fuzz`), `FUZZ_SEED`
the seed. Every failure comes with a curl command to reproduce it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.persistence.database import drop_database
from tests.e2e.harness import Stack
from tests.support.databases import POSTGRES
from tests.support.names import unique_suffix
from tests.support.processes import ROOT
from tests.support.vhosts import VhostSupply

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, vhosts: VhostSupply
) -> AsyncIterator[Stack]:
    vhost, amqp_url = vhosts.take()
    suffix = unique_suffix()
    stack = Stack(
        amqp_url=amqp_url,
        user_db=f"{POSTGRES}/fuzz_user_svc_{suffix}",
        order_db=f"{POSTGRES}/fuzz_order_svc_{suffix}",
        inventory_db=f"{POSTGRES}/fuzz_inventory_svc_{suffix}",
        log_dir=tmp_path_factory.mktemp("fuzz"),
    )
    try:
        await stack.start()
        yield stack
        stack.stop()
    finally:
        stack.kill()
        for database in stack.databases:
            await drop_database(database)
        vhosts.discard(vhost)


@pytest.fixture(scope="module")
async def token(stack: Stack) -> str:
    """The stack's administrator's access token, good at every service."""
    email = stack.admin_email
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        registered = await client.post(
            "/users", json={"email": email, "name": "Fuzz", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


async def schemathesis_run(
    base_url: str, token: str, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """`st run --checks all` on the service's served document, in a process of its own (in
    `workdir`, where it keeps its cache)."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: Bearer {token}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(
        subprocess.run, command, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )


async def test_user_svc_answers_as_its_openapi_document_says(
    stack: Stack, token: str, tmp_path: Path
) -> None:
    run = await schemathesis_run(stack.user_svc.url, token, tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr


async def test_order_svc_answers_as_its_openapi_document_says(
    stack: Stack, token: str, tmp_path: Path
) -> None:
    run = await schemathesis_run(stack.order_svc.url, token, tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr


async def test_inventory_svc_answers_as_its_openapi_document_says(
    stack: Stack, token: str, tmp_path: Path
) -> None:
    run = await schemathesis_run(stack.inventory_svc.url, token, tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
