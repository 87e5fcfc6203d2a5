"""`python -m broker publish` and `python -m broker tail`, run as real processes against the real
broker (a fresh vhost with the topology declared), as a person or a script would run them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from broker.topology import TOPOLOGY, declare
from shared.messaging.envelope import decode
from shared.messaging.publish import publish
from tests.support.events import publish as publish_raw
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.integration

TIMEOUT = 30
PUBLISHED = re.compile(r"^published (\S+) ([0-9a-f-]{36}) ")
READY = re.compile(r"into (\S+); Ctrl-C to stop")
USER_ID = "00000000-0000-4000-8000-0000000000a1"
REGISTERED = {"user_id": USER_ID, "email": "ada@example.com", "name": "Ada", "credit_limit": 7}
ORDER = {
    "order_id": "00000000-0000-4000-8000-0000000000b1",
    "user_id": USER_ID,
    "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": 1500}],
    "total": 3000,
}


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


async def broker_cli(*args: str, url: str | None = None, stdin: str = "") -> Run:
    """`python -m broker ARGS`, to completion; the broker is AMQP_URL=`url` when given."""
    env = {**os.environ, **({"AMQP_URL": url} if url else {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), TIMEOUT)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        yield connection


@pytest.fixture
async def observer(broker: AbstractRobustConnection) -> AbstractQueue:
    queue = await (await broker.channel()).declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(TOPOLOGY.exchange.name, routing_key="#")
    return queue


async def drain(queue: AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    taken = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        taken.append(message)
    return taken


def published_id(run: Run) -> str:
    match = PUBLISHED.match(run.stdout)
    assert match, run
    return match.group(2)


# publish


async def test_publish_sends_one_confirmed_event_and_prints_its_id(
    amqp_url: str, observer: AbstractQueue
) -> None:
    run = await broker_cli(
        "publish", "user.registered", "--data", json.dumps(REGISTERED), url=amqp_url
    )

    assert run.status == 0, run
    [message] = await drain(observer)
    assert message.message_id == published_id(run)
    envelope, _ = decode(message.body)
    assert (envelope.type, envelope.source, envelope.subject) == (
        "user.registered",
        "/user_svc",
        USER_ID,
    )


async def test_publish_reads_data_from_a_file(
    amqp_url: str, observer: AbstractQueue, tmp_path: Path
) -> None:
    data = tmp_path / "order.json"
    data.write_text(json.dumps(ORDER), "utf-8")

    run = await broker_cli("publish", "order.created", "--data", f"@{data}", url=amqp_url)

    assert run.status == 0, run
    [message] = await drain(observer)
    assert decode(message.body)[0].data == ORDER


async def test_publish_reads_data_from_standard_input(
    amqp_url: str, observer: AbstractQueue
) -> None:
    run = await broker_cli(
        "publish", "order.created", "--data", "-", url=amqp_url, stdin=json.dumps(ORDER)
    )

    assert run.status == 0, run
    [message] = await drain(observer)
    assert decode(message.body)[0].data == ORDER


async def test_publish_takes_the_envelope_attributes_and_the_url_from_options(
    amqp_url: str, observer: AbstractQueue
) -> None:
    event_id, cause = str(uuid.uuid4()), str(uuid.uuid4())

    run = await broker_cli(
        "publish",
        "order.created",
        "--data",
        json.dumps(ORDER),
        "--url",
        amqp_url,
        "--subject",
        "the-order",
        "--source",
        "/ci",
        "--aggregate-version",
        "3",
        "--correlation-id",
        "saga-9",
        "--causation-id",
        cause,
        "--id",
        event_id,
        url="amqp://guest:guest@127.0.0.1:1/",
    )

    assert run.status == 0, run
    [message] = await drain(observer)
    envelope, _ = decode(message.body)
    assert (str(envelope.id), envelope.subject, envelope.source) == (event_id, "the-order", "/ci")
    assert (envelope.aggregateversion, envelope.correlationid, envelope.causationid) == (
        3,
        "saga-9",
        cause,
    )


async def test_publish_of_invalid_data_sends_nothing_and_exits_2_naming_the_field(
    amqp_url: str, observer: AbstractQueue
) -> None:
    run = await broker_cli(
        "publish",
        "user.registered",
        "--data",
        json.dumps(REGISTERED | {"credit_limit": -1}),
        url=amqp_url,
    )

    assert run.status == 2
    assert "invalid data for user.registered: credit_limit" in run.stderr
    assert await drain(observer) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["user.teleported", "--data", "{}"], "unknown event type 'user.teleported'"),
        (["user.registered", "--data", "{not json"], "error: --data"),
        (["user.registered", "--data", "[1]"], "data is a JSON object"),
        (["user.registered", "--data", "@/nonexistent/data.json"], "No such file"),
    ],
)
async def test_publish_of_what_is_no_event_exits_2(
    amqp_url: str, observer: AbstractQueue, args: list[str], error: str
) -> None:
    run = await broker_cli("publish", *args, url=amqp_url)

    assert (run.status, run.stdout) == (2, "")
    assert error in run.stderr
    assert await drain(observer) == []


async def test_publish_where_the_topology_is_not_declared_exits_1_saying_so(amqp_url: str) -> None:
    run = await broker_cli(
        "publish", "user.registered", "--data", json.dumps(REGISTERED), url=amqp_url
    )

    assert run.status == 1
    assert "python -m broker declare" in run.stderr


async def test_publish_to_an_unreachable_broker_exits_1_without_showing_the_password() -> None:
    url = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/"

    run = await broker_cli("publish", "user.registered", "--data", json.dumps(REGISTERED), url=url)

    assert run.status == 1
    assert "cannot reach the broker" in run.stderr
    assert "s3cret" not in run.stderr


# tail


class Tail:
    """`python -m broker tail ARGS` running in the background, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, queue: str) -> None:
        self.process = process
        self.queue = queue

    @classmethod
    async def start(cls, url: str, *args: str) -> Tail:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broker",
            "tail",
            *args,
            "--url",
            url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        # Bound before it says so: anything published after this line reaches it.
        ready = (await asyncio.wait_for(process.stderr.readline(), TIMEOUT)).decode()
        match = READY.search(ready)
        assert match, ready
        return cls(process, match.group(1))

    async def lines(self, count: int) -> list[str]:
        assert self.process.stdout is not None
        return [
            (await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)).decode().rstrip("\n")
            for _ in range(count)
        ]

    async def interrupt(self) -> int:
        """Ctrl-C, as a person stops it; its exit status."""
        self.process.send_signal(signal.SIGINT)
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def tails() -> AsyncIterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        tail.kill()
        await tail.process.wait()


async def queue_exists(amqp_url: str, name: str) -> bool:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelLockedResource:
            return True  # there, and exclusive to the tail's connection
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
    return True


async def test_tail_shows_each_event_for_a_person_and_ctrl_c_stops_it_cleanly(
    amqp_url: str, broker: AbstractRobustConnection, tails: list[Tail]
) -> None:
    tail = await Tail.start(amqp_url)
    tails.append(tail)
    assert await queue_exists(amqp_url, tail.queue)

    event = await publish("user.registered", REGISTERED, url=amqp_url, aggregate_version=4)

    headline, details, data = await tail.lines(3)
    assert headline.startswith(f"user.registered  v4  subject {USER_ID}  at ")
    assert f"id {event.id}" in details
    assert "source /user_svc" in details
    assert json.loads(data) == REGISTERED
    assert await tail.interrupt() == 0
    assert not await queue_exists(amqp_url, tail.queue)


async def test_tail_json_writes_each_event_as_one_cloudevent_per_line(
    amqp_url: str, broker: AbstractRobustConnection, tails: list[Tail]
) -> None:
    tail = await Tail.start(amqp_url, "--json")
    tails.append(tail)

    first = await publish("user.registered", REGISTERED, url=amqp_url)
    second = await publish("order.created", ORDER, url=amqp_url)

    lines = await tail.lines(2)
    assert [decode(line.encode())[0] for line in lines] == [first, second]
    assert await tail.interrupt() == 0


async def test_tail_shows_only_the_events_its_pattern_matches(
    amqp_url: str, broker: AbstractRobustConnection, tails: list[Tail]
) -> None:
    tail = await Tail.start(amqp_url, "order.*", "--json")
    tails.append(tail)

    await publish("user.registered", REGISTERED, url=amqp_url)
    created = await publish("order.created", ORDER, url=amqp_url)

    [line] = await tail.lines(1)
    assert json.loads(line)["id"] == str(created.id)
    assert await tail.interrupt() == 0


async def test_tail_shows_what_the_consumers_would_dead_letter_and_why(
    amqp_url: str, broker: AbstractRobustConnection, tails: list[Tail]
) -> None:
    tail = await Tail.start(amqp_url)
    tails.append(tail)

    await publish_raw(amqp_url, "user.registered", b"{not json")

    headline, body = await tail.lines(2)
    assert headline.startswith("user.registered  not a CloudEvent: not a valid CloudEvent")
    assert body == "  b'{not json'"
    assert await tail.interrupt() == 0


async def test_tail_where_the_topology_is_not_declared_exits_1_saying_so(amqp_url: str) -> None:
    run = await broker_cli("tail", url=amqp_url)

    assert run.status == 1
    assert "python -m broker declare" in run.stderr
