"""Least-privilege broker accounts: one RabbitMQ user per service, allowed only what it needs.

With one shared administrator account, a bug or a stolen credential in one service can forge the
other's events, drain or delete its queues. Each service therefore gets its own user in the
application vhost, and RabbitMQ enforces, per user, three regexes on resource names (configure:
declare and delete; write: publish to an exchange, bind a queue; read: consume, get, purge a
queue, bind from an exchange) and, on a topic exchange, two regexes on routing keys (write:
publish; read: the binding key of a queue.bind). This module derives all of them from
`broker.topology.TOPOLOGY`, so a queue added there is covered here without a second list:

- configure: exactly its own queues (`<service>.events`, its DLQ, its delay queues). Re-declaring
  an existing queue with the same arguments is still a declare and needs it (the consumer does
  at start and after every reconnect, so that the robust channel restores its consumer), and a
  queue with a dead-letter exchange also needs read on itself and write on that exchange. Never
  the exchange `events`: a passive declare needs no permission, so services only check that it
  exists (`broker.ownership`), and none of them can delete or redefine it.
- write: `events` (the relay publishes there), `amq.default` (the default exchange: the consumer
  sends retries and dead letters straight to its own delay queues and DLQ, and the queues
  dead-letter through it) and its own queue (to bind it).
- read: its own queues, and `events` (to bind its queue to it).
- topic permissions on `events`: write only the routing keys of its own events (`^user\\.` for
  user_svc, `^order\\.` for order_svc, `^inventory\\.` for inventory_svc), so none can publish
  another's events; read only the
  keys it subscribes to, so it cannot bind its queue to anything else.

Known gap: the default exchange is a direct exchange, so topic permissions do not apply to it,
and write on `amq.default` lets an account publish to *any* queue of the vhost by name. Closing
it needs the consumer to send retries and dead letters through an exchange of its own
(`<service>.retry`, bound to its delay queues and DLQ) instead of the default exchange.

The accounts are created by `python -m broker accounts` (rendered by `broker.definitions` and
imported with `rabbitmqctl`), or loaded by RabbitMQ at boot from `broker/definitions.json`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from broker.ownership import owned_queue_names
from broker.topology import (
    INVENTORY_SVC_QUEUE,
    ORDER_SVC_QUEUE,
    TOPOLOGY,
    USER_SVC_QUEUE,
    Exchange,
    Queue,
)

DEFAULT_EXCHANGE = "amq.default"  # the name RabbitMQ checks permissions on for "" (the default)


@dataclass(frozen=True)
class ServiceAccount:
    """One service's broker identity: its queue and the routing keys of the events it emits."""

    service: str
    queue: Queue
    publishes: str  # the first segment of its event types: "user" for `user.*`

    @property
    def password_env(self) -> str:
        """The environment variable `python -m broker accounts` reads the password from."""
        return f"{self.service.upper()}_AMQP_PASSWORD"

    def user(self, prefix: str = "") -> str:
        """The broker user name; a prefix keeps test accounts apart (users are broker-wide)."""
        return f"{prefix}{self.service}"


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class TopicPermissions:
    exchange: str
    write: str
    read: str


SERVICE_ACCOUNTS = (
    ServiceAccount(service="user_svc", queue=USER_SVC_QUEUE, publishes="user"),
    ServiceAccount(service="order_svc", queue=ORDER_SVC_QUEUE, publishes="order"),
    ServiceAccount(service="inventory_svc", queue=INVENTORY_SVC_QUEUE, publishes="inventory"),
)


def permissions(account: ServiceAccount, exchange: Exchange = TOPOLOGY.exchange) -> Permissions:
    own = owned_queue_names(account.queue)
    return Permissions(
        configure=exactly(own),
        write=exactly((exchange.name, DEFAULT_EXCHANGE, account.queue.name)),
        read=exactly((exchange.name, *own)),
    )


def topic_permissions(
    account: ServiceAccount, exchange: Exchange = TOPOLOGY.exchange
) -> TopicPermissions:
    return TopicPermissions(
        exchange=exchange.name,
        write=f"^{re.escape(account.publishes)}\\.",
        read=exactly(account.queue.bindings),
    )


def exactly(names: Iterable[str]) -> str:
    """A regex (RabbitMQ uses PCRE) that matches these names and nothing else."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"
