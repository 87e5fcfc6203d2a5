"""The machine's own PostgreSQL and RabbitMQ come out of a test session as they went in.

A pytest plugin: a session-wide autouse fixture notes, before the first test, which processes
serve the machine's PostgreSQL (the postmaster's pid and start time) and RabbitMQ (the node's
pid and uptime), and after the last test fails the session if either was restarted, or if
anything this session created there is still there: a database, a role, a vhost or a user
carrying the session's tag (`tests.support.names`), or a queue in the default vhost that was
not there before. Other runs use the same servers at the same time, so their databases and
vhosts come and go; only what carries this session's tag is this session's.

Both servers are only read here. If one is not running at all (a machine without them, for
the unit tests), there is nothing to compare and nothing to fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import POSTGRES
from tests.support.names import SESSION_TAG
from tests.support.servers.commands import CommandFailed, pg_tool, run


@dataclass(frozen=True)
class PostgresState:
    postmaster: str
    """pid and start time of the postmaster"""
    databases: frozenset[str]
    roles: frozenset[str]


@dataclass(frozen=True)
class RabbitState:
    pid: int
    uptime: int
    """seconds"""
    vhosts: frozenset[str]
    users: frozenset[str]
    default_vhost_queues: frozenset[str]


def postgres_state() -> PostgresState | None:
    try:
        start, data_directory = _psql(
            "SELECT pg_postmaster_start_time(), current_setting('data_directory')"
        )[0].split("|")
        return PostgresState(
            postmaster=f"{_postmaster_pid(Path(data_directory))} {start}",
            databases=frozenset(_psql("SELECT datname FROM pg_database")),
            roles=frozenset(_psql("SELECT rolname FROM pg_roles")),
        )
    except CommandFailed:
        return None


def rabbit_state() -> RabbitState | None:
    # Four calls of a CLI that boots an Erlang VM for each: side by side, not one by one.
    calls = (
        ("status", "--formatter", "json"),
        ("list_vhosts", "name"),
        ("list_users",),
        ("list_queues", "-p", "/", "name"),
    )
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        answers = [pool.submit(_rabbitmqctl, *call) for call in calls]
    try:
        status, vhosts, users, queues = (answer.result() for answer in answers)
        running = json.loads(status)
        return RabbitState(
            pid=int(running["pid"]),
            uptime=int(running["uptime"]),
            vhosts=frozenset(vhosts.split()),
            users=frozenset(line.split("\t")[0] for line in users.splitlines() if line),
            default_vhost_queues=frozenset(queues.split()),
        )
    except CommandFailed:
        return None


def changes(
    postgres: tuple[PostgresState | None, PostgresState | None],
    rabbit: tuple[RabbitState | None, RabbitState | None],
) -> list[str]:
    """Everything that says this session touched the machine's servers."""
    found = []
    pg_before, pg_after = postgres
    if pg_before is not None:
        if pg_after is None:
            found.append("the machine's PostgreSQL is no longer running")
        elif pg_after.postmaster != pg_before.postmaster:
            found.append(
                "the machine's PostgreSQL was restarted: postmaster "
                f"{pg_before.postmaster} is now {pg_after.postmaster}"
            )
        else:
            found += [f"database {d} left behind" for d in _ours(pg_after.databases)]
            found += [f"PostgreSQL role {r} left behind" for r in _ours(pg_after.roles)]
    mq_before, mq_after = rabbit
    if mq_before is not None:
        if mq_after is None:
            found.append("the machine's RabbitMQ is no longer running")
        elif mq_after.pid != mq_before.pid or mq_after.uptime < mq_before.uptime:
            found.append(
                f"the machine's RabbitMQ was restarted: pid {mq_before.pid}, up "
                f"{mq_before.uptime}s, is now pid {mq_after.pid}, up {mq_after.uptime}s"
            )
        else:
            found += [f"vhost {v} left behind" for v in _ours(mq_after.vhosts)]
            found += [f"RabbitMQ user {u} left behind" for u in _ours(mq_after.users)]
            found += [
                f"queue {q} left behind in vhost /"
                for q in sorted(mq_after.default_vhost_queues - mq_before.default_vhost_queues)
            ]
    return found


@pytest.fixture(scope="session", autouse=True)
def machine_servers_untouched() -> Iterator[None]:
    """Fail the session if it restarted the machine's servers or left anything on them."""
    postgres, rabbit = postgres_state(), rabbit_state()
    yield
    found = changes((postgres, postgres_state()), (rabbit, rabbit_state()))
    if found:
        pytest.fail("the machine's servers were touched:\n  " + "\n  ".join(found))


def _ours(names: frozenset[str]) -> list[str]:
    return sorted(name for name in names if SESSION_TAG in name)


def _psql(statement: str) -> list[str]:
    url = make_url(POSTGRES)
    output = run(
        pg_tool("psql"), "-X", "-w", "-Atq", "-h", url.host or "127.0.0.1",
        "-p", str(url.port or 5432), "-U", url.username or "postgres", "-d", "postgres",
        "-c", statement, timeout=30,
    )  # fmt: skip
    return output.splitlines()


def _postmaster_pid(data_directory: Path) -> str:
    """The postmaster's pid, from its pid file, when this user may read it."""
    try:
        return (data_directory / "postmaster.pid").read_text().split()[0]
    except (OSError, IndexError):
        return "?"


def _rabbitmqctl(*args: str) -> str:
    return run("rabbitmqctl", "-q", *args, timeout=60)
