"""Where a test run's private servers live, and how they are always removed.

Every private server of a run lives under one folder, `<tmp>/eventful-servers/run-<pid>-<token>`,
and every process started for it carries `EVENTFUL_SERVERS=<that folder>` in its environment,
which whatever it starts inherits (epmd, PostgreSQL's backends, a service's replicas). So
removing a run needs no memory of what it started, only the folder:

1. stop every PostgreSQL data folder under it in immediate mode, so the postmaster frees its
   shared memory (a SIGKILLed postmaster leaves its System V segment behind);
2. SIGKILL every process that carries the mark;
3. delete the network namespaces and links the folder lists;
4. delete the folder.

`ServerRun.close` does this at the end of a run, from a fixture finalizer or, if those never
ran, at interpreter exit. `sweep_stale` does the same, at the start of the next run, for every
run whose pytest died without cleaning up (SIGKILL, OOM): its owner is gone, or the pid now
belongs to another process. A run still in progress (another worktree's, say) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

from tests.support.servers.commands import as_postgres, pg_tool, run

ROOT = Path(tempfile.gettempdir()) / "eventful-servers"
MARK = "EVENTFUL_SERVERS"
OWNER_FILE = "owner"
NETWORK_FILE = "network"
KILL_DEADLINE_SECONDS = 10.0


class ServerRun:
    """The folder of one run's private servers, and its removal."""

    def __init__(self) -> None:
        ROOT.mkdir(exist_ok=True)
        self.token = secrets.token_hex(3)
        self.root = ROOT / f"run-{os.getpid()}-{self.token}"
        self.root.mkdir()
        # PostgreSQL runs as the postgres user and must reach its folder whatever the umask.
        for folder in (ROOT, self.root):
            folder.chmod(0o755)
        (self.root / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
        self.closed = False

    @property
    def mark(self) -> dict[str, str]:
        """The environment entry every process of this run carries."""
        return {MARK: str(self.root)}

    def folder(self, name: str) -> Path:
        """A new folder for one server (`name`, or `name-2`... if taken), readable by the
        postgres user (PostgreSQL runs as it)."""
        path, number = self.root / name, 1
        while path.exists():
            number += 1
            path = self.root / f"{name}-{number}"
        path.mkdir()
        path.chmod(0o755)
        return path

    def record_network(self, kind: str, name: str) -> None:
        """Remember a namespace (`netns`), a link (`link`) or the namespaces' mount (`mount`,
        when this run's first namespace creates it) before creating it."""
        with (self.root / NETWORK_FILE).open("a") as listing:
            listing.write(f"{kind} {name}\n")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            remove(self.root)


def sweep_stale() -> list[Path]:
    """Remove every run whose owner is gone; return their folders."""
    if not ROOT.is_dir():
        return []
    stale = [run for run in ROOT.iterdir() if run.is_dir() and not _owner_alive(run)]
    for folder in stale:
        remove(folder)
    return stale


def remove(root: Path) -> None:
    """Stop and delete everything of the run in `root` (see the module docstring)."""
    for pid_file in root.glob("*/data/postmaster.pid"):
        with contextlib.suppress(Exception):
            run(
                *as_postgres(
                    pg_tool("pg_ctl"), "stop", "-m", "immediate", "-D", str(pid_file.parent)
                )
            )
    kill_marked(root)
    for kind, name in reversed(_network_entries(root)):
        if kind == "netns":
            run("ip", "netns", "delete", name, check=False)
        elif kind == "link":
            run("ip", "link", "delete", name, check=False)
        elif kind == "mount":
            _drop_if_empty(Path(name))
    shutil.rmtree(root, ignore_errors=True)


def kill_marked(root: Path) -> None:
    """SIGKILL every process carrying `root`'s mark, until none is left or the deadline."""
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    while pids := marked_processes(root):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of {root} survive SIGKILL: {pids}")
        time.sleep(0.05)


def marked_processes(root: Path) -> list[int]:
    """Live processes whose environment carries `root`'s mark, and their descendants (a
    process that rewrites its title, as PostgreSQL's backends do, no longer shows its
    environment)."""
    entry = f"{MARK}={root}".encode()
    parents = _parents()
    marked = set()
    for pid in parents:
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if entry in environment.split(b"\0"):
            marked.add(pid)
    while children := {p for p, parent in parents.items() if parent in marked} - marked:
        marked |= children
    marked.discard(os.getpid())
    return sorted(marked)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process (zombies left out: they hold nothing)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = _stat_fields(int(entry.name))[:2]
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z":
            parents[int(entry.name)] = int(parent)
    return parents


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/<pid>/stat (state, ppid, ...): the command name before them
    may hold spaces and parentheses."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot: with the pid, it names one process."""
    try:
        return _stat_fields(pid)[19]
    except (OSError, IndexError):
        return ""


def _owner_alive(root: Path) -> bool:
    try:
        pid, started = (root / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return False
    return _start_time(int(pid)) == started


def _network_entries(root: Path) -> list[tuple[str, str]]:
    try:
        lines = (root / NETWORK_FILE).read_text().splitlines()
    except OSError:
        return []
    return [(kind, name) for kind, name in (line.split() for line in lines if line.strip())]


def _drop_if_empty(mount: Path) -> None:
    """The first `ip netns add` on a machine mounts /run/netns; unmount and remove it once no
    namespace is left in it. Another run's namespace keeps it, and so does a failed unmount."""
    with contextlib.suppress(OSError):
        if mount.is_dir() and not any(mount.iterdir()):
            run("umount", str(mount), check=False)
            mount.rmdir()
