"""The committed event catalogue (JSON Schemas, AsyncAPI) matches the code and describes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from broker import catalogue
from broker.topology import TOPOLOGY, Queue, Topology
from shared.events import (
    EVENT_TYPES,
    CreditRejectionReason,
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderItem,
    OrderRejected,
    StockAdjusted,
    StockItem,
    StockRejected,
    StockRejectionReason,
    StockReleased,
    StockReserved,
    UserCreditRejected,
    UserCreditReleased,
    UserCreditReserved,
    UserDeactivated,
    UserRegistered,
    UserUpdated,
)
from shared.messaging.envelope import CloudEvent, InvalidEvent, decode, encode, wrap

USER_ID = UUID("00000000-0000-4000-8000-000000000001")
ORDER_ID = UUID("00000000-0000-4000-8000-000000000002")

SAMPLE_DATA: dict[str, EventData] = {
    "user.registered": UserRegistered(
        user_id=USER_ID, email="ada@example.com", name="Ada", credit_limit=100_000
    ),
    "user.updated": UserUpdated(user_id=USER_ID, name="Ada L."),
    "user.deactivated": UserDeactivated(user_id=USER_ID),
    "user.credit_reserved": UserCreditReserved(user_id=USER_ID, order_id=ORDER_ID, amount=2_500),
    "user.credit_rejected": UserCreditRejected(
        user_id=USER_ID,
        order_id=ORDER_ID,
        amount=2_500,
        reason=CreditRejectionReason.INSUFFICIENT_CREDIT,
    ),
    "user.credit_released": UserCreditReleased(user_id=USER_ID, order_id=ORDER_ID, amount=2_500),
    "order.created": OrderCreated(
        order_id=ORDER_ID,
        user_id=USER_ID,
        items=[OrderItem(sku="SKU-1", quantity=2, unit_price=1_250)],
        total=2_500,
    ),
    "order.confirmed": OrderConfirmed(order_id=ORDER_ID, user_id=USER_ID, total=2_500),
    "order.rejected": OrderRejected(
        order_id=ORDER_ID, user_id=USER_ID, reason=CreditRejectionReason.USER_INACTIVE
    ),
    "order.cancelled": OrderCancelled(
        order_id=ORDER_ID, user_id=USER_ID, total=2_500, previous_status="confirmed"
    ),
    "inventory.stock_adjusted": StockAdjusted(sku="SKU-1", on_hand=10, reserved=2),
    "inventory.stock_reserved": StockReserved(
        order_id=ORDER_ID, items=[StockItem(sku="SKU-1", quantity=2)]
    ),
    "inventory.stock_rejected": StockRejected(
        order_id=ORDER_ID, reason=StockRejectionReason.OUT_OF_STOCK, skus=["SKU-1"]
    ),
    "inventory.stock_released": StockReleased(
        order_id=ORDER_ID, items=[StockItem(sku="SKU-1", quantity=2)]
    ),
}

ALL_TYPES = sorted(EVENT_TYPES)


def committed_json(relative: str) -> Any:
    return json.loads((catalogue.DEFAULT_DIR / relative).read_text("utf-8"))


def committed_schema(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = committed_json(f"events/{event_type}.schema.json")
    return schema


def wire_event(event_type: str) -> dict[str, Any]:
    """A CloudEvent of `event_type` exactly as a producer puts it on the broker."""
    data = SAMPLE_DATA[event_type]
    subject: UUID | str = ORDER_ID if event_type.startswith(("order.", "inventory.")) else USER_ID
    if event_type == "inventory.stock_adjusted":
        subject = "SKU-1"
    event = DomainEvent(data=data, subject=subject, aggregate_version=3, correlation_id=ORDER_ID)
    body: dict[str, Any] = json.loads(encode(wrap(event, source=catalogue.source_of(event_type))))
    return body


def validator(event_type: str) -> Draft202012Validator:
    return Draft202012Validator(
        committed_schema(event_type), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local JSON Pointer `$ref` points at; KeyError if it does not resolve."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for segment in ref[2:].split("/"):
        node = node[segment.replace("~1", "/").replace("~0", "~")]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


# The committed files are what the code generates.


def test_sample_data_covers_every_event_type() -> None:
    assert SAMPLE_DATA.keys() == EVENT_TYPES.keys()


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_committed_schema_equals_generated(event_type: str) -> None:
    assert committed_schema(event_type) == catalogue.event_schema(event_type)


def test_committed_asyncapi_equals_generated() -> None:
    assert committed_json(catalogue.ASYNCAPI_FILE) == catalogue.asyncapi_document()


def test_committed_catalogue_is_byte_for_byte_up_to_date() -> None:
    assert catalogue.CATALOGUE.stale(catalogue.DEFAULT_DIR) == []


def test_every_event_type_has_a_schema_file_and_no_other_file_exists() -> None:
    files = {path.name for path in (catalogue.DEFAULT_DIR / "events").iterdir()}
    assert files == {f"{event_type}.schema.json" for event_type in EVENT_TYPES}


def test_generation_is_deterministic() -> None:
    assert catalogue.rendered_files() == catalogue.rendered_files()


def test_check_reports_an_edited_file_and_exits_1(tmp_path: Path) -> None:
    catalogue.CATALOGUE.write(tmp_path)
    edited = tmp_path / "events" / "order.created.schema.json"
    edited.write_text(edited.read_text("utf-8").replace('"minItems": 1', '"minItems": 0'))

    assert catalogue.CATALOGUE.stale(tmp_path) == ["events/order.created.schema.json"]
    assert catalogue.main(["--check", "--dir", str(tmp_path)]) == 1


def test_check_reports_a_schema_of_an_unknown_event_type(tmp_path: Path) -> None:
    catalogue.CATALOGUE.write(tmp_path)
    (tmp_path / "events" / "order.shipped.schema.json").write_text("{}\n")

    assert catalogue.CATALOGUE.stale(tmp_path) == ["events/order.shipped.schema.json"]


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    catalogue.CATALOGUE.write(tmp_path)
    (tmp_path / catalogue.ASYNCAPI_FILE).unlink()

    assert catalogue.main(["--check", "--dir", str(tmp_path)]) == 1


def test_writing_removes_schemas_of_vanished_event_types(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "order.shipped.schema.json").write_text("{}\n")

    assert catalogue.main(["--dir", str(tmp_path)]) == 0

    assert not (tmp_path / "events" / "order.shipped.schema.json").exists()
    assert catalogue.main(["--check", "--dir", str(tmp_path)]) == 0


# The JSON Schemas describe the events the code produces and accepts.


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_schema_is_a_valid_draft_2020_12_schema(event_type: str) -> None:
    Draft202012Validator.check_schema(committed_schema(event_type))


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_schema_is_identified_by_its_type(event_type: str) -> None:
    schema = committed_schema(event_type)

    assert schema["$id"] == f"https://eventful.example/events/{event_type}.json"
    assert schema["title"] == event_type
    assert schema["properties"]["type"]["const"] == event_type


def test_envelope_attributes_are_exactly_the_cloudevent_models() -> None:
    schema = catalogue.event_schema("order.created")

    assert list(schema["properties"]) == list(CloudEvent.model_fields)
    assert set(schema["required"]) == {
        name for name, field in CloudEvent.model_fields.items() if field.is_required()
    }


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_event_as_produced_is_valid_against_its_schema(event_type: str) -> None:
    event = wire_event(event_type)
    decode(json.dumps(event).encode())  # the consumer accepts it too

    assert list(validator(event_type).iter_errors(event)) == []


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (event_type, field)
        for event_type in ALL_TYPES
        for field in EVENT_TYPES[event_type].model_fields
    ],
)
def test_event_missing_a_data_field_is_invalid(event_type: str, field: str) -> None:
    event = wire_event(event_type)
    del event["data"][field]

    assert not validator(event_type).is_valid(event)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_event_with_an_unknown_data_field_is_invalid(event_type: str) -> None:
    event = wire_event(event_type)
    event["data"]["surprise"] = 1

    assert not validator(event_type).is_valid(event)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_event_without_data_is_invalid(event_type: str) -> None:
    event = wire_event(event_type)
    del event["data"]

    assert not validator(event_type).is_valid(event)


# The schemas accept exactly what the decoder accepts: `source` any URI-reference (an outside
# program publishing an event names itself), `datacontenttype` any JSON media type or none.
# Strings ending in a newline are left out: jsonschema applies `pattern` with Python's `re`,
# whose `$` also matches before a final newline; JSON Schema's `$` (ECMA-262) does not, nor does
# the decoder.
ATTRIBUTE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
).filter(lambda text: not text.endswith("\n"))


def decoder_accepts(event: dict[str, Any]) -> bool:
    try:
        decode(json.dumps(event).encode())
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize(
    "source",
    ["/user_svc", "/order_svc", "/my_program", "https://example.com/a?b=c#d", "urn:x:y", "/%41"],
)
def test_event_from_any_uri_reference_source_is_valid_and_decoded(source: str) -> None:
    event = wire_event("user.registered") | {"source": source}

    assert validator("user.registered").is_valid(event)
    assert decoder_accepts(event)


@pytest.mark.parametrize("source", ["", "/a b", "/%zz", "/café", "/a\nb", 7])
def test_event_whose_source_is_no_uri_reference_is_invalid_and_refused(source: object) -> None:
    event = wire_event("user.registered") | {"source": source}

    assert not validator("user.registered").is_valid(event)
    assert not decoder_accepts(event)


@settings(max_examples=300, deadline=None)
@given(
    source=ATTRIBUTE_TEXT
    | st.sampled_from(["/user_svc", "http://h/p", "a:b", "%2F", "%", "%4", "[::1]", "x y"])
)
def test_schema_and_decoder_agree_on_every_source(source: str) -> None:
    event = wire_event("order.created") | {"source": source}

    assert validator("order.created").is_valid(event) == decoder_accepts(event), source


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;charset="UTF-8"',
        "application/vnd.eventful+json",
        "text/json",
        None,
    ],
)
def test_event_whose_data_is_declared_json_in_any_spelling_is_valid_and_decoded(
    content_type: str | None,
) -> None:
    event = wire_event("user.updated") | {"datacontenttype": content_type}

    assert validator("user.updated").is_valid(event)
    assert decoder_accepts(event)


def test_event_without_a_datacontenttype_is_valid_and_decoded() -> None:
    event = wire_event("user.updated")
    del event["datacontenttype"]

    assert validator("user.updated").is_valid(event)
    assert decoder_accepts(event)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/json;x", "json", "", 7]
)
def test_event_whose_data_is_not_declared_json_is_invalid_and_refused(content_type: object) -> None:
    event = wire_event("user.updated") | {"datacontenttype": content_type}

    assert not validator("user.updated").is_valid(event)
    assert not decoder_accepts(event)


@settings(max_examples=300, deadline=None)
@given(
    content_type=ATTRIBUTE_TEXT
    | st.sampled_from(["application/json", "a/json", "x/y+json;a=b", 'a/json;q="\\"', "a/jsonx"])
    | st.builds(
        "{}/{}{}".format,
        st.sampled_from(["application", "text", "x"]),
        st.sampled_from(["json", "ld+json", "JSON", "xml", "json+x"]),
        st.sampled_from(["", ";charset=utf-8", " ; a=b", ';a="x y"', ";a", "; a=", ";=b"]),
    )
)
def test_schema_and_decoder_agree_on_every_datacontenttype(content_type: str) -> None:
    event = wire_event("user.updated") | {"datacontenttype": content_type}

    assert validator("user.updated").is_valid(event) == decoder_accepts(event), content_type


def test_event_of_another_type_is_invalid_against_a_schema() -> None:
    event = wire_event("order.confirmed")

    assert not validator("user.credit_reserved").is_valid(event)


def test_nested_data_models_are_validated_through_hoisted_defs() -> None:
    event = wire_event("order.created")
    event["data"]["items"][0]["quantity"] = 0

    assert not validator("order.created").is_valid(event)


# The AsyncAPI document is well formed and follows the topology.


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = committed_json(catalogue.ASYNCAPI_FILE)
    return document


def test_asyncapi_version_is_3_0_0() -> None:
    assert asyncapi()["asyncapi"] == "3.0.0"
    assert asyncapi()["info"]["version"] == "1.0.0"


def test_asyncapi_names_one_amqp_server_per_deployment() -> None:
    servers = asyncapi()["servers"]

    assert {name: (s["protocol"], s["host"], s["pathname"]) for name, s in servers.items()} == {
        "local": ("amqp", "127.0.0.1:5672", "/%2F"),
        "compose": ("amqp", "127.0.0.1:5672", "/eventful"),
        "kubernetes": ("amqp", "rabbitmq:5672", "/eventful"),
    }


def test_every_asyncapi_ref_resolves() -> None:
    document = asyncapi()

    for ref in all_refs(document):
        resolve(document, ref)


def test_every_operation_channel_ref_resolves_to_a_channel() -> None:
    document = asyncapi()

    for operation in document["operations"].values():
        channel = resolve(document, operation["channel"]["$ref"])
        assert channel in document["channels"].values()


def test_every_operation_message_belongs_to_its_channel() -> None:
    document = asyncapi()

    for operation in document["operations"].values():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/")
            resolve(document, message["$ref"])


def test_every_message_is_a_cloudevent_whose_payload_resolves_to_its_schema() -> None:
    document = asyncapi()

    for event_type, message in document["components"]["messages"].items():
        assert message["contentType"] == "application/cloudevents+json"
        payload = resolve(document, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == event_type


def test_component_schemas_cover_every_event_type() -> None:
    schemas = asyncapi()["components"]["schemas"]

    assert EVENT_TYPES.keys() <= schemas.keys()


def test_every_event_type_has_a_channel_addressed_by_its_routing_key() -> None:
    channels = asyncapi()["channels"]

    for event_type in EVENT_TYPES:
        channel = channels[event_type]
        assert channel["address"] == event_type
        assert channel["bindings"]["amqp"]["is"] == "routingKey"
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "eventful",
        }


def test_every_event_type_is_sent_by_its_producing_service() -> None:
    operations = asyncapi()["operations"]

    for event_type in EVENT_TYPES:
        service = {"user": "user_svc", "order": "order_svc", "inventory": "inventory_svc"}[
            event_type.split(".")[0]
        ]
        operation = operations[f"{service}_sends_{event_type.replace('.', '_')}"]
        assert operation["action"] == "send"
        assert operation["channel"] == {"$ref": f"#/channels/{event_type}"}


def test_every_type_bound_in_the_topology_has_a_receive_operation_on_its_queue() -> None:
    document = asyncapi()

    for queue in TOPOLOGY.queues:
        service = queue.name.split(".")[0]
        for event_type in queue.bindings:
            operation = document["operations"][f"{service}_receives_{event_type.replace('.', '_')}"]
            channel = resolve(document, operation["channel"]["$ref"])
            assert operation["action"] == "receive"
            assert channel["bindings"]["amqp"]["queue"]["name"] == queue.name
            assert [m["$ref"].rsplit("/", 1)[1] for m in operation["messages"]] == [event_type]


def test_no_receive_operation_exists_without_a_topology_binding() -> None:
    bound = {
        catalogue.receive_operation_id(queue.name, event_type)
        for queue in TOPOLOGY.queues
        for event_type in queue.bindings
    }
    receives = {
        operation_id
        for operation_id, operation in asyncapi()["operations"].items()
        if operation["action"] == "receive"
    }

    assert receives == bound


def test_queue_bound_to_an_unknown_event_type_fails_generation() -> None:
    topology = Topology(
        exchange=TOPOLOGY.exchange, queues=(Queue("x_svc.events", bindings=("order.shipped",)),)
    )

    with pytest.raises(ValueError, match=r"order\.shipped"):
        catalogue.asyncapi_document(topology)
