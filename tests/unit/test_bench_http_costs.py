"""`python -m bench.http_costs` keeps measuring what it says: every app it compares answers its
read with a 200 (a read that started failing, as when the order row gained columns, would
otherwise be noticed only by the next person to run it).

No timing is judged here; the benchmark's figures live in docs/design/performance.md.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest

from bench import http_costs


async def test_every_app_the_read_costs_compare_answers_its_read() -> None:
    # The apps read their settings from the environment, as the services do.
    with mock.patch.dict(os.environ):
        for name, (app, scope) in http_costs.apps().items():
            try:
                await http_costs.cpu_per_request(app, scope, 1)
            except RuntimeError as error:  # an answer other than 200
                pytest.fail(f"{name}: {error}")
