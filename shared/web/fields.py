"""Field types of request bodies that mean in pydantic what they mean in the JSON Schema of the
OpenAPI document, so the service accepts exactly what its document admits.

pydantic's lax mode takes `true` and `"5"` for an integer, which JSON Schema's `integer` does
not admit; its strict mode refuses `5.0`, which JSON Schema's `integer` does (a number with a
zero fraction is an integer). `JSON_INTEGER` takes a JSON number with no fraction, nothing else:

    quantity: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER]

(after the constraints: placed before them, it would hide them from the JSON Schema).
"""

from __future__ import annotations

from pydantic import BeforeValidator


def _json_integer(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be an integer, without a fraction")
        return int(value)
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
