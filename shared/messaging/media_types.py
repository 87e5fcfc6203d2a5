"""Media types as RFC 9110 writes them: `type/subtype` and parameters, compared by their essence.

A content type is never compared as a string: `application/json; charset=utf-8` and
`Application/JSON` are `application/json`, as any HTTP or AMQP peer may write them. Parameters are
checked for form and then ignored: JSON defines none (RFC 8259 section 11; its text is UTF-8
whatever a `charset` says), and the CloudEvents JSON format neither.

The patterns are written in the common subset of Python's, Rust's (pydantic) and ECMA-262's
(JSON Schema) regular expressions, so the decoder and the published JSON Schemas share them.
"""

from __future__ import annotations

import re

# RFC 9110 section 5.6: token, quoted-string, and the optional whitespace around ";".
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_PARAMETERS = rf"(?:[ \t]*;[ \t]*(?:{_TCHAR}+=(?:{_TCHAR}+|{_QUOTED}))?)*"
# "JSON-formatted" in the CloudEvents JSON format (section 3.1.1): `*/json` or `*/*+json`.
_JSON_SUBTYPE = r"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]*\+)?[Jj][Ss][Oo][Nn]"

JSON_MEDIA_TYPE_PATTERN = rf"^{_TCHAR}+/{_JSON_SUBTYPE}{_PARAMETERS}$"

_MEDIA_TYPE = re.compile(rf"({_TCHAR}+/{_TCHAR}+){_PARAMETERS}")
_JSON_MEDIA_TYPE = re.compile(JSON_MEDIA_TYPE_PATTERN[1:-1])


def essence(content_type: str) -> str | None:
    """`type/subtype` of `content_type` in lower case, or None if it is not a media type."""
    match = _MEDIA_TYPE.fullmatch(content_type)
    return match.group(1).lower() if match else None


def is_json(content_type: str) -> bool:
    """Whether `content_type` is a well-formed media type declaring JSON content."""
    return _JSON_MEDIA_TYPE.fullmatch(content_type) is not None
