"""What the OpenAPI document says about errors: the problem shape, and the problems a route
answers besides its usual responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.web.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
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
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem_response(description: str, **extra: Any) -> dict[str, Any]:
    """An OpenAPI response entry for a problem a route can answer besides the usual ones."""
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {"description": description, "content": content, **extra}


RATE_LIMITED = problem_response(
    "Too many attempts from this client or for this account",
    headers={"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API really sends for invalid input: a problem
    (`application/problem+json`), not FastAPI's default validation error shape."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if "422" in operation.get("responses", {}):
                    operation["responses"]["422"] = {
                        "description": "Invalid input, naming the field",
                        "content": {
                            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    }
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
