"""Private servers never outlive their test run: not on Ctrl-C, not on SIGTERM, and a run that
was SIGKILLed is swept by the next one.

Each test has a child pytest of its own (`held_servers.py`; the module starts them all at once)
holding a PostgreSQL instance, a RabbitMQ node (with its epmd) and a network namespace, stops
that child from outside, and then looks for anything left: processes, listening ports,
namespaces, the run's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers.commands import listening, run
from tests.support.servers.registry import marked_processes, sweep_stale

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HELD_SERVERS = Path(__file__).with_name("held_servers.py")
START_DEADLINE_SECONDS = 150
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Held:
    child: subprocess.Popen[bytes]
    root: Path
    ports: list[int]
    namespaces: list[str]
    processes: list[int]
    log: Path

    def leftovers(self) -> list[str]:
        namespaces = run("ip", "netns", "list")
        return [
            *(f"process {pid}" for pid in self.processes if _alive(pid)),
            *(f"port {port}" for port in self.ports if listening(port)),
            *(f"namespace {name}" for name in self.namespaces if name in namespaces),
            *([f"folder {self.root}"] if self.root.exists() else []),
        ]


@dataclass(frozen=True)
class Child:
    process: subprocess.Popen[bytes]
    report: Path
    log: Path


def start_child(folder: Path) -> Child:
    report, log = folder / "held.json", folder / "child.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pytest", str(HELD_SERVERS), "-q"),
                # The child is stopped before it ends: no cache, no guard of the machine's servers.
                *("-p", "no:cacheprovider", "-p", "no:tests.support.machine"),
            ],
            cwd=ROOT,
            env={**os.environ, "HELD_SERVERS_REPORT": str(report)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Child(process, report, log)


@pytest.fixture(scope="module")
def children(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Child]]:
    """A child run for each test of the module that is to run, all started at once: their
    servers start side by side instead of one test after the other."""
    tests = [
        item
        for item in request.session.items
        if item.path == request.path and "held" in getattr(item, "fixturenames", ())
    ]
    started = [start_child(tmp_path_factory.mktemp("held")) for _ in tests]
    try:
        yield started
    finally:
        for child in started:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()
        sweep_stale()


@pytest.fixture
def held(children: list[Child]) -> Iterator[Held]:
    child = children.pop()
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while not child.report.exists():
            assert child.process.poll() is None, child.log.read_text()
            assert time.monotonic() < deadline, "the child run did not start its servers"
            time.sleep(0.1)
        started = json.loads(child.report.read_text())
        root = Path(started["root"])
        yield Held(
            child=child.process,
            root=root,
            ports=started["ports"],
            namespaces=started["namespaces"],
            processes=marked_processes(root),
            log=child.log,
        )
    finally:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        sweep_stale()


def test_ctrl_c_removes_every_private_server(held: Held) -> None:
    assert held.processes
    held.child.send_signal(signal.SIGINT)
    held.child.wait(timeout=60)
    assert held.leftovers() == [], held.log.read_text()


def test_sigterm_removes_every_private_server(held: Held) -> None:
    held.child.send_signal(signal.SIGTERM)
    held.child.wait(timeout=60)
    assert held.leftovers() == [], held.log.read_text()


def test_servers_of_a_killed_run_are_swept_by_the_next(held: Held) -> None:
    held.child.send_signal(signal.SIGKILL)
    held.child.wait(timeout=60)
    assert held.leftovers() != []  # SIGKILL leaves no chance to clean up

    assert held.root in sweep_stale()

    assert held.leftovers() == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
