"""`python -m broker`: set the broker up, publish and watch events, and inspect, replay or purge
the dead-letter queues.

    python -m broker declare                       exchange, queues, bindings and DLQs (idempotent)
    python -m broker publish TYPE --data @FILE|JSON|- [--subject S] [--source URI]
                   [--aggregate-version N] [--correlation-id ID] [--causation-id ID] [--id UUID]
                                                   one event of a catalogued type, validated,
                                                   published and confirmed
    python -m broker tail [PATTERN] [--json]       every event matching PATTERN (default `#`)
                                                   as it is published, until Ctrl-C
    python -m broker accounts [--vhost NAME] [--user-prefix P] [--dev] [--print] [--node NODE]
                                                   the vhost, its topology and one least-privileged
                                                   user per service (needs rabbitmqctl)
    python -m broker definitions                   the development definitions compose's RabbitMQ
                                                   loads at boot (broker/definitions.json)
    python -m broker k8s [--check] [--dir DIR]     the same set-up as Kubernetes resources, written
                                                   into deploy/k8s (--check: exit 1 if stale)
    python -m broker dlq list                      every DLQ and how many messages wait there
    python -m broker dlq show QUEUE [--limit N]    look at dead letters without removing them
    python -m broker dlq replay QUEUE [--id EVENT_ID] [--limit N]
                                                   move them back to the queue they came from
    python -m broker dlq purge QUEUE --yes         delete them

QUEUE is a service queue (`order_svc.events`) or its DLQ (`order_svc.events.dlq`). The broker is
`--url`, else AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/. Exit status: 0 done (and `tail`
stopped by Ctrl-C), 1 the broker refused or something was not found, 2 usage error (unknown
queue, purge without --yes, a service password missing, an unknown event type or invalid data).

`publish` builds the event with the publishing kit (`shared.messaging.publish`): `data` is
checked against the type's schema and the envelope against the consumers' own rules before
anything is sent, and the defaults make the event the contract describes (source: the producing
service; subject: the aggregate id in the data; correlation id: the order id in the data, if
any; aggregate version 1; a new id). It prints `published TYPE ID ...`. `tail` binds a temporary
exclusive queue of its own to the `events` exchange with PATTERN (`order.*`, `#.credit_*`, ...)
and prints each event for a person, or with `--json` one JSON object (the CloudEvent) per line;
the queue disappears with the tail.

`accounts` takes each service's password from USER_SVC_AMQP_PASSWORD / ORDER_SVC_AMQP_PASSWORD
(`--dev` generates the missing ones and prints them), renders the definitions (`broker.accounts`,
`broker.definitions`) and imports them with `rabbitmqctl`, so it runs where rabbitmqctl reaches the
node: on the broker host, or with `--node` and the node's Erlang cookie. Elsewhere, `--print`
writes the same definitions to stdout instead, for `rabbitmqctl import_definitions FILE` on the
broker host or the management API (`POST /api/definitions`); they hold the passwords, so keep
that file private. `--user-prefix` names the users `<P>user_svc` and `<P>order_svc` (users are
broker-wide; tests use a unique prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection

from broker import dlq, k8s, tail
from broker.accounts import SERVICE_ACCOUNTS, permissions, topic_permissions
from broker.definitions import (
    DEVELOPMENT_VHOST,
    AccountLogin,
    ImportFailed,
    Login,
    development_definitions,
    import_with_rabbitmqctl,
    render,
    to_json,
)
from broker.topology import TOPOLOGY, Queue, declare
from shared.messaging.publish import InvalidEvent, Publisher, PublishFailed, build_event
from shared.messaging.publish import broker_url as default_broker_url

EXIT_FAILED = 1
EXIT_USAGE = 2


async def _declare(url: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        await declare(await connection.channel())
    for queue in TOPOLOGY.queues:
        print(f"{TOPOLOGY.exchange.name} -> {queue.name} [{', '.join(queue.bindings)}]")
        print(f"  dead letters -> {queue.dead_letter_queue}")
    return 0


def _accounts(args: argparse.Namespace) -> int:
    """Set up the vhost, its topology and the service accounts; return the exit status."""
    logins: list[AccountLogin] = []
    missing: list[str] = []
    generated: list[str] = []
    for account in SERVICE_ACCOUNTS:
        password = os.environ.get(account.password_env, "")
        if not password and args.dev:
            password = secrets.token_urlsafe(24)
            generated.append(f"{account.password_env}={password}")
        if not password:
            missing.append(account.password_env)
            continue
        logins.append(AccountLogin(account, Login(account.user(args.user_prefix), password)))
    if missing:
        print(
            f"error: set {' and '.join(missing)} (or pass --dev to generate development passwords)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    document = render(vhost=args.vhost, accounts=logins)
    # With --print, stdout is the definitions document and nothing else.
    report = sys.stderr if args.print else sys.stdout
    for line in generated:
        print(line, file=report)
    if args.print:
        sys.stdout.write(to_json(document))
        return 0
    try:
        import_with_rabbitmqctl(document, node=args.node)
    except ImportFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    _print_accounts(args.vhost, logins, document)
    return 0


def _print_accounts(
    vhost: str, logins: Sequence[AccountLogin], document: Mapping[str, Any]
) -> None:
    print(
        f"vhost {vhost}: exchange {TOPOLOGY.exchange.name}, {len(document['queues'])} queues, "
        f"{len(document['bindings'])} bindings"
    )
    for entry in logins:
        account, user = entry.account, entry.login.user
        allowed, topic = permissions(account), topic_permissions(account)
        print(
            f"{account.service}: AMQP_URL=amqp://{quote(user, safe='')}:${account.password_env}"
            f"@HOST:5672/{quote(vhost, safe='')}"
        )
        print(f"  configure  {allowed.configure}")
        print(f"  write      {allowed.write}")
        print(f"  read       {allowed.read}")
        print(f"  topic {topic.exchange}: write {topic.write}  read {topic.read}")


async def _dlq(url: str, queue: Queue | None, args: argparse.Namespace) -> int:
    """Run `dlq list` (no queue) or `dlq show|replay|purge` on `queue`; return the exit status."""
    connection = await aio_pika.connect(url)
    async with connection:
        if queue is None:
            return await _list(connection)
        if args.action == "show":
            return await _show(connection, queue, limit=args.limit)
        if args.action == "replay":
            return await _replay(connection, queue, event_id=args.id, limit=args.limit)
        purged = await dlq.purge(connection, queue)
        print(f"purged {purged} message(s) from {queue.dead_letter_queue}")
        return 0


async def _list(connection: AbstractConnection) -> int:
    queues = await dlq.list_dead_letters(connection)
    rows = [
        (q.queue, q.name, "not declared" if q.messages is None else str(q.messages)) for q in queues
    ]
    print(_table(("queue", "dead-letter queue", "messages"), rows))
    return 0


async def _show(connection: AbstractConnection, queue: Queue, *, limit: int) -> int:
    letters = await dlq.show(connection, queue, limit=limit)
    if not letters:
        print(f"{queue.dead_letter_queue} is empty")
        return 0
    rows = [
        (
            _cell(letter.message_id),
            _cell(letter.type),
            letter.original_queue,
            _cell(letter.reason),
            _cell(letter.exception_type),
            _cell(letter.attempts),
            letter.body_preview,
        )
        for letter in letters
    ]
    print(_table(("message id", "type", "from", "reason", "exception", "attempts", "body"), rows))
    return 0


async def _replay(
    connection: AbstractConnection, queue: Queue, *, event_id: str | None, limit: int | None
) -> int:
    try:
        replayed = await dlq.replay(connection, queue, event_id=event_id, limit=limit)
    except dlq.ReplayFailed as failure:
        _print_replayed(failure.replayed, queue)
        print(f"error: {failure}", file=sys.stderr)
        return EXIT_FAILED
    _print_replayed(replayed, queue)
    if event_id is not None and not replayed:
        print(f"error: no message {event_id} in {queue.dead_letter_queue}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _print_replayed(replayed: Sequence[dlq.DeadLetter], queue: Queue) -> None:
    for letter in replayed:
        print(
            f"replayed {_cell(letter.message_id)} ({_cell(letter.type)}) -> {letter.original_queue}"
        )
    print(f"replayed {len(replayed)} message(s) from {queue.dead_letter_queue}")


def _publish(args: argparse.Namespace, url: str) -> int:
    """Build, validate and publish one event; return the exit status."""
    try:
        data = json.loads(_data_text(args.data))
    except (OSError, ValueError) as error:
        print(f"error: --data: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(data, dict):
        print("error: --data: an event's data is a JSON object", file=sys.stderr)
        return EXIT_USAGE
    try:
        event = build_event(
            args.type,
            data,
            subject=args.subject,
            source=args.source,
            aggregate_version=args.aggregate_version,
            correlation_id=args.correlation_id,
            causation_id=args.causation_id,
            event_id=args.id,
        )
    except InvalidEvent as error:
        print(f"error: {error.reason}", file=sys.stderr)
        return EXIT_USAGE

    async def send() -> None:
        async with Publisher(url) as publisher:
            await publisher.send(event)

    asyncio.run(send())
    print(
        f"published {event.type} {event.id} (subject {event.subject}, version "
        f"{event.aggregateversion}, source {event.source})"
    )
    return 0


def _data_text(argument: str) -> str:
    """`--data`: `@FILE` is the file's text, `-` standard input, anything else the JSON itself."""
    if argument == "-":
        return sys.stdin.read()
    if argument.startswith("@"):
        return Path(argument[1:]).read_text("utf-8")
    return argument


def _tail(args: argparse.Namespace, url: str) -> int:
    """Print every event matching the pattern until Ctrl-C (or SIGTERM); return the exit status."""

    def show(seen: tail.Seen) -> None:
        if not args.json:
            print(tail.pretty(seen), flush=True)
            return
        line = tail.as_json(seen)
        if line is not None:
            print(line, flush=True)
        if seen.problem is not None:
            what = "not a CloudEvent" if line is None else "consumers dead-letter the event above"
            print(f"tail: {what} ({seen.routing_key}): {seen.problem}", file=sys.stderr, flush=True)

    def ready(queue: str) -> None:
        print(
            f"tail: {args.pattern!r} on {TOPOLOGY.exchange.name} into {queue}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await tail.watch(url, args.pattern, on_message=show, on_ready=ready, stop=stop)

    asyncio.run(run())
    return 0


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # Every command that talks to the broker over AMQP takes --url.
    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument(
        "--url", help="the broker (default: AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/)"
    )
    commands.add_parser("declare", parents=[broker], help="declare the topology on the broker")
    publish = commands.add_parser(
        "publish", parents=[broker], help="publish one event of a catalogued type, confirmed"
    )
    publish.add_argument("type", metavar="TYPE", help="the event type, e.g. user.registered")
    publish.add_argument(
        "--data",
        required=True,
        metavar="@FILE|JSON|-",
        help="the event's data: @FILE for a file, - for standard input, or the JSON itself",
    )
    publish.add_argument("--subject", help="default: the aggregate id in the data")
    publish.add_argument(
        "--source", metavar="URI", help="default: the producing service, e.g. /user_svc"
    )
    publish.add_argument(
        "--aggregate-version", type=int, metavar="N", help="the aggregate's version (default 1)"
    )
    publish.add_argument(
        "--correlation-id", metavar="ID", help="default: the order id in the data, if any"
    )
    publish.add_argument("--causation-id", metavar="ID", help="the event that caused this one")
    publish.add_argument(
        "--id",
        metavar="UUID",
        help="the event id (default: a new one; the same twice: a duplicate)",
    )
    watch = commands.add_parser(
        "tail", parents=[broker], help="print events as they are published, until Ctrl-C"
    )
    watch.add_argument(
        "pattern", metavar="PATTERN", nargs="?", default="#", help="a topic pattern (default #)"
    )
    watch.add_argument(
        "--json", action="store_true", help="one JSON object (the CloudEvent) per line"
    )
    accounts = commands.add_parser(
        "accounts", help="vhost, topology and one least-privileged user per service (rabbitmqctl)"
    )
    accounts.add_argument("--vhost", default=DEVELOPMENT_VHOST, help="default: %(default)s")
    accounts.add_argument(
        "--user-prefix", default="", metavar="P", help="name the users <P>user_svc, <P>order_svc"
    )
    accounts.add_argument(
        "--dev", action="store_true", help="generate (and print) the passwords not set in the env"
    )
    accounts.add_argument(
        "--print", action="store_true", help="write the definitions to stdout, import nothing"
    )
    accounts.add_argument("--node", help="the RabbitMQ node rabbitmqctl talks to")
    commands.add_parser(
        "definitions", help="the development definitions (compose), to broker/definitions.json"
    )
    resources = commands.add_parser(
        "k8s", help="the topology and accounts as Kubernetes resources, into deploy/k8s"
    )
    resources.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming the stale files"
    )
    resources.add_argument(
        "--dir", type=Path, default=k8s.DEFAULT_DIR, help="deploy/k8s folder (default: %(default)s)"
    )
    dead_letters = commands.add_parser(
        "dlq", parents=[broker], help="inspect, replay or purge dead-letter queues"
    )
    actions = dead_letters.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every DLQ and its message count")
    show = actions.add_parser("show", help="dead letters of QUEUE, left in place")
    show.add_argument("queue", metavar="QUEUE")
    show.add_argument(
        "--limit", type=_positive, default=10, metavar="N", help="at most N (default 10)"
    )
    replay = actions.add_parser("replay", help="move dead letters back to their original queue")
    replay.add_argument("queue", metavar="QUEUE")
    replay.add_argument("--id", metavar="EVENT_ID", help="only the message with this event id")
    replay.add_argument("--limit", type=_positive, metavar="N", help="at most N (default: all)")
    purge = actions.add_parser("purge", help="delete every message of QUEUE's DLQ")
    purge.add_argument("queue", metavar="QUEUE")
    purge.add_argument("--yes", action="store_true", help="yes, delete them")
    return parser


def main() -> None:
    args = _parser().parse_args()
    url = getattr(args, "url", None) or default_broker_url()
    try:
        sys.exit(_run(args, url))
    except (dlq.DeadLetterQueueMissing, PublishFailed, tail.TailFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except aiormq.exceptions.AMQPConnectionError as error:
        print(
            f"error: cannot reach the broker at {_without_password(url)}: {error}", file=sys.stderr
        )
        sys.exit(EXIT_FAILED)


def _run(args: argparse.Namespace, url: str) -> int:
    """Run the command; return the exit status."""
    commands: dict[str, Callable[[], int]] = {
        "declare": lambda: asyncio.run(_declare(url)),
        "publish": lambda: _publish(args, url),
        "tail": lambda: _tail(args, url),
        "accounts": lambda: _accounts(args),
        "definitions": _definitions,
        "k8s": lambda: k8s.RESOURCES.run(args.dir, check=args.check),
        "dlq": lambda: _dead_letters(args, url),
    }
    return commands[args.command]()


def _definitions() -> int:
    sys.stdout.write(to_json(development_definitions()))
    return 0


def _dead_letters(args: argparse.Namespace, url: str) -> int:
    try:
        queue = None if args.action == "list" else dlq.find_queue(args.queue)
    except dlq.UnknownQueue as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "purge" and not args.yes:
        print("error: purge deletes every dead letter for good; add --yes", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_dlq(url, queue, args))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


if __name__ == "__main__":
    main()
