"""Restarting the real PostgreSQL and RabbitMQ servers, and making sure both are left running.

These commands hit the whole server, not only this run's database or vhost (except
`close_all_connections`, which is limited to the run's vhost). Commands run as subprocesses
without blocking the event loop: the proxies and the load generator share it.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from sqlalchemy.engine import make_url

from tests.support.databases import POSTGRES

COMMAND_TIMEOUT_SECONDS = 60
# pg_ctlcluster, pg_lsclusters and rabbitmqctl live in sbin, often not on a user's PATH.
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class CommandFailed(Exception):
    pass


def missing_tools() -> list[str]:
    return [t for t in ("pg_ctlcluster", "pg_lsclusters", "rabbitmqctl") if not which(t)]


def which(tool: str) -> str | None:
    return shutil.which(tool, path=PATH)


async def run(*command: str, check: bool = True) -> str:
    """Run `command`, return its output; raise CommandFailed on a non-zero exit if `check`."""
    executable = which(command[0]) or command[0]
    process = await asyncio.create_subprocess_exec(
        executable,
        *command[1:],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PATH": PATH},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandFailed(f"{' '.join(command)} took over {COMMAND_TIMEOUT_SECONDS}s") from None
    text = output.decode(errors="replace")
    if check and process.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} exited {process.returncode}: {text.strip()}")
    return text


async def postgres_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster serving the tests' PostgreSQL port."""
    port = str(make_url(POSTGRES).port or 5432)
    for line in (await run("pg_lsclusters", "-h")).splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    raise CommandFailed(f"no local PostgreSQL cluster listens on port {port}")


async def restart_postgres() -> None:
    """Restart in immediate mode: no checkpoint, every backend killed, crash recovery at start."""
    version, name = await postgres_cluster()
    try:
        await run(
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            "-m",
            "immediate",
            version,
            name,
            "restart",
        )
    finally:
        await ensure_postgres_running()


async def ensure_postgres_running() -> None:
    version, name = await postgres_cluster()
    status = await run("pg_ctlcluster", version, name, "status", check=False)
    if "server is running" not in status:
        await run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")


async def restart_rabbitmq(down_seconds: float) -> None:
    """Stop the RabbitMQ application (every connection drops), wait, start it again."""
    try:
        await run("rabbitmqctl", "-q", "stop_app")
        await asyncio.sleep(down_seconds)
    finally:
        await ensure_rabbitmq_running()


async def ensure_rabbitmq_running() -> None:
    try:
        await run("rabbitmqctl", "-q", "start_app")  # a no-op when it is running
    except CommandFailed:
        # The node itself is down, not only its application.
        await run("rabbitmq-server", "-detached")
    await run("rabbitmqctl", "-q", "await_startup")


async def close_rabbitmq_connections(vhost: str) -> None:
    await run("rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "chaos")


async def describe_queues(vhost: str) -> str:
    """RabbitMQ's view of the run's queues: depth, unacknowledged, consumers."""
    return await run(
        "rabbitmqctl",
        "-q",
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        check=False,
    )


async def ensure_servers_running() -> None:
    await ensure_postgres_running()
    await ensure_rabbitmq_running()
