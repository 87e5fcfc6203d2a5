"""The pytest side of the private servers: fixtures, and cleanup however the run ends.

- At start, runs left behind by a pytest that was SIGKILLed are swept (`registry.sweep_stale`).
- All private servers of a session live under one `ServerRun`, created the first time a test
  needs one; it is closed by its fixture's finalizer, and at interpreter exit in case the
  finalizers never ran.
- Each server is started once per session, by the first test that needs it, and shared: a test
  may stop, kill, partition or fail over a server, but leaves it whole again (the cluster and
  the pair also have a `make_whole`, for the fixture of a test that failed half-way).
- Ctrl-C (SIGINT) already ends a pytest session through its finalizers; SIGTERM and SIGHUP are
  turned into the same KeyboardInterrupt, so `kill <pytest>` cleans up just as well.
- The servers run in sessions of their own, so a Ctrl-C in the terminal reaches pytest only,
  and they stay up for the cleanup to stop them in order.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.support.servers import postgres, rabbitmq
from tests.support.servers.haproxy import HAProxy
from tests.support.servers.network import missing_tools
from tests.support.servers.postgres import PostgresNode, PostgresPair
from tests.support.servers.rabbitmq import RabbitCluster, RabbitNode
from tests.support.servers.registry import ServerRun, sweep_stale


def pytest_configure(config: pytest.Config) -> None:
    sweep_stale()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@pytest.fixture(scope="session")
def server_run() -> Iterator[ServerRun]:
    """The folder all of this session's private servers live in."""
    run = ServerRun()
    atexit.register(run.close)
    try:
        yield run
    finally:
        run.close()
        atexit.unregister(run.close)


@pytest.fixture(scope="session")
def private_postgres(server_run: ServerRun) -> PostgresNode:
    """A PostgreSQL instance of this session's own, which tests may stop and restart."""
    return postgres.single(server_run)


@pytest.fixture(scope="session")
def private_rabbitmq(server_run: ServerRun) -> RabbitNode:
    """A RabbitMQ node of this session's own, which tests may stop and restart."""
    return rabbitmq.single(server_run)


@pytest.fixture(scope="session")
def private_postgres_pair(server_run: ServerRun) -> PostgresPair:
    """A PostgreSQL primary with a synchronous standby, of this session's own. A test may fail
    it over; it leaves a standby synchronous again (`make_whole`), whichever node is primary."""
    pair = PostgresPair(server_run)
    pair.start()
    return pair


@pytest.fixture(scope="session")
def private_rabbit_cluster(server_run: ServerRun) -> RabbitCluster:
    """A 3-node RabbitMQ cluster of this session's own, in network namespaces. A test may kill
    or partition a member; it leaves every member running in the cluster (`make_whole`)."""
    if missing := missing_tools():
        pytest.fail(f"the private cluster needs {', '.join(missing)} (`make test-tools`)")
    cluster = RabbitCluster(server_run)
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def private_balancer(server_run: ServerRun, private_rabbit_cluster: RabbitCluster) -> HAProxy:
    """HAProxy in front of the private cluster's members: the clients' one address."""
    balancer = HAProxy(server_run, private_rabbit_cluster.nodes)
    balancer.start()
    return balancer
