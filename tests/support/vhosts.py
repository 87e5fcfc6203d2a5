"""Test vhosts on the local RabbitMQ: a fresh one per test (or stack), deleted afterwards."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from tests.support.names import unique_suffix

AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost() -> tuple[str, str]:
    """A fresh vhost the guest user may use; returns (name, amqp url)."""
    name = f"test-{unique_suffix()}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return name, f"{AMQP}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    _rabbitmqctl("delete_vhost", name)


class VhostSupply:
    """Fresh vhosts made one ahead, and used ones deleted, on a thread of their own.

    Each `rabbitmqctl` call boots an Erlang VM (the better part of a second), three per vhost:
    here they run while the tests do, instead of before and after each one.
    """

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts")
        self._next = self._worker.submit(create_vhost)
        self._deleted: list[Future[None]] = []

    def take(self) -> tuple[str, str]:
        """A fresh vhost: (name, amqp url)."""
        vhost = self._next.result()
        self._next = self._worker.submit(create_vhost)
        return vhost

    def discard(self, name: str) -> None:
        """Delete the vhost, without waiting for it."""
        self._deleted.append(self._worker.submit(delete_vhost, name))

    def close(self) -> None:
        """Delete the one made ahead, wait for every deletion, and raise if one failed."""
        name, _ = self._next.result()
        self.discard(name)
        self._worker.shutdown(wait=True)
        for deleted in self._deleted:
            deleted.result()
