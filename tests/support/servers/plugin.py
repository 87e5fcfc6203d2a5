"""The pytest side of the private servers: fixtures, and cleanup however the run ends.

- At start, runs left behind by a pytest that was SIGKILLed are swept (`registry.sweep_stale`).
- All private servers of a session live under one `ServerRun`, created the first time a test
  needs one; it is closed by its fixture's finalizer, and at interpreter exit in case the
  finalizers never ran.
- Ctrl-C (SIGINT) already ends a pytest session through its finalizers; SIGTERM and SIGHUP are
  turned into the same KeyboardInterrupt, so `kill <pytest>` cleans up just as well.
- The servers run in sessions of their own, so a Ctrl-C in the terminal reaches pytest only,
  and they stay up for the cleanup to stop them in order.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.support.servers import postgres, rabbitmq
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.servers.registry import ServerRun, sweep_stale


def pytest_configure(config: pytest.Config) -> None:
    sweep_stale()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def separate_run() -> Iterator[ServerRun]:
    """A `ServerRun` whose servers are removed when the block ends, not with the session: for
    servers too heavy to keep idle for the rest of it (a whole cluster)."""
    run = ServerRun()
    atexit.register(run.close)
    try:
        yield run
    finally:
        run.close()
        atexit.unregister(run.close)


@pytest.fixture(scope="session")
def server_run() -> Iterator[ServerRun]:
    """The folder all of this session's lighter private servers live in."""
    with separate_run() as run:
        yield run


@pytest.fixture(scope="session")
def private_postgres(server_run: ServerRun) -> PostgresNode:
    """A PostgreSQL instance of this session's own, which tests may stop and restart."""
    return postgres.single(server_run)


@pytest.fixture(scope="session")
def private_rabbitmq(server_run: ServerRun) -> RabbitNode:
    """A RabbitMQ node of this session's own, which tests may stop and restart."""
    return rabbitmq.single(server_run)
