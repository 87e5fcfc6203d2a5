"""schemathesis hooks of the fuzz suite, loaded by `st run` (`SCHEMATHESIS_HOOKS`).

Generated requests draw `Idempotency-Key`s from a small space, so two valid orders with
different items often share one, and the service rightly answers the second 422 (the IETF
idempotency-key draft's answer to a key reused for another request). A client makes one key per
order it means to place: each valid key gets a random suffix, within the documented pattern.
Reusing a key is covered by the end-to-end tests.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_SUFFIX_LENGTH = 33


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    key = (case.headers or {}).get("Idempotency-Key")
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and isinstance(key, str) and _KEY.fullmatch(key) and case.headers is not None:
        case.headers["Idempotency-Key"] = f"{key[: 255 - _SUFFIX_LENGTH]}-{uuid.uuid4().hex}"
