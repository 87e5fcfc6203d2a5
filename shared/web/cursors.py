"""Page cursors: a position in a listing, handed to the client and back, opaque to it.

A cursor is the position (the sort key of the last item served) in URL-safe base64 without
padding, so it travels in a query string as it is. What it encodes is the listing's business;
a cursor that does not decode is a 422, never a server error.
"""

from __future__ import annotations

import base64
import binascii

from shared.errors import Invalid

NOT_ISSUED = "cursor: not a cursor this API issued"


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The position `cursor` encodes; `Invalid` if it encodes no text."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise Invalid(NOT_ISSUED) from error
