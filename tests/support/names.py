"""Unique names for what tests create on the machine's shared servers (databases, vhosts,
broker users), each carrying this session's tag.

Other test runs use the same servers at the same time, so "something new appeared" proves
nothing; "something with our tag is still there" does (`tests/support/machine.py`).
"""

from __future__ import annotations

import secrets
import uuid

SESSION_TAG = secrets.token_hex(4)


def unique_suffix() -> str:
    """A fresh suffix: this session's tag, then random hex."""
    return f"{SESSION_TAG}{uuid.uuid4().hex[:8]}"
