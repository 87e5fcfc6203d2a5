"""The testing kit's pytest plugin: registered by the package, named consistently, and changing
nothing for a suite that does not ask for its fixtures."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.testing import plugin
from shared.testing.plugin import running_urls, service_url
from shared.testing.stack import SERVICES, Service

# A test that asks for nothing but `request`, and reports what pytest gave it.
PROBE_TEST = """
def test_reports(request):
    print("LOADED", request.config.pluginmanager.has_plugin("eventful"))
    print("FIXTURES", sorted(request.fixturenames))
"""


def test_the_package_registers_the_plugin_with_pytest() -> None:
    registered = {
        entry.name: entry.value for entry in importlib.metadata.entry_points(group="pytest11")
    }

    assert registered.get("eventful") == "shared.testing.plugin", (
        "the installed metadata lacks the entry point: reinstall the package (make venv)"
    )


def test_the_plugin_implements_no_hook_but_its_options() -> None:
    hooks = {
        name
        for name, value in vars(plugin).items()
        if name.startswith("pytest_") and callable(value)
    }

    assert hooks == {"pytest_addoption"}


def test_each_service_has_a_url_option_and_variable_named_after_its_package() -> None:
    setting = service_url(Service("inventory_svc"))

    assert (setting.option, setting.variable) == (
        "--eventful-inventory-svc-url",
        "EVENTFUL_INVENTORY_SVC_URL",
    )


def test_with_no_service_url_the_stack_is_started() -> None:
    assert running_urls({service.package: None for service in SERVICES}) is None


def test_with_every_service_url_the_stack_is_the_one_running_there() -> None:
    given = {"user_svc": "http://users.test/", "order_svc": "http://orders.test"}

    assert running_urls(given) == {
        "user_svc": "http://users.test",
        "order_svc": "http://orders.test",
    }


def test_some_service_urls_only_is_a_usage_error_naming_the_missing_ones() -> None:
    with pytest.raises(pytest.UsageError, match=r"missing: --eventful-order-svc-url \("):
        running_urls({"user_svc": "http://users.test", "order_svc": None})


def test_a_test_asking_for_none_of_its_fixtures_gets_the_same_fixtures_with_it_or_without(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE_TEST)

    def reported(*options: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", *options],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return [
            line for line in done.stdout.splitlines() if line.startswith(("LOADED", "FIXTURES"))
        ]

    with ThreadPoolExecutor(max_workers=2) as runs:  # the two runs side by side
        with_it = runs.submit(reported)
        without_it = runs.submit(reported, "-p", "no:eventful")
    loaded, fixtures = with_it.result()
    left_out, fixtures_without = without_it.result()

    assert (loaded, left_out) == ("LOADED True", "LOADED False")
    assert fixtures == fixtures_without
