"""The testing kit as another project uses it: the example project (examples/ci) run by pytest in
a process of its own, with the plugin the installed package registers, against a stack the plugin
starts and against one already running; and a started stack removed whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from shared.persistence.database import dsn, with_database
from shared.testing.plugin import AMQP_URL, POSTGRES_URL, RABBITMQCTL, service_url
from shared.testing.stack import SERVICES, Stack, StartedStack, wait_ready
from tests.e2e.harness import Stack as HarnessStack
from tests.support.databases import POSTGRES
from tests.support.names import unique_suffix
from tests.support.vhosts import AMQP

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci"
EXAMPLE_SECONDS = 480


def run_example(**variables: str) -> subprocess.CompletedProcess[str]:
    """pytest on the example project, from its own folder, as its CI runs it."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("EVENTFUL_")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        env={**inherited, **variables},
        capture_output=True,
        text=True,
        timeout=EXAMPLE_SECONDS,
        check=False,
    )


def passed_all(done: subprocess.CompletedProcess[str]) -> bool:
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return done.returncode == 0 and " passed" in summary and "skipped" not in summary


@pytest.mark.timeout(EXAMPLE_SECONDS + 60)
def test_the_example_project_passes_against_a_stack_the_plugin_starts() -> None:
    done = run_example(
        **{POSTGRES_URL.variable: POSTGRES, AMQP_URL.variable: f"{AMQP}/"},
    )

    assert passed_all(done), done.stdout + done.stderr


@pytest.mark.timeout(EXAMPLE_SECONDS + 60)
def test_the_example_project_passes_against_a_running_stack(stack: HarnessStack) -> None:
    urls = {service_url(s).variable: getattr(stack, s.package).url for s in SERVICES}

    done = run_example(
        **urls,
        **{
            AMQP_URL.variable: stack.amqp_url,
            # Nothing may be started: neither a vhost nor databases could be made with these.
            RABBITMQCTL.variable: "false",
            POSTGRES_URL.variable: "postgresql+asyncpg://nobody@127.0.0.1:1",
        },
    )

    assert passed_all(done), done.stdout + done.stderr


async def test_a_started_stack_runs_on_its_own_databases_and_vhost_and_leaves_none(
    tmp_path: Path,
) -> None:
    started = StartedStack(
        postgres_url=POSTGRES,
        amqp_url=f"{AMQP}/",
        log_dir=tmp_path,
        name=f"eventful_test_{unique_suffix()}",
    )
    try:
        stack: Stack = await started.start()
        await wait_ready(stack)
        running = (await databases(started.name), vhosts(started.name))
    finally:
        await started.stop()

    assert running == (
        {f"{started.name}_{service.package}" for service in SERVICES},
        {started.name},
    )
    assert stack.amqp_url.endswith(f"/{started.name}")
    assert all(p.process is not None and p.process.poll() is not None for p in started.processes)
    assert (await databases(started.name), vhosts(started.name)) == (set(), set())


async def databases(prefix: str) -> set[str]:
    connection = await asyncpg.connect(dsn(with_database(POSTGRES, "postgres")))
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
        )
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


def vhosts(prefix: str) -> set[str]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return {name for name in listed if name.startswith(prefix)}
