"""The published event catalogue: JSON Schemas and an AsyncAPI 3 document, generated from code.

The contract promises that the JSON Schema of every event and an AsyncAPI document are part of the
repository. Written by hand they would drift from what the services really send and accept, so they
are generated here from the only sources of truth: the `data` models in `shared.events`, the
envelope in `shared.messaging.envelope` and the queues and bindings in `broker.topology`. The files
in `catalogue/` are committed; `python -m broker.catalogue --check` (and the unit tests) fail when
they differ from what this module generates, so a change to a model, the envelope or the topology
cannot land without its published description changing with it.

    python -m broker.catalogue          # (re)write catalogue/
    python -m broker.catalogue --check  # exit 1, listing stale files, if catalogue/ is out of date

Each `catalogue/events/<type>.schema.json` describes the *whole* CloudEvent of one type (draft
2020-12, self-contained: `data`'s nested models live in the root `$defs`). In the AsyncAPI
document the same schemas sit under `components/schemas` without `$id` (an `$id` would rebase
their `$ref`s away from the document) and share nested models as components of their own.
Everything is built by pure functions with a fixed order, so the output is byte-for-byte stable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from broker.definitions import DEVELOPMENT_VHOST
from broker.generated import GeneratedFiles
from broker.topology import TOPOLOGY, Topology
from shared.events import EVENT_TYPES, EventData
from shared.messaging.envelope import (
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    SOURCE_PATTERN,
    TRACEPARENT_PATTERN,
    CloudEvent,
)
from shared.messaging.media_types import JSON_MEDIA_TYPE_PATTERN

JSONObject = dict[str, Any]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://eventful.example/events/"
ASYNCAPI_VERSION = "3.0.0"
CATALOGUE_VERSION = "1.0.0"
AMQP_BINDING_VERSION = "0.3.0"
PERSISTENT = 2  # AMQP delivery mode
# The vhost of every deployment (compose, Kubernetes), which the channel bindings name. `make run`
# and the tests use the contract's default broker URL, whose vhost is the default `/`, with the
# same exchange and queues declared in it.
DEPLOYED_VHOST = DEVELOPMENT_VHOST

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "catalogue"
EVENTS_DIR = "events"
SCHEMA_SUFFIX = ".schema.json"
ASYNCAPI_FILE = "asyncapi.json"

# Which service produces the events of each type prefix (`user.registered` -> user_svc).
PRODUCERS: Mapping[str, str] = {
    "user": "user_svc",
    "order": "order_svc",
    "inventory": "inventory_svc",
}


def producer_of(event_type: str) -> str:
    """The service that emits events of `event_type`: the owner of the aggregate it is about."""
    prefix = event_type.split(".", 1)[0]
    try:
        return PRODUCERS[prefix]
    except KeyError:
        raise ValueError(f"no producing service known for event type {event_type!r}") from None


def source_of(event_type: str) -> str:
    """The CloudEvent `source` of every event of `event_type`."""
    return f"/{producer_of(event_type)}"


@dataclass(frozen=True)
class Server:
    """Where one way of running the system has its broker (an AsyncAPI server)."""

    name: str
    host: str
    vhost: str
    description: str

    @property
    def pathname(self) -> str:
        """The vhost as the path of an AMQP URI (`/` itself is written `%2F`)."""
        return "/" + quote(self.vhost, safe="")


SERVERS = (
    Server(
        "local",
        "127.0.0.1:5672",
        "/",
        "`make run` and the tests: RabbitMQ on this machine, at the contract's default "
        "AMQP_URL (`amqp://guest:guest@127.0.0.1:5672/`), in the default vhost `/`, where the "
        "services declare the topology at start.",
    ),
    Server(
        "compose",
        "127.0.0.1:5672",
        DEPLOYED_VHOST,
        f"`docker compose up`: RabbitMQ in compose (`rabbitmq:5672` inside it), vhost "
        f"`{DEPLOYED_VHOST}` with the topology and one user per service, loaded at boot from "
        "broker/definitions.json.",
    ),
    Server(
        "kubernetes",
        "rabbitmq:5672",
        DEPLOYED_VHOST,
        f"deploy/k8s: the RabbitmqCluster `rabbitmq` in the services' namespace, vhost "
        f"`{DEPLOYED_VHOST}`, its topology and users declared by the operator's resources.",
    ),
)


def consumer_of(queue_name: str) -> str:
    """The service that consumes from `queue_name` (queues are named `<service>.<purpose>`)."""
    return queue_name.split(".", 1)[0]


def schema_id(event_type: str) -> str:
    return f"{SCHEMA_ID_BASE}{event_type}.json"


def _attribute_schemas(event_type: str) -> dict[str, JSONObject]:
    """The schema of each envelope attribute of the contract, except `data`."""
    # The optional extensions accept null because the decoder does (CloudEvents' JSON format
    # treats a null attribute as absent); producers omit them instead.
    return {
        "specversion": {
            "type": "string",
            "const": "1.0",
            "description": "CloudEvents specification version.",
        },
        "id": {
            "type": "string",
            "format": "uuid",
            "description": (
                "Unique id of the event, the same on every redelivery; also the AMQP message_id."
            ),
        },
        "source": {
            "type": "string",
            "format": "uri-reference",
            "pattern": SOURCE_PATTERN,
            "examples": [source_of(event_type)],
            "description": (
                f"Who published the event, a URI-reference: `{source_of(event_type)}` when "
                f"{producer_of(event_type)} did; another program publishing it names itself. "
                "Consumers accept any source."
            ),
        },
        "type": {
            "type": "string",
            "const": event_type,
            "description": "The event type; also the routing key and the AMQP type.",
        },
        "subject": {
            "type": "string",
            "minLength": 1,
            "description": (
                "The aggregate the event is about: its id (a UUID), or the sku for the stock "
                "of a SKU (`inventory.stock_adjusted`)."
            ),
        },
        "time": {
            "type": "string",
            "format": "date-time",
            "description": "When the change happened (RFC 3339, with a UTC offset).",
        },
        "datacontenttype": {
            "type": ["string", "null"],
            "pattern": JSON_MEDIA_TYPE_PATTERN,
            "examples": [DATA_CONTENT_TYPE],
            "description": (
                f"Media type of `data`: `{DATA_CONTENT_TYPE}` as the services write it; any JSON "
                "media type is accepted, parameters too (`application/json; charset=utf-8`), "
                f"and an absent one means `{DATA_CONTENT_TYPE}`."
            ),
        },
        "aggregateversion": {
            "type": "integer",
            "minimum": 0,
            "description": "Version of the aggregate (`subject`) after the change.",
        },
        "correlationid": {
            "type": ["string", "null"],
            "description": "The order id within a saga.",
        },
        "causationid": {
            "type": ["string", "null"],
            "description": "Id of the event that caused this one, if any.",
        },
        "traceparent": {
            "type": ["string", "null"],
            "pattern": TRACEPARENT_PATTERN,
            "description": "W3C trace context of the change.",
        },
    }


def _cloudevent_schema(event_type: str, data_schema: JSONObject) -> JSONObject:
    """The envelope of one event type around `data_schema`, attribute by attribute.

    Attributes follow `CloudEvent`'s fields, in order, and are required exactly when the model
    requires them: an attribute added to the envelope without a schema here fails generation.
    """
    attributes = _attribute_schemas(event_type) | {"data": data_schema}
    missing = CloudEvent.model_fields.keys() - attributes.keys()
    if missing:
        raise ValueError(f"envelope attributes without a schema: {sorted(missing)}")
    return {
        "title": event_type,
        "description": (
            f"CloudEvent of type `{event_type}` (CloudEvents 1.0, JSON format), published by "
            f"{producer_of(event_type)} on the `{TOPOLOGY.exchange.name}` exchange with "
            f"routing key `{event_type}`. Other extension attributes are allowed and ignored."
        ),
        "type": "object",
        "properties": {name: attributes[name] for name in CloudEvent.model_fields},
        "required": [
            name for name, field in CloudEvent.model_fields.items() if field.is_required()
        ],
    }


def _data_schema(event_type: str, *, ref_template: str) -> tuple[JSONObject, JSONObject]:
    """`data`'s JSON Schema for `event_type`, and the nested definitions its refs point to."""
    model: type[EventData] = EVENT_TYPES[event_type]
    schema = model.model_json_schema(ref_template=ref_template)
    definitions: JSONObject = schema.pop("$defs", {})
    return schema, definitions


def event_schema(event_type: str) -> JSONObject:
    """The self-contained JSON Schema (draft 2020-12) of a whole CloudEvent of `event_type`."""
    # Pydantic puts nested models in `data`'s own `$defs` but writes its refs as `#/$defs/...`,
    # relative to the document root: hoisting them to the root makes those refs resolve.
    data, definitions = _data_schema(event_type, ref_template="#/$defs/{model}")
    schema: JSONObject = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(event_type),
        **_cloudevent_schema(event_type, data),
    }
    if definitions:
        schema["$defs"] = definitions
    return schema


def event_schemas() -> dict[str, JSONObject]:
    """`event_schema` of every event type, by type, in sorted order."""
    return {event_type: event_schema(event_type) for event_type in sorted(EVENT_TYPES)}


def _asyncapi_schemas() -> dict[str, JSONObject]:
    """`components/schemas`: every event's schema, plus the nested models they share."""
    events: dict[str, JSONObject] = {}
    shared: dict[str, JSONObject] = {}
    for event_type in sorted(EVENT_TYPES):
        data, definitions = _data_schema(event_type, ref_template="#/components/schemas/{model}")
        events[event_type] = _cloudevent_schema(event_type, data)
        for name, definition in definitions.items():
            if shared.setdefault(name, definition) != definition:
                raise ValueError(f"two different nested schemas are both named {name!r}")
    clashes = events.keys() & shared.keys()
    if clashes:
        raise ValueError(f"nested schema names clash with event types: {sorted(clashes)}")
    return events | dict(sorted(shared.items()))


def _ref(*path: str) -> JSONObject:
    return {
        "$ref": "#/" + "/".join(segment.replace("~", "~0").replace("/", "~1") for segment in path)
    }


def _exchange_channel(event_type: str, *, topology: Topology) -> JSONObject:
    return {
        "address": event_type,
        "title": event_type,
        "description": (
            f"Events of type `{event_type}`, published to the `{topology.exchange.name}` topic "
            "exchange with the type as routing key."
        ),
        "messages": {event_type: _ref("components", "messages", event_type)},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": topology.exchange.name,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": DEPLOYED_VHOST,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def _queue_channel(name: str, *, bindings: Sequence[str], dead_letter_queue: str) -> JSONObject:
    return {
        "address": name,
        "title": name,
        "description": (
            f"The durable queue {consumer_of(name)} consumes from, bound to the exchange with "
            f"routing keys {', '.join(f'`{key}`' for key in bindings)}. A message that is not a "
            f"valid event of a known type, or that fails too often, goes to `{dead_letter_queue}`."
        ),
        "messages": {key: _ref("components", "messages", key) for key in sorted(bindings)},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": name,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": DEPLOYED_VHOST,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def send_operation_id(event_type: str) -> str:
    return f"{producer_of(event_type)}_sends_{event_type.replace('.', '_')}"


def receive_operation_id(queue_name: str, event_type: str) -> str:
    return f"{consumer_of(queue_name)}_receives_{event_type.replace('.', '_')}"


def _operations(topology: Topology) -> dict[str, JSONObject]:
    operations: dict[str, JSONObject] = {}
    for event_type in sorted(EVENT_TYPES):
        operations[send_operation_id(event_type)] = {
            "action": "send",
            "title": f"{producer_of(event_type)} publishes {event_type}",
            "description": (
                "Published by the outbox relay after the change commits: at least once, "
                "with the same id on every redelivery, persistent."
            ),
            "channel": _ref("channels", event_type),
            "messages": [_ref("channels", event_type, "messages", event_type)],
            "bindings": {
                "amqp": {"deliveryMode": PERSISTENT, "bindingVersion": AMQP_BINDING_VERSION}
            },
        }
    for queue in sorted(topology.queues, key=lambda q: q.name):
        for event_type in sorted(queue.bindings):
            operation_id = receive_operation_id(queue.name, event_type)
            if operation_id in operations:
                raise ValueError(f"two operations would both be named {operation_id!r}")
            operations[operation_id] = {
                "action": "receive",
                "title": f"{consumer_of(queue.name)} consumes {event_type}",
                "description": (
                    f"Consumed from `{queue.name}` and acknowledged after its effect commits; "
                    "a duplicate id has its effect once."
                ),
                "channel": _ref("channels", queue.name),
                "messages": [_ref("channels", queue.name, "messages", event_type)],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            }
    return dict(sorted(operations.items()))


def _message(event_type: str) -> JSONObject:
    return {
        "name": event_type,
        "title": event_type,
        "summary": f"`{event_type}` as a structured-mode CloudEvent.",
        "contentType": CONTENT_TYPE,
        "payload": _ref("components", "schemas", event_type),
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def asyncapi_document(topology: Topology = TOPOLOGY) -> JSONObject:
    """The AsyncAPI 3.0.0 document of every event on the broker, who sends and who receives it."""
    unknown = {key for queue in topology.queues for key in queue.bindings} - EVENT_TYPES.keys()
    if unknown:
        raise ValueError(f"queues are bound to unknown event types: {sorted(unknown)}")
    channels: dict[str, JSONObject] = {
        event_type: _exchange_channel(event_type, topology=topology)
        for event_type in sorted(EVENT_TYPES)
    }
    for queue in sorted(topology.queues, key=lambda q: q.name):
        if queue.name in channels:
            raise ValueError(f"queue {queue.name!r} clashes with an event type channel")
        channels[queue.name] = _queue_channel(
            queue.name, bindings=queue.bindings, dead_letter_queue=queue.dead_letter_queue
        )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "eventful events",
            "version": CATALOGUE_VERSION,
            "description": (
                "Every event the services exchange through RabbitMQ: CloudEvents 1.0 "
                f"in structured JSON mode on the durable topic exchange "
                f"`{topology.exchange.name}`, routing key = event type, AMQP message_id = "
                "CloudEvent id, AMQP type = CloudEvent type. Consumers also take binary mode "
                "(CloudEvents AMQP binding: attributes in `cloudEvents:` headers, `data` as the "
                "body, its media type as the content type). Each consuming service has its own "
                "durable queue and a dead-letter queue `<queue>.dlq`. The exchange and queues "
                f"are the same in every vhost; the channel bindings name `{DEPLOYED_VHOST}`, the "
                "vhost of compose and Kubernetes (the `local` server uses `/`). Generated by "
                "`python -m broker.catalogue` from the code; do not edit by hand."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            server.name: {
                "host": server.host,
                "pathname": server.pathname,
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": server.description,
            }
            for server in SERVERS
        },
        "channels": channels,
        "operations": _operations(topology),
        "components": {
            "messages": {event_type: _message(event_type) for event_type in sorted(EVENT_TYPES)},
            "schemas": _asyncapi_schemas(),
        },
    }


def _to_json(document: JSONObject) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """Every generated file, by its path relative to the catalogue directory, as text."""
    files = {
        f"{EVENTS_DIR}/{event_type}{SCHEMA_SUFFIX}": _to_json(schema)
        for event_type, schema in event_schemas().items()
    }
    files[ASYNCAPI_FILE] = _to_json(asyncapi_document())
    return files


CATALOGUE = GeneratedFiles(
    name="event catalogue",
    command="python -m broker.catalogue",
    render=rendered_files,
    description="Generate the event catalogue (JSON Schemas, AsyncAPI) from the code.",
    directory=DEFAULT_DIR,
    owned=((EVENTS_DIR, f"*{SCHEMA_SUFFIX}"),),
)


main = CATALOGUE.main

if __name__ == "__main__":
    raise SystemExit(main())
