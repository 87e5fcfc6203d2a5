"""Versions in headers: a response carries its aggregate's version as a strong ETag (`"3"`), and a
mutation names the version it expects in `If-Match`.

Parsing distinguishes a missing `If-Match` (428: the mutation must be conditional), one that is
not an ETag this API issues (422: invalid input, naming the header) and, later, in the handler,
one naming a version that is not the current one (412), so a client never changes what it has
not seen.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from shared.errors import Invalid, PreconditionRequired

# The ETags this API issues, as If-Match may send them back (a weak one is taken as strong).
# Written for both Python and the JSON Schema of the OpenAPI document (ECMA-262).
IF_MATCH_PATTERN = r'(?:W/)?"[0-9]{1,9}"'

# Read by the route; documented by its `shared.web.openapi.operation(if_match=...)`, which says
# whether it is required (the header itself must stay optional here: missing gives 428, not the
# 422 of a missing required parameter).
IfMatch = Annotated[str | None, Header(alias="If-Match", include_in_schema=False)]


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version an `If-Match` header asks for; 428 when missing, 422 when not an ETag of ours."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("this request needs an If-Match header with the ETag you hold")
    value = if_match.strip()
    if not _IF_MATCH.fullmatch(value):
        raise Invalid(
            f'If-Match: {if_match!r} is not an ETag this API issues (like "3"): send the ETag '
            "of the version you hold"
        )
    return int(value.removeprefix("W/").strip('"'))


_IF_MATCH = re.compile(IF_MATCH_PATTERN)
