"""Versions in headers: a response carries its aggregate's version as a strong ETag (`"3"`), and a
mutation names the version it expects in `If-Match`.

Parsing distinguishes a missing `If-Match` (428: the mutation must be conditional) from one
that cannot match any version (412), so a client never changes what it has not seen.
"""

from __future__ import annotations

import re

from shared.errors import PreconditionRequired, StaleVersion


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version an `If-Match` header asks for; 428 when missing, 412 when it cannot match."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("this request needs an If-Match header with the ETag you hold")
    match = _ETAG.fullmatch(if_match.strip())
    if match is None:
        raise StaleVersion(f"If-Match {if_match!r} matches no version of this resource")
    return int(match["version"])


_ETAG = re.compile(r'(?:W/)?"(?P<version>[0-9]{1,9})"')
