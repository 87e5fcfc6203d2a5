"""`floor_saga_orders_per_s`: the floor program (`bench.baselines.floor_saga`) as three processes,
on databases and a vhost of its own, measured in repetitions that take turns with the services'.

The two participants' sides, user (credit) and inventory (stock), run for the whole measurement;
each repetition starts the order side, which runs its closed loop (the services' number of
clients, warm-up and window, and the same orders) and exits with its figure. The floor has no
HTTP, so the SKUs the bench's administrator makes stock-managed for the services are written
straight into the floor's inventory database, with the same stock. The CPU each process,
PostgreSQL and RabbitMQ spent per confirmed order is read around the repetitions, as for the
services' saga.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import cpu
from bench.infra import Resources
from bench.ours.consumer import add_users
from bench.ours.saga import STOCK_ON_HAND, STOCKED_SKUS
from bench.stack import ROOT, Service, spawn
from shared.persistence.database import dsn

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
    inventory_side: Service | None = None
    spent: cpu.Tally = field(default_factory=cpu.Tally)

    async def start(self) -> None:
        self.amqp_url = self.resources.vhost("floor")
        self.order_db = await self.resources.database("floor_order", migrated_for="order_svc")
        user_db = await self.resources.database("floor_user", migrated_for="user_svc")
        ids = await add_users(user_db, self.users)
        self.users_file = self.log_dir / "floor-users.txt"
        self.users_file.write_text("".join(f"{i}\n" for i in ids))
        inventory_db = await self.resources.database(
            "floor_inventory", migrated_for="inventory_svc"
        )
        await add_stock(inventory_db)
        self.user_side = self._participant("user", user_db)
        self.inventory_side = self._participant("inventory", inventory_db)

    def _participant(self, side: str, database_url: str) -> Service:
        return spawn(
            self.resources,
            MODULE,
            {},
            0,
            self.log_dir,
            (side, database_url, self.amqp_url),
            name=f"floor-{side}",
        )

    async def measure(self, *, clients: int, warmup: float, seconds: float) -> float:
        """One repetition: orders confirmed per second in one window after the warm-up."""
        assert self.user_side is not None
        assert self.inventory_side is not None
        participants = {
            "floor_user": self.user_side.pid,
            "floor_inventory": self.inventory_side.pid,
        }
        process = self._order_side(clients=clients, warmup=warmup, seconds=seconds)
        before = cpu.snapshot({"floor_order": process.pid, **participants})
        # The order side exits once its loop is done: it reports its own CPU (below).
        output, _ = await asyncio.to_thread(process.communicate, timeout=warmup + seconds + 120)
        after = cpu.snapshot(participants)
        self.resources.processes.remove(process)
        if process.returncode != 0 or any(
            side.process.poll() is not None for side in (self.user_side, self.inventory_side)
        ):
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
        for side in (self.user_side, self.inventory_side):
            if side is not None:
                self.resources.stop(side.process)
        self.user_side = self.inventory_side = None


async def add_stock(database_url: str) -> None:
    """Every SKU of `STOCKED_SKUS` stock-managed, with the stock the services are given (written
    as a new SKU's stock is; its `inventory.stock_adjusted` has no consumer in the saga)."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(
            """
            INSERT INTO stock (sku, on_hand, reserved, version)
            SELECT unnest($1::text[]), $2::bigint, 0, 1
            """,
            list(STOCKED_SKUS),
            STOCK_ON_HAND,
        )
    finally:
        await connection.close()
