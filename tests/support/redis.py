"""The Redis the rate-limit tests count in: the machine's, each test under a prefix of its own."""

from __future__ import annotations

import os

REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
