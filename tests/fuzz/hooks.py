"""schemathesis hooks of the fuzz suite, loaded by `st run` (`SCHEMATHESIS_HOOKS`).

Generated requests draw `Idempotency-Key`s from a small space, so two valid orders with
different items often share one, and the service rightly answers the second 422 (the IETF
idempotency-key draft's answer to a key reused for another request). A client makes one key per
order it means to place: each valid key gets a random suffix, within the documented pattern.
Reusing a key is covered by the end-to-end tests.

schemathesis cannot generate an `If-Match` (its pattern needs `"`, which it never puts in a
header), so its coverage phase seeds an optional one with a value outside the pattern and still
builds positive cases on it: `PUT /stock/{sku}` with `If-Match: 0`, rightly answered 422. In a
positive case such a value becomes an ETag of the documented form, `"1"`, which is what the case
claims to send. A required `If-Match` never gets that far (schemathesis then builds no positive
case), and the negative cases keep their invalid values.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from shared.web.etags import IF_MATCH_PATTERN

_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_IF_MATCH = re.compile(IF_MATCH_PATTERN)
_SUFFIX_LENGTH = 33


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    key = (case.headers or {}).get("Idempotency-Key")
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and isinstance(key, str) and _KEY.fullmatch(key) and case.headers is not None:
        case.headers["Idempotency-Key"] = f"{key[: 255 - _SUFFIX_LENGTH]}-{uuid.uuid4().hex}"
    if_match = (case.headers or {}).get("If-Match")
    stray = isinstance(if_match, str) and not _IF_MATCH.fullmatch(if_match)
    if positive and stray and case.headers is not None:
        case.headers["If-Match"] = '"1"'
