"""Test vhosts on the local RabbitMQ: a fresh one per test (or stack), deleted afterwards."""

from __future__ import annotations

import os
import subprocess
import uuid
from urllib.parse import quote

AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost() -> tuple[str, str]:
    """A fresh vhost the guest user may use; returns (name, amqp url)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return name, f"{AMQP}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    _rabbitmqctl("delete_vhost", name)
