"""Test vhosts on the local RabbitMQ: a fresh one per test (or stack), deleted afterwards."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from tests.support.names import unique_suffix

AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
BATCH = 8
"""Vhosts made by one `rabbitmqctl` call."""
LOW = 3
"""Vhosts left when the next batch is started."""
CLOSING_DELETERS = 4
"""Deletions at once when the session ends, when nothing else is left to run."""


def _rabbitmqctl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )


def create_vhosts(count: int) -> list[tuple[str, str]]:
    """`count` fresh vhosts the guest user may use; (name, amqp url) of each.

    One `import_definitions` makes them all with their permissions: every `rabbitmqctl` call
    boots an Erlang VM (the better part of a second), where `add_vhost` and `set_permissions`
    would take two calls per vhost.
    """
    names = [f"test-{unique_suffix()}" for _ in range(count)]
    _rabbitmqctl("import_definitions", "--format", "json", stdin=definitions(names))
    return [(name, f"{AMQP}/{quote(name, safe='')}") for name in names]


def definitions(vhosts: list[str], user: str = "guest") -> str:
    """RabbitMQ definitions (JSON) of `vhosts`, with every permission on them for `user`: what
    `rabbitmqctl import_definitions` makes in one call."""
    return json.dumps(
        {
            "vhosts": [{"name": vhost} for vhost in vhosts],
            "permissions": [
                {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
                for vhost in vhosts
            ],
        }
    )


def delete_vhost(name: str) -> None:
    _rabbitmqctl("delete_vhost", name)


class VhostSupply:
    """Fresh vhosts made in batches ahead of the tests, and used ones deleted, on threads of
    their own.

    The next batch is made while the tests use the last few of the current one, and deletions
    (one call each: there is no batch deletion) run beside it, so a test waits for neither.
    Made lazily: a session that takes none makes none.
    """

    def __init__(self) -> None:
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts-make")
        self._deleter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts-delete")
        self._ready: list[tuple[str, str]] = []
        self._next: Future[list[tuple[str, str]]] | None = None
        self._deleted: list[Future[None]] = []

    def take(self) -> tuple[str, str]:
        """A fresh vhost: (name, amqp url)."""
        if not self._ready:
            self._ready = (self._next or self._maker.submit(create_vhosts, BATCH)).result()
            self._next = None
        vhost = self._ready.pop()
        if len(self._ready) <= LOW and self._next is None:
            self._next = self._maker.submit(create_vhosts, BATCH)
        return vhost

    def discard(self, name: str) -> None:
        """Delete the vhost, without waiting for it."""
        self._deleted.append(self._deleter.submit(delete_vhost, name))

    def close(self) -> None:
        """Delete the vhosts made and not taken, wait for every deletion, and raise if one
        failed."""
        unused = [*self._ready, *(self._next.result() if self._next else [])]
        self._maker.shutdown(wait=True)
        self._deleter.shutdown(wait=True)
        with ThreadPoolExecutor(max_workers=CLOSING_DELETERS) as deleters:
            self._deleted += [deleters.submit(delete_vhost, name) for name, _ in unused]
        for deleted in self._deleted:
            deleted.result()
