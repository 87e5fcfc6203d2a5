"""Least-privileged broker accounts (`python -m broker accounts`) on the real RabbitMQ.

The command runs once for this module, as an operator would run it, into a fresh vhost with
user names carrying a unique prefix (users are broker-wide), and everything is removed at the
end. Each test then connects as a service's account and checks one thing it may or may not do.
RabbitMQ refuses with ACCESS_REFUSED (reply code 403, which aiormq raises as
`ChannelAccessRefused`) and closes the channel, so every attempt gets a channel of its own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from broker.accounts import SERVICE_ACCOUNTS, ServiceAccount
from broker.ownership import DeclaredScope, TopologyMissing, declare_for_service, declare_owned
from broker.topology import ORDER_SVC_QUEUE, TOPOLOGY, USER_SVC_QUEUE
from tests.support.names import unique_suffix
from tests.support.vhosts import AMQP
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ACCOUNTS = {account.service: account for account in SERVICE_ACCOUNTS}
# Another service of each: one that publishes the first event its queue is bound to.
OTHER = {"user_svc": "order_svc", "order_svc": "user_svc", "inventory_svc": "order_svc"}
SERVICES = tuple(ACCOUNTS)


@dataclass(frozen=True)
class Broker:
    vhost: str
    urls: dict[str, str]  # service -> its account's AMQP URL


def delete_until_gone(*args: str, timeout: float = 90) -> None:
    """Run a rabbitmqctl delete until it succeeds or the object is gone; the broker may be
    restarting under another suite's chaos tests just as this one cleans up."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 0 or "does not exist" in done.stderr + done.stdout:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} kept failing: {done.stderr}")
        time.sleep(1)


def run_accounts_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "accounts", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def environment_without_passwords() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {account.password_env for account in SERVICE_ACCOUNTS}
    }


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    suffix = unique_suffix()
    vhost, prefix = f"test-accounts-{suffix}", f"test-{suffix}-"
    passwords = {account: secrets.token_urlsafe(16) for account in SERVICE_ACCOUNTS}
    env = environment_without_passwords() | {
        account.password_env: password for account, password in passwords.items()
    }
    try:
        done = run_accounts_command("--vhost", vhost, "--user-prefix", prefix, env=env)
        assert done.returncode == 0, done.stderr
        address = urlsplit(AMQP)
        yield Broker(
            vhost=vhost,
            urls={
                account.service: f"amqp://{account.user(prefix)}:{password}@{address.hostname}:"
                f"{address.port or 5672}/{quote(vhost, safe='')}"
                for account, password in passwords.items()
            },
        )
    finally:
        for account in SERVICE_ACCOUNTS:
            delete_until_gone("delete_user", account.user(prefix))
        delete_until_gone("delete_vhost", vhost)


@pytest.fixture
async def connect(broker: Broker) -> AsyncIterator[dict[str, AbstractConnection]]:
    """A connection per service, each under that service's own account."""
    connections = {service: await aio_pika.connect(url) for service, url in broker.urls.items()}
    yield connections
    for connection in connections.values():
        await connection.close()


async def publish(
    connection: AbstractConnection, routing_key: str, *, exchange: str = "events"
) -> str:
    """Publish a message and wait for the broker's confirm; return its message id."""
    message_id = str(uuid.uuid4())
    async with connection.channel(publisher_confirms=True) as channel:
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(
            aio_pika.Message(b"{}", message_id=message_id, type=routing_key),
            routing_key=routing_key,
        )
    return message_id


async def receive(connection: AbstractConnection, queue_name: str, message_id: str) -> bool:
    """Wait until `message_id` arrives in `queue_name` (taking it, and whatever came before)."""
    async with connection.channel() as channel:
        queue = await channel.declare_queue(queue_name, passive=True)

        async def probe() -> bool:
            message = await queue.get(fail=False)
            if message is None:
                return False
            await message.ack()
            return message.message_id == message_id

        return await eventually(probe, timeout=20, what=f"{message_id} in {queue_name}")


async def passive_queue(connection: AbstractConnection, name: str) -> AbstractQueue:
    channel = await connection.channel()
    return await channel.declare_queue(name, passive=True)


def account(service: str) -> ServiceAccount:
    return ACCOUNTS[service]


@pytest.mark.parametrize(
    ("service", "own_event"),
    [
        ("order_svc", "order.created"),
        ("user_svc", "user.credit_reserved"),
        ("inventory_svc", "inventory.stock_reserved"),
    ],
)
async def test_a_service_may_publish_its_own_events(
    connect: dict[str, AbstractConnection], service: str, own_event: str
) -> None:
    await publish(connect[service], own_event)


@pytest.mark.parametrize(
    ("service", "foreign_event"),
    [
        ("order_svc", "user.credit_reserved"),
        ("user_svc", "order.created"),
        ("inventory_svc", "order.created"),
        ("order_svc", "inventory.stock_reserved"),
    ],
)
async def test_a_service_is_refused_publishing_the_other_services_events(
    connect: dict[str, AbstractConnection], service: str, foreign_event: str
) -> None:
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await publish(connect[service], foreign_event)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_consume_the_other_services_queue(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    queue = await passive_queue(connect[service], account(OTHER[service]).queue.name)

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await queue.get(fail=False)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_consumes_its_own_queue(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    subscribed = account(service).queue.bindings[0]
    message_id = await publish(connect[OTHER[service]], subscribed)

    assert await receive(connect[service], account(service).queue.name, message_id)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_dead_letters_into_its_own_dlq_through_the_default_exchange(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    dlq = account(service).queue.dead_letter_queue
    message_id = await publish(connect[service], dlq, exchange="")

    assert await receive(connect[service], dlq, message_id)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_retries_through_its_own_delay_queue_back_into_its_queue(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    queue = account(service).queue
    message_id = await publish(connect[service], queue.retry_queue(1), exchange="")

    assert await receive(connect[service], queue.name, message_id)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_redeclares_its_own_queues_as_its_consumer_does(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    """Same arguments as the broker's definitions, or RabbitMQ would refuse the re-declare."""
    async with connect[service].channel() as channel:
        await declare_owned(channel, account(service).queue, TOPOLOGY.exchange)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_least_privileged_service_declares_only_what_it_owns(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    scope = await declare_for_service(connect[service], account(service).queue)

    assert scope is DeclaredScope.OWN
    await publish(connect[service], account(service).queue.dead_letter_queue, exchange="")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_redeclare_the_other_services_queue(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    other = account(OTHER[service]).queue
    channel = await connect[service].channel()

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.declare_queue(other.name, durable=True, arguments=other.arguments)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_delete_the_events_exchange(
    connect: dict[str, AbstractConnection], service: str
) -> None:
    channel = await connect[service].channel()

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.exchange_delete(TOPOLOGY.exchange.name)


@pytest.mark.parametrize(
    ("service", "routing_key"),
    [("order_svc", "#"), ("order_svc", "order.created"), ("user_svc", "user.registered")],
)
async def test_a_service_cannot_bind_its_queue_to_events_it_does_not_subscribe_to(
    connect: dict[str, AbstractConnection], service: str, routing_key: str
) -> None:
    queue = await passive_queue(connect[service], account(service).queue.name)

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await queue.bind(TOPOLOGY.exchange.name, routing_key)


async def test_an_account_allowed_everything_still_declares_the_whole_topology(
    amqp_url: str,
) -> None:
    """guest in development: every queue exists as soon as any one service has started."""
    async with await aio_pika.connect(amqp_url) as connection:
        scope = await declare_for_service(connection, USER_SVC_QUEUE)
        await passive_queue(connection, ORDER_SVC_QUEUE.name)

    assert scope is DeclaredScope.TOPOLOGY


async def test_declaring_owned_queues_without_the_exchange_says_how_to_set_the_vhost_up(
    amqp_url: str,
) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()

        with pytest.raises(TopologyMissing, match="python -m broker accounts"):
            await declare_owned(channel, USER_SVC_QUEUE)


def test_the_accounts_command_refuses_to_run_without_the_service_passwords() -> None:
    done = run_accounts_command(
        "--vhost", f"test-accounts-{unique_suffix()}", env=environment_without_passwords()
    )

    assert done.returncode == 2
    assert "USER_SVC_AMQP_PASSWORD" in done.stderr
    assert "ORDER_SVC_AMQP_PASSWORD" in done.stderr


def test_the_accounts_command_with_dev_generates_passwords_and_prints_them() -> None:
    done = run_accounts_command("--dev", "--print", env=environment_without_passwords())

    generated = dict(line.split("=", 1) for line in done.stderr.splitlines())
    assert done.returncode == 0
    assert set(generated) == {account.password_env for account in SERVICE_ACCOUNTS}
    assert all(len(password) >= 24 for password in generated.values())
    assert all(password in done.stdout for password in generated.values())
