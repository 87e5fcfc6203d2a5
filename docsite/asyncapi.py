"""The AsyncAPI document rendered as a Markdown page, for reading without a JavaScript viewer.

The document (`catalogue/asyncapi.json`, generated from the code) is the machine-readable
description; this page says the same to a person: where events go, who publishes and who
consumes each type, the envelope every message carries, and the fields of each `data`. It is
read from the document alone, so whatever the document says, the page says, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JSONObject = Mapping[str, Any]

# Constraints worth a reader's eye, in the order they are shown.
_CONSTRAINTS = (
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("format", "{}"),
)


def render(document: JSONObject, *, download: str) -> str:
    """The page; `download` is the document's URL relative to the page."""
    messages: JSONObject = document["components"]["messages"]
    schemas: JSONObject = document["components"]["schemas"]
    consumers = _consumers(document)
    lines = [
        "# Events (AsyncAPI)",
        "",
        f"{document['info']['description']}",
        "",
        f"AsyncAPI {document['asyncapi']}, catalogue version {document['info']['version']}; "
        f"the document itself: [asyncapi.json]({download}).",
        "",
        "## Servers",
        "",
        "| server | host | vhost path | protocol | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {name} | `{server['host']}` | `{server.get('pathname', '/')}` | "
        f"{server['protocol']} {server.get('protocolVersion', '')} | "
        f"{server.get('description', '')} |"
        for name, server in document["servers"].items()
    ]
    lines += [
        "",
        "## Who publishes and who consumes",
        "",
        "| event type | published by | consumed from |",
        "| --- | --- | --- |",
    ]
    types = sorted(name for name in messages if name in schemas)
    lines += [
        f"| [`{name}`](#{_anchor(name)}) | {_publisher(schemas[name])} | "
        f"{', '.join(f'`{queue}`' for queue in consumers.get(name, [])) or 'no service'} |"
        for name in types
    ]
    if types:
        lines += ["", *_envelope(schemas[types[0]]), ""]
    lines += ["## Event types", ""]
    for name in types:
        lines += _message(name, messages[name], schemas, consumers.get(name, []))
    return "\n".join(lines) + "\n"


def _consumers(document: JSONObject) -> dict[str, list[str]]:
    """Event type -> the queues whose `receive` operations take it."""
    found: dict[str, list[str]] = {}
    for operation in document["operations"].values():
        if operation["action"] != "receive":
            continue
        channel = _resolve(document, operation["channel"]["$ref"])
        queue = channel["bindings"]["amqp"]["queue"]["name"]
        for reference in operation["messages"]:
            name = _resolve(document, reference["$ref"])["$ref"].rsplit("/", 1)[-1]
            found.setdefault(name, []).append(queue)
    return {name: sorted(queues) for name, queues in found.items()}


def _resolve(document: JSONObject, reference: str) -> JSONObject:
    node: Any = document
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    result: JSONObject = node
    return result


def _publisher(schema: JSONObject) -> str:
    return _source(schema).lstrip("/")


def _source(schema: JSONObject) -> str:
    """The `source` the producing service publishes with (the schema's example)."""
    return str(schema["properties"]["source"]["examples"][0])


def _envelope(schema: JSONObject) -> list[str]:
    required = set(schema.get("required", ()))
    lines = [
        "## The envelope",
        "",
        "Every message is one CloudEvent with these attributes (`data` differs per type, below):",
        "",
        "| attribute | type | required | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, attribute in schema["properties"].items():
        if name == "data":
            continue
        meaning = attribute.get("description", "")
        if name == "type":
            meaning += " Fixed per event type."
        lines.append(
            f"| `{name}` | {_type_of(attribute)} | {'yes' if name in required else 'no'} | "
            f"{meaning}{_constraints(attribute, skip_const=name == 'type')} |"
        )
    return lines


def _message(
    name: str, message: JSONObject, schemas: JSONObject, queues: Iterable[str]
) -> list[str]:
    schema = schemas[name]
    source = _source(schema)
    consumed = ", ".join(f"`{queue}`" for queue in queues) or "no service's queue"
    return [
        f"### `{name}` {{#{_anchor(name)}}}",
        "",
        f"Published by **{_publisher(schema)}** (`source` `{source}`) with routing key "
        f"`{name}`, content type `{message['contentType']}`; consumed from {consumed}.",
        "",
        *_fields(schema["properties"]["data"], schemas, title="`data`"),
    ]


def _fields(schema: JSONObject, schemas: JSONObject, *, title: str) -> list[str]:
    required = set(schema.get("required", ()))
    lines = [
        f"{title}:",
        "",
        "| field | type | required | meaning |",
        "| --- | --- | --- | --- |",
    ]
    nested: list[str] = []
    for field, spec in schema["properties"].items():
        target = _referenced(spec, schemas)
        lines.append(
            f"| `{field}` | {_type_of(spec)} | {'yes' if field in required else 'no'} | "
            f"{_meaning(spec, target)} |"
        )
        if target is not None and target[1].get("type") == "object":
            nested += ["", *_fields(target[1], schemas, title=f"each `{target[0]}` in `{field}`")]
    return [*lines, *nested, ""]


def _referenced(spec: JSONObject, schemas: JSONObject) -> tuple[str, JSONObject] | None:
    """The named component a field (or its items) refers to, if any."""
    reference = spec.get("$ref") or spec.get("items", {}).get("$ref")
    if reference is None:
        return None
    name = str(reference).rsplit("/", 1)[-1]
    return name, schemas[name]


def _type_of(spec: JSONObject) -> str:
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    kind = spec.get("type", "any")
    if kind == "array":
        return f"array of {_type_of(spec.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(str(option) for option in kind)
    return str(kind)


def _meaning(spec: JSONObject, target: tuple[str, JSONObject] | None) -> str:
    text = str(spec.get("description", ""))
    if target is not None and "enum" in target[1]:
        text += " One of " + ", ".join(f"`{value}`" for value in target[1]["enum"]) + "."
    return (text + _constraints(spec)).strip()


def _constraints(spec: JSONObject, *, skip_const: bool = False) -> str:
    parts = [template.format(spec[key]) for key, template in _CONSTRAINTS if key in spec]
    if "pattern" in spec:
        parts.append(f"matches {_literal_code(spec['pattern'])}")
    if "enum" in spec:
        parts.append("one of " + ", ".join(f"`{value}`" for value in spec["enum"]))
    if "const" in spec and not skip_const:
        parts.append(f"always `{spec['const']}`")
    return (" (" + "; ".join(parts).replace("|", "\\|") + ")") if parts else ""


def _literal_code(text: str) -> str:
    """`text` as inline code inside a table cell, shown exactly as it is.

    A Markdown code span cannot hold a `|` in a table cell (the backslash that escapes it is
    shown too), so the code is HTML, every character other than a letter or digit an entity:
    nothing in it is then read as Markdown or as a cell boundary.
    """
    return "<code>" + "".join(c if c.isalnum() else f"&#{ord(c)};" for c in text) + "</code>"


def _anchor(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")
