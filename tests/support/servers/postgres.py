"""Private PostgreSQL servers: a single instance, or a primary with a synchronous standby.

Each node is an `initdb` data folder under the run's folder, started with `pg_ctl` on a port of
its own, as the postgres user when the tests run as root (PostgreSQL refuses root). The port
is given on the command line, never in a configuration file, because base backups and rewinds
copy the configuration files from one node to the other.

The pair follows what an operator (or Patroni, or CloudNativePG) does:

- the standby is a `pg_basebackup -R` of the primary, streaming through a physical replication
  slot, and named in the primary's `synchronous_standby_names`, so a commit returns only once
  the standby has flushed it: a committed transaction survives the loss of the primary;
- `fail_over` stops the primary in immediate mode (as a crash would) and promotes the standby;
- `rejoin` brings the old primary back as the new standby: `pg_rewind` from the new primary
  (after a CHECKPOINT there, without which pg_rewind finds nothing to rewind), a new slot, and
  only then is it named synchronous. Until a standby streams again the primary commits alone:
  a synchronous standby that is down would block every commit, silently.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers.commands import as_postgres, free_port, is_root, pg_tool, run
from tests.support.servers.registry import ServerRun

START_TIMEOUT_SECONDS = 60
SYNC_TIMEOUT_SECONDS = 60.0

SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 200
wal_level = replica
wal_log_hints = on
wal_keep_size = '256MB'
hot_standby = on
"""


@dataclass(eq=False)
class PostgresNode:
    run: ServerRun
    name: str
    """Also its `application_name` as a standby, and the name of its replication slot."""
    folder: Path
    port: int

    @classmethod
    def create(cls, run: ServerRun, name: str) -> PostgresNode:
        folder = run.folder(name)
        if is_root():
            postgres = pwd.getpwnam("postgres")
            os.chown(folder, postgres.pw_uid, postgres.pw_gid)
        return cls(run=run, name=name, folder=folder, port=free_port())

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def base_url(self) -> str:
        """SQLAlchemy URL of the server, without a database: append `/<database>`."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def initdb(self) -> None:
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "--data-checksums",
            "--auth=trust",
            "--username=postgres",
            "--no-sync",
            "--no-instructions",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(sockets=self.folder))
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")

    def start(self) -> None:
        self._pg(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-o",
            f"-p {self.port}",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back and disconnects every session; `immediate` is a crash."""
        self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def ensure_running(self) -> None:
        """Start it again if a test left it stopped."""
        if not self.running:
            self.start()

    @property
    def running(self) -> bool:
        status = self._pg("pg_ctl", "status", "-D", str(self.data), check=False)
        return "server is running" in status

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its rows, one per line, columns split by `|`."""
        return run(
            pg_tool("psql"),
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-Atq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
            env=self.run.mark,
        ).strip()

    def base_backup_of(self, primary: PostgresNode) -> None:
        """Become a streaming standby of `primary`, through the slot named after this node."""
        self._pg(
            "pg_basebackup",
            "-D",
            str(self.data),
            "-d",
            primary.conninfo(self.name),
            "-R",
            "-X",
            "stream",
            "-S",
            self.name,
            "-c",
            "fast",
        )

    def rewind_to(self, primary: PostgresNode) -> None:
        """Turn this stopped former primary into a standby of `primary`, its history cut back
        to where the two diverged."""
        self._pg(
            "pg_rewind",
            "-D",
            str(self.data),
            "--source-server",
            primary.conninfo(self.name),
            "--write-recovery-conf",
        )
        # pg_rewind copied the new primary's postgresql.auto.conf; the slot is this node's own.
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"primary_slot_name = '{self.name}'\n")

    def promote(self) -> None:
        self.sql("SELECT pg_promote(true, 60)")

    def conninfo(self, application_name: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres application_name={application_name}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> str:
        return run(
            *as_postgres(pg_tool(tool), *args), env=self.run.mark, check=check, cwd=self.folder
        )


def single(run: ServerRun, name: str = "pg") -> PostgresNode:
    """A started private PostgreSQL instance."""
    node = PostgresNode.create(run, name)
    node.initdb()
    node.start()
    return node


class PostgresPair:
    """Two nodes, one primary and one synchronous standby, and the moves between them."""

    def __init__(self, run: ServerRun) -> None:
        self.nodes = (PostgresNode.create(run, "pg1"), PostgresNode.create(run, "pg2"))
        self.primary = self.nodes[0]
        self.standby: PostgresNode | None = self.nodes[1]

    def start(self) -> None:
        primary, standby = self.primary, self.nodes[1]
        primary.initdb()
        primary.start()
        primary.sql(f"SELECT pg_create_physical_replication_slot('{standby.name}', true)")
        standby.base_backup_of(primary)
        standby.start()
        self._make_synchronous(standby)

    def url(self, database: str) -> str:
        """The multi-host URL the services use: whichever node accepts writes, the primary of
        the moment listed first. A standby listed first would turn a connection away while it
        has not yet replayed the database's creation, and the driver tries no further host."""
        nodes = sorted(self.nodes, key=lambda node: node is not self.primary)
        hosts = "&".join(f"host=127.0.0.1:{node.port}" for node in nodes)
        return f"postgresql+asyncpg://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    @property
    def down(self) -> PostgresNode | None:
        """The node that is neither primary nor standby (a failed primary not yet rejoined)."""
        if self.standby is not None:
            return None
        return next(node for node in self.nodes if node is not self.primary)

    def fail_over(self) -> PostgresNode:
        """Crash the primary and promote the standby; return the new primary."""
        if self.standby is None:
            raise RuntimeError("no standby to fail over to")
        old, new = self.primary, self.standby
        old.stop("immediate")
        new.promote()
        # Its own configuration names no synchronous standby (ALTER SYSTEM on the old primary
        # is not replicated): it commits alone until `rejoin`.
        self.primary, self.standby = new, None
        return new

    def rejoin(self) -> PostgresNode:
        """Bring the failed node back as the synchronous standby; return it."""
        node = self.down
        if node is None:
            raise RuntimeError("both nodes are up")
        primary = self.primary
        primary.sql("CHECKPOINT")
        primary.sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"  # noqa: S608
            f" WHERE slot_name = '{node.name}'"
        )
        primary.sql(f"SELECT pg_create_physical_replication_slot('{node.name}', true)")
        node.rewind_to(primary)
        node.start()
        self._make_synchronous(node)
        self.standby = node
        return node

    def make_whole(self) -> None:
        """Undo whatever a test left undone: start a stopped node, bring a failed primary back
        as the standby, and wait until the standby is synchronous again. Roles are not
        restored: either node may be the primary afterwards."""
        for node in (self.primary, self.standby):
            if node is not None and not node.running:
                node.start()
        if self.standby is None:
            self.rejoin()
        else:
            self._wait_for_state(self.standby, "sync_state", "sync")

    def _make_synchronous(self, standby: PostgresNode) -> None:
        """Name `standby` synchronous once it streams, and wait until the primary says so.
        Naming it before it streams would hold every commit until it does."""
        self._wait_for_state(standby, "state", "streaming")
        self.primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{standby.name}'")
        self.primary.sql("SELECT pg_reload_conf()")
        self._wait_for_state(standby, "sync_state", "sync")

    def _wait_for_state(self, standby: PostgresNode, column: str, value: str) -> None:
        query = (
            f"SELECT {column} FROM pg_stat_replication"  # noqa: S608 (our own names)
            f" WHERE application_name = '{standby.name}'"
        )
        deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
        while self.primary.sql(query) != value:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{standby.name} is not {value} after {SYNC_TIMEOUT_SECONDS}s")
            time.sleep(0.05)
