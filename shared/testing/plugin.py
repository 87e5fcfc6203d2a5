"""The pytest plugin of the testing kit (entry point `eventful` in the group `pytest11`).

It adds command-line options and fixtures, nothing else: no autouse fixture and no hook that
changes collection or reporting, so a suite that requests none of its fixtures runs as without it
(`-p no:eventful` leaves it out altogether). Every fixture is named `eventful_*`, so none hides a
fixture of the project's own.

- `eventful_stack` (session): the running stack (`shared.testing.stack.Stack`). Started from the
  installed package on fresh databases and a fresh vhost, and removed at the end of the session;
  or, when `--eventful-<service>-url` is given for every service, the stack already running
  there (the broker is then `--eventful-amqp-url`, vhost included).
- `eventful_tap`: every event published while the test runs (`shared.testing.tap.EventTap`),
  with `wait_for(type, where=...)`.
- `eventful_publish`: `await eventful_publish(type, data, **attributes)` publishes a catalogued
  event on the stack's broker, validated and confirmed (`shared.messaging.publish`).
- `eventful_eventually`: `await eventful_eventually(probe, what=...)` polls until the probe holds
  (`shared.testing.waiting.eventually`).
- `eventful_user`: a newly registered, signed-in user (`shared.testing.users.SignedIn`);
  `eventful_user.client("order_svc")` is an httpx client that sends its token.

Each option can be given as an environment variable instead, named after it (`--eventful-amqp-url`
is `EVENTFUL_AMQP_URL`); the option wins. The stack is set up in a thread with an event loop of
its own, so it serves tests of any loop scope; the other fixtures run in the test's loop.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, Unpack

import pytest
import pytest_asyncio

from shared.messaging.envelope import CloudEvent
from shared.messaging.publish import DEFAULT_AMQP_URL, Attributes, Publisher
from shared.testing.stack import SERVICES, Service, Stack, StartedStack, wait_ready
from shared.testing.tap import EventTap
from shared.testing.users import SignedIn, sign_up
from shared.testing.waiting import eventually

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class Setting:
    """One option of the plugin, and the environment variable that gives it too."""

    name: str
    help: str
    default: str | None = None
    metavar: str = "URL"

    @property
    def option(self) -> str:
        return f"--eventful-{self.name}"

    @property
    def variable(self) -> str:
        return f"EVENTFUL_{self.name.upper().replace('-', '_')}"

    @property
    def dest(self) -> str:
        return f"eventful_{self.name.replace('-', '_')}"

    def value(self, config: pytest.Config) -> str | None:
        given: str | None = config.getoption(self.dest)
        return given or os.environ.get(self.variable) or self.default


POSTGRES_URL = Setting(
    "postgres-url",
    "PostgreSQL server on which a started stack creates its databases",
    DEFAULT_POSTGRES_URL,
)
AMQP_URL = Setting(
    "amqp-url",
    "RabbitMQ: for a started stack, an account that gets every permission on the new vhost "
    "(the URL's vhost is not used); for a running stack, its broker and vhost",
    DEFAULT_AMQP_URL,
)
RABBITMQCTL = Setting(
    "rabbitmqctl",
    "command that runs rabbitmqctl on the broker, to make and remove a started stack's vhost, "
    "such as 'docker exec CONTAINER rabbitmqctl'",
    "rabbitmqctl",
    metavar="COMMAND",
)


def service_url(service: Service) -> Setting:
    return Setting(
        f"{service.package.replace('_', '-')}-url",
        f"base URL of a running {service.package}; given for every service, the stack is not "
        "started but found there",
    )


def settings() -> tuple[Setting, ...]:
    return (POSTGRES_URL, AMQP_URL, RABBITMQCTL, *(service_url(s) for s in SERVICES))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventful", "eventful stack (the fixtures eventful_*)")
    for setting in settings():
        default = f"; default {setting.default}" if setting.default else ""
        group.addoption(
            setting.option,
            dest=setting.dest,
            metavar=setting.metavar,
            default=None,
            help=f"{setting.help} (or {setting.variable}{default})",
        )


def running_urls(given: Mapping[str, str | None]) -> dict[str, str] | None:
    """Each service's URL, when all are given; None when none is (the stack is started)."""
    missing = [service for service, url in given.items() if not url]
    if len(missing) == len(given):
        return None
    if missing:
        options = ", ".join(service_url(Service(s)).option for s in missing)
        raise pytest.UsageError(
            f"a running stack needs the URL of every service; missing: {options} (or their "
            "EVENTFUL_*_URL variables). Give none to have the stack started."
        )
    return {service: str(url).rstrip("/") for service, url in given.items()}


@pytest.fixture(scope="session")
def eventful_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack every test of the session uses; each test brings its own users."""
    config = request.config
    amqp_url = AMQP_URL.value(config) or DEFAULT_AMQP_URL
    urls = running_urls({s.package: service_url(s).value(config) for s in SERVICES})
    if urls is not None:
        stack = Stack(urls=urls, amqp_url=amqp_url)
        _run(wait_ready(stack))
        yield stack
        return
    started = StartedStack(
        postgres_url=POSTGRES_URL.value(config) or DEFAULT_POSTGRES_URL,
        amqp_url=amqp_url,
        rabbitmqctl=shlex.split(RABBITMQCTL.value(config) or "rabbitmqctl"),
        log_dir=tmp_path_factory.mktemp("eventful-stack"),
    )
    try:
        yield _run(started.start())
    finally:
        _run(started.stop())


@pytest_asyncio.fixture
async def eventful_tap(eventful_stack: Stack) -> AsyncIterator[EventTap]:
    """Every event published on the stack's `events` exchange from the start of the test."""
    async with EventTap(eventful_stack.amqp_url) as tap:
        yield tap


class Publish(Protocol):
    """`shared.messaging.publish.publish`, on the stack's broker."""

    def __call__(
        self, event_type: str, data: Mapping[str, Any], **attributes: Unpack[Attributes]
    ) -> Awaitable[CloudEvent]: ...


@pytest_asyncio.fixture
async def eventful_publish(eventful_stack: Stack) -> AsyncIterator[Publish]:
    """Publish a catalogued event, checked as the consumers check it, confirmed by the broker."""
    async with Publisher(eventful_stack.amqp_url) as publisher:
        yield publisher.publish


class Eventually(Protocol):
    """`shared.testing.waiting.eventually`."""

    def __call__(
        self,
        probe: Callable[[], Awaitable[T]],
        *,
        timeout: float = ...,
        interval: float = ...,
        what: str | None = ...,
    ) -> Awaitable[T]: ...


@pytest.fixture
def eventful_eventually() -> Eventually:
    """Poll a probe until it returns something truthy, failing by a deadline."""
    return eventually


@pytest_asyncio.fixture
async def eventful_user(eventful_stack: Stack) -> AsyncIterator[SignedIn]:
    """A user registered for this test and signed in, with a client per service."""
    user = await sign_up(eventful_stack)
    yield user
    await user.aclose()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run outside any test's event loop: in a thread of its own, with a loop of its own."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventful-stack") as pool:
        return pool.submit(asyncio.run, coroutine).result()
