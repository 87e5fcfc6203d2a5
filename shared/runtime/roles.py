"""The roles a service process runs as: `python -m <service> [all|api|worker|relay|migrate]`.

Every role is the same service, cut differently, so each can be scaled on its own and any number
of replicas of each can run at once (the outbox claim, the shared queue and the inbox make that
safe):

- `all` (the default): the HTTP API, the outbox relay, the consumer and housekeeping, in one
  process, as `make run` starts it;
- `api`: the HTTP API only. It still writes the outbox in its transactions, and needs no broker;
- `worker`: the consumer and housekeeping;
- `relay`: the outbox relay;
- `migrate`: bring the database to head, creating it if it is missing, and exit.

Which parts make up each role is decided in one place, `shared.runtime.composition`. This module
owns the names, the command line and the two settings whose defaults depend on the role.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from enum import StrEnum

from shared.settings import ServiceSettings

MAX_PORT = 65_535


class Role(StrEnum):
    ALL = "all"
    API = "api"
    WORKER = "worker"
    RELAY = "relay"
    MIGRATE = "migrate"

    @property
    def serves_api(self) -> bool:
        return self in (Role.ALL, Role.API)


# Workers and relays serve only /healthz, /readyz and /metrics, on a port of their own: by
# default the service's port plus these, so every role of every service fits on one machine.
OPS_PORT_OFFSETS = {Role.WORKER: 1_000, Role.RELAY: 2_000}


def parse(argv: Sequence[str], *, service: str) -> Role:
    """The role named on the command line, `all` if none; anything else is a usage error
    (exit status 2, with the list of roles)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {service}",
        description=f"Run {service}, or one part of it.",
        epilog=(
            "all: HTTP API, outbox relay, consumer and housekeeping in one process (default); "
            "api: the HTTP API; worker: the consumer and housekeeping; relay: the outbox relay; "
            "migrate: create the database if missing, migrate it to head, and exit."
        ),
    )
    parser.add_argument(
        "role",
        nargs="?",
        default=Role.ALL.value,
        choices=[r.value for r in Role],
        metavar="role",
        help=", ".join(r.value for r in Role) + " (default: all)",
    )
    return Role(parser.parse_args(argv).role)


def listen_port(role: Role, settings: ServiceSettings) -> int:
    """Where the role's HTTP server listens: the service port for the API, else `OPS_PORT`."""
    if role.serves_api:
        return settings.port
    if role not in OPS_PORT_OFFSETS:
        raise ValueError(f"the {role} role serves no HTTP")
    if settings.ops_port is not None:
        return settings.ops_port
    port = settings.port + OPS_PORT_OFFSETS[role]
    if port > MAX_PORT:
        raise ValueError(
            f"the {role} role's default port {settings.port} + {OPS_PORT_OFFSETS[role]} is out "
            "of range: set OPS_PORT"
        )
    return port


def migrates_on_start(role: Role, settings: ServiceSettings) -> bool:
    """`MIGRATE_ON_START` if set; else only `all` migrates. Split roles are deployed with a
    `migrate` Job or init container that brings the database to head once per rollout, rather
    than every replica at its start."""
    if settings.migrate_on_start is not None:
        return settings.migrate_on_start
    return role is Role.ALL
