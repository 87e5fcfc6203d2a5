"""RabbitMQ definitions (vhost, users, permissions, exchange, queues, bindings) from TOPOLOGY.

Definitions are RabbitMQ's own JSON format for a broker's schema: `rabbitmqctl
import_definitions` and the management API import them into a running broker, and
`load_definitions` in rabbitmq.conf imports them at every boot. Rendering them from
`broker.topology` and `broker.accounts` gives one source for every way a broker gets set up:
`python -m broker accounts` imports a document rendered here, and compose's RabbitMQ loads
`broker/definitions.json`, the development document (`python -m broker definitions`), committed
and checked against this rendering by the tests.

Passwords are given in the clear (`password`); RabbitMQ hashes them on import. The development
document holds placeholders, never real secrets: compose publishes every port on 127.0.0.1 only.
A node that loads definitions at boot creates no default `guest` user and `/` vhost, so the
development document declares both itself (guest/guest stays the administrator of a local
broker, for the management UI, the DLQ tool and `make run`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from broker.accounts import SERVICE_ACCOUNTS, ServiceAccount, permissions, topic_permissions
from broker.topology import TOPOLOGY, Topology

DEVELOPMENT_VHOST = "eventful"
RABBITMQCTL_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class AccountLogin:
    account: ServiceAccount
    login: Login


def development_password(account: ServiceAccount) -> str:
    """The placeholder password of `account` in the committed development definitions."""
    return f"dev-only-{account.service}-password"


DEVELOPMENT_ADMIN = Login(user="guest", password="guest")  # noqa: S106 (RabbitMQ's own default)


def development_definitions() -> dict[str, Any]:
    """`broker/definitions.json`: what compose's RabbitMQ loads at boot. Development only."""
    return render(
        vhost=DEVELOPMENT_VHOST,
        accounts=[
            AccountLogin(account, Login(account.user(), development_password(account)))
            for account in SERVICE_ACCOUNTS
        ],
        administrators=[DEVELOPMENT_ADMIN],
        administrator_vhosts=("/",),
    )


def render(
    *,
    vhost: str,
    accounts: Sequence[AccountLogin],
    administrators: Sequence[Login] = (),
    administrator_vhosts: Sequence[str] = (),
    topology: Topology = TOPOLOGY,
) -> dict[str, Any]:
    """The definitions of `vhost`: its topology, the service accounts and, optionally,
    administrators with every permission on it and on `administrator_vhosts`."""
    vhosts = [*administrator_vhosts, vhost]
    exchange = topology.exchange
    return {
        "users": [
            *(_user(admin, tags=["administrator"]) for admin in administrators),
            *(_user(entry.login, tags=[]) for entry in accounts),
        ],
        "vhosts": [{"name": name} for name in vhosts],
        "permissions": [
            *(
                {"user": admin.user, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"}
                for admin in administrators
                for name in vhosts
            ),
            *(
                {"user": entry.login.user, "vhost": vhost, **asdict(permissions(entry.account))}
                for entry in accounts
            ),
        ],
        "topic_permissions": [
            {"user": entry.login.user, "vhost": vhost, **asdict(topic_permissions(entry.account))}
            for entry in accounts
        ],
        "exchanges": [
            {
                "name": exchange.name,
                "vhost": vhost,
                "type": exchange.kind.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "queues": [
            _queue(name, vhost, arguments)
            for queue in topology.queues
            for name, arguments in (
                (queue.dead_letter_queue, {"x-queue-type": "quorum"}),
                *queue.retry_queues.items(),
                (queue.name, queue.arguments),
            )
        ],
        "bindings": [
            {
                "source": exchange.name,
                "vhost": vhost,
                "destination": queue.name,
                "destination_type": "queue",
                "routing_key": routing_key,
                "arguments": {},
            }
            for queue in topology.queues
            for routing_key in queue.bindings
        ],
    }


def _user(login: Login, *, tags: list[str]) -> dict[str, Any]:
    return {"name": login.user, "password": login.password, "tags": tags}


def _queue(name: str, vhost: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "durable": True,
        "auto_delete": False,
        "arguments": arguments,
    }


def to_json(definitions: dict[str, Any]) -> str:
    return json.dumps(definitions, indent=2) + "\n"


def import_with_rabbitmqctl(definitions: dict[str, Any], *, node: str | None = None) -> None:
    """Import into the broker that `rabbitmqctl` reaches (the local node unless `node`).

    The document goes through stdin, so the passwords never show in a process list. Raises
    `ImportFailed` with rabbitmqctl's own message.
    """
    command = ["rabbitmqctl", "-q", *(["-n", node] if node else []), "import_definitions"]
    try:
        done = subprocess.run(
            command,
            input=to_json(definitions),
            capture_output=True,
            text=True,
            timeout=RABBITMQCTL_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as error:
        raise ImportFailed(
            "rabbitmqctl not found: run this on the broker host, or write the definitions with "
            "--print and import them there (rabbitmqctl import_definitions FILE)"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise ImportFailed(f"rabbitmqctl gave no answer in {error.timeout}s") from error
    if done.returncode != 0:
        raise ImportFailed((done.stderr or done.stdout).strip())


class ImportFailed(RuntimeError):
    """rabbitmqctl could not import the definitions."""
