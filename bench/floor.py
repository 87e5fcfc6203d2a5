"""`floor_saga_orders_per_s`: the floor program (`bench.baselines.floor_saga`) as two processes, on
databases and a vhost of its own, measured in repetitions that take turns with the services'.

The user side runs for the whole measurement; each repetition starts the order side, which
runs its closed loop (the services' number of clients, warm-up and window) and exits with its
figure. The CPU each process, PostgreSQL and RabbitMQ spent per confirmed order is read around
the repetitions, as for the services' saga.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import cpu
from bench.infra import Resources
from bench.ours.consumer import add_users
from bench.stack import ROOT, Service, spawn

MODULE = "bench.baselines.floor_saga"


@dataclass
class Floor:
    resources: Resources
    log_dir: Path
    users: int
    order_db: str = ""
    amqp_url: str = ""
    users_file: Path = field(default_factory=Path)
    user_side: Service | None = None
    spent: cpu.Tally = field(default_factory=cpu.Tally)

    async def start(self) -> None:
        self.amqp_url = self.resources.vhost("floor")
        self.order_db = await self.resources.database("floor_order", migrated_for="order_svc")
        user_db = await self.resources.database("floor_user", migrated_for="user_svc")
        ids = await add_users(user_db, self.users)
        self.users_file = self.log_dir / "floor-users.txt"
        self.users_file.write_text("".join(f"{i}\n" for i in ids))
        self.user_side = spawn(
            self.resources,
            MODULE,
            {},
            0,
            self.log_dir,
            ("user", user_db, self.amqp_url),
            name="floor-user",
        )

    async def measure(self, *, clients: int, warmup: float, seconds: float) -> float:
        """One repetition: orders confirmed per second in one window after the warm-up."""
        assert self.user_side is not None
        process = self._order_side(clients=clients, warmup=warmup, seconds=seconds)
        pids = {"floor_order": process.pid, "floor_user": self.user_side.pid}
        before = cpu.snapshot(pids)
        # The order side exits once its loop is done: it reports its own CPU (below).
        output, _ = await asyncio.to_thread(process.communicate, timeout=warmup + seconds + 120)
        after = cpu.snapshot({"floor_user": self.user_side.pid})
        self.resources.processes.remove(process)
        if process.returncode != 0 or self.user_side.process.poll() is not None:
            raise RuntimeError(f"the floor saga failed: see {self.log_dir}/floor-*.log")
        result = json.loads(output.decode().strip().splitlines()[-1])
        # The order side is gone by now: it reported its own CPU over its closed loop.
        self.spent.add(
            {**before, "floor_order": 0.0},
            {**after, "floor_order": result["cpu_seconds"]},
            result["orders"],
        )
        rate: float = result["windows"][0]
        return rate

    def _order_side(
        self, *, clients: int, warmup: float, seconds: float
    ) -> subprocess.Popen[bytes]:
        with (self.log_dir / "floor-order.log").open("ab") as log:
            return self.resources.track(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        MODULE,
                        "order",
                        self.order_db,
                        self.amqp_url,
                        str(self.users_file),
                        f"--clients={clients}",
                        f"--warmup={warmup}",
                        "--windows=1",
                        f"--seconds={seconds}",
                    ],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            )

    def stop(self) -> None:
        if self.user_side is not None:
            self.resources.stop(self.user_side.process)
            self.user_side = None
