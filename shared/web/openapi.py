"""What a service's OpenAPI document says beyond what FastAPI reads off its routes: the problems
each operation can answer, the headers it returns and requires, its operationId and its servers,
so that a client generated from the document handles every answer the service gives.

A route states what is its own with `operation(...)`, in its decorator: its operationId, the
problems its handler raises, the headers of its success response, whether it is conditional on
`If-Match`, and whether it reads the database (503 when that is down). `document_api` adds what
every operation owes to the edge around it, so no route has to repeat it or can forget it:

- 401 (with `WWW-Authenticate`) where a bearer token is required (the operation has `security`);
- 400 and 413 where there is a request body: one that cannot be read as its content type says,
  and one over the size limit (`RequestSizeLimit` refuses it before it is read);
- 422 as a problem, where FastAPI validates parameters or a body;
- 429 with `Retry-After`, and the `RateLimit-Policy` and `RateLimit` fields on every response,
  where the rate limiter counts (every path it does not leave alone);
- the `Problem` schema, the shared header definitions, and the servers.

operationIds are lowerCamelCase, a verb and a noun (`placeOrder`, `getOrder`, `listOrders`): a
generated client names its functions after them, so they are part of the contract. An app built
by `shared.runtime` refuses a route without one (`explicit_operation_id`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.routing import APIRoute

from shared.web.etags import IF_MATCH_PATTERN
from shared.web.problems import PROBLEM_JSON

JSONObject = dict[str, Any]

PROBLEM_SCHEMA: JSONObject = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "On a 422 from validation: each invalid field and what is wrong.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

# An RFC 9651 structured-field String, as the rate limiter writes policy names.
_SF_STRING = r'"(?:[^"\\]|\\.)*"'


@dataclass(frozen=True)
class Header:
    """A response header the document declares, under `components/headers/<name>`."""

    name: str
    description: str
    schema: JSONObject

    def component(self) -> JSONObject:
        return {"description": self.description, "required": True, "schema": self.schema}

    def ref(self) -> JSONObject:
        return {"$ref": f"#/components/headers/{self.name}"}


ETAG = Header(
    "ETag",
    'The version of the resource as a strong entity tag, e.g. `"3"`: send it back in `If-Match` '
    "to change the resource.",
    {"type": "string", "pattern": r'^"[0-9]+"$'},
)
LOCATION = Header(
    "Location",
    "The path of the resource this request created.",
    {"type": "string", "format": "uri-reference"},
)
RETRY_AFTER = Header(
    "Retry-After",
    "Seconds to wait before trying again.",
    {"type": "integer", "minimum": 1},
)
WWW_AUTHENTICATE = Header(
    "WWW-Authenticate",
    "The scheme to authenticate with: `Bearer`.",
    {"type": "string", "pattern": "^Bearer"},
)
RATE_LIMIT_POLICY = Header(
    "RateLimit-Policy",
    "The quota this request counts against (IETF draft-ietf-httpapi-ratelimit-headers): its name, "
    'its size `q` and its window `w` in seconds, e.g. `"reads";q=500;w=1`.',
    {"type": "string", "pattern": rf"^{_SF_STRING};q=[0-9]+;w=[0-9]+$"},
)
RATE_LIMIT = Header(
    "RateLimit",
    "What is left of that quota: the policy's name, the requests remaining `r` and the seconds "
    'until more come back `t` (left out while limits cannot be counted), e.g. `"reads";r=499;t=1`.',
    {"type": "string", "pattern": rf"^{_SF_STRING};r=[0-9]+(?:;t=[0-9]+)?$"},
)
HEADERS = (ETAG, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE, RATE_LIMIT_POLICY, RATE_LIMIT)


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from a success response to an operation it leads to, with the values it
    passes: `{"order_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}`.
    Clients and stateful testers follow them (cancel the order just read, at its version)."""

    operation_id: str
    parameters: Mapping[str, str]

    def entry(self) -> JSONObject:
        return {"operationId": self.operation_id, "parameters": dict(self.parameters)}


# The headers every problem of a status carries, whichever route answers it.
_PROBLEM_HEADERS: Mapping[int, Sequence[Header]] = {
    401: (WWW_AUTHENTICATE,),
    429: (RETRY_AFTER,),
    503: (RETRY_AFTER,),
}

UNAUTHORIZED = "No valid bearer token: missing, expired, or not signed by user_svc."
UNREADABLE = "The body cannot be read as its content type says (not UTF-8, a broken form)."
CONTENT_TOO_LARGE = "The request body is over the service's size limit; it was not read."
INVALID = "Invalid input, naming each field that is wrong."
RATE_LIMITED = "Over this client's rate limit: nothing was done; retry after `Retry-After`."
UNAVAILABLE = (
    "The database cannot be reached just now: nothing was done; retry after `Retry-After`."
)
PRECONDITION_FAILED = "`If-Match` names a version that is not the current one: nothing changed."
PRECONDITION_REQUIRED = "`If-Match` is missing: this change must name the version it applies to."


def if_match_parameter(*, required: bool) -> JSONObject:
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": 'The ETag of the version you hold, e.g. `"3"`. '
        + (
            "Without it: 428."
            if required
            else "Required (428 without it) when the resource exists already."
        )
        + " Not the current version: 412. Not an ETag this API issues: 422.",
        "schema": {"type": "string", "pattern": f"^{IF_MATCH_PATTERN}$"},
    }


def header_refs(*headers: Header) -> JSONObject:
    """The `headers` of a response entry that always carries these."""
    return {header.name: header.ref() for header in headers}


def problem_response(description: str, *headers: Header) -> JSONObject:
    """An OpenAPI response entry for a problem, with the headers it always carries."""
    response: JSONObject = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = header_refs(*headers)
    return response


def operation(
    operation_id: str,
    *,
    status: int = 200,
    headers: Collection[Header] = (),
    problems: Mapping[int, str] | None = None,
    if_match: Literal["required", "when_exists"] | None = None,
    reads_database: bool = True,
    links: Collection[Link] = (),
    responses: Mapping[int, JSONObject] | None = None,
) -> JSONObject:
    """The keyword arguments of a route decorator that document one operation:

        @router.post("/orders/{order_id}/cancel", **operation("cancelOrder", headers=[ETAG],
                     problems={404: "...", 409: "..."}, if_match="required"))

    `status` is the success status, `headers` the headers of the success response and `links`
    the operations it leads to. `responses` are other answers in FastAPI's form, e.g. a second
    success status: `{201: {"model": StockPublic, "headers": header_refs(LOCATION, ETAG)}}`.
    `problems` are the problems the route's own handler raises, by status, described for this
    operation. `if_match` declares the `If-Match` header (read with `shared.web.etags.IfMatch`)
    and its 412, 422 and 428: `required` for a change of an existing resource, `when_exists` for one
    that may also create it. `reads_database` adds the 503 of a database that cannot be reached.
    What every operation owes to the edge (401, 413, 422, 429, rate-limit headers) is added by
    `document_api`.
    """
    answers = dict(problems or {})
    if if_match is not None:
        answers.setdefault(412, PRECONDITION_FAILED)
        answers.setdefault(422, INVALID)
        answers.setdefault(428, PRECONDITION_REQUIRED)
    if reads_database:
        answers.setdefault(503, UNAVAILABLE)
    documented: dict[int | str, JSONObject] = {
        code: problem_response(description, *_PROBLEM_HEADERS.get(code, ()))
        for code, description in sorted(answers.items())
    }
    for code, response in (responses or {}).items():
        documented[code] = response
    success: JSONObject = {}
    if headers:
        success["headers"] = header_refs(*headers)
    if links:
        success["links"] = {link.operation_id: link.entry() for link in links}
    if success:
        documented[status] = success
    arguments: JSONObject = {
        "operation_id": operation_id,
        "status_code": status,
        "responses": documented,
    }
    if if_match is not None:
        arguments["openapi_extra"] = {
            "parameters": [if_match_parameter(required=if_match == "required")]
        }
    return arguments


def explicit_operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function` for an app whose every route names its
    operationId: a route that does not is refused when it is added, instead of getting a
    generated id (`place_order_orders_post`) that changes whenever the function is renamed."""
    raise ValueError(
        f"route {sorted(route.methods or ())} {route.path} has no operationId: declare it with "
        "shared.web.openapi.operation(...) in its decorator"
    )


def document_api(
    app: FastAPI, *, never_limited: Iterable[str], servers: Sequence[JSONObject]
) -> None:
    """Complete the app's OpenAPI document with what the edge answers for every operation (see
    the module docstring), and its `servers`. `never_limited` are the paths the rate limiter
    leaves alone."""
    generate = app.openapi
    exempt = frozenset(never_limited)

    def openapi() -> JSONObject:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        document["servers"] = list(servers)
        components = document.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        components["headers"] = {header.name: header.component() for header in HEADERS}
        for unused in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(unused, None)
        for path, operations in document.get("paths", {}).items():
            for entry in operations.values():
                _complete(entry, limited=path not in exempt)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(entry: JSONObject, *, limited: bool) -> None:
    responses: dict[str, JSONObject] = entry.setdefault("responses", {})
    if entry.get("security"):
        responses.setdefault("401", problem_response(UNAUTHORIZED, WWW_AUTHENTICATE))
    if "requestBody" in entry:
        responses.setdefault("400", problem_response(UNREADABLE))
        responses.setdefault("413", problem_response(CONTENT_TOO_LARGE))
    if "422" in responses and PROBLEM_JSON not in responses["422"].get("content", {}):
        # FastAPI's own validation error shape: the service answers a problem instead.
        responses["422"] = problem_response(INVALID)
    if limited:
        described = responses.get("429", {}).get("description", RATE_LIMITED)
        responses["429"] = problem_response(described, RETRY_AFTER)
        for response in responses.values():
            headers = response.setdefault("headers", {})
            for header in (RATE_LIMIT_POLICY, RATE_LIMIT):
                headers[header.name] = header.ref()
    entry["responses"] = dict(sorted(responses.items()))
