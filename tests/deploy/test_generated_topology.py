"""The broker's Kubernetes resources are generated from broker/topology.py and broker/accounts.py,
and the committed files are what the code generates (`python -m broker k8s --check`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from broker import k8s
from broker.accounts import SERVICE_ACCOUNTS
from broker.definitions import development_definitions
from broker.topology import TOPOLOGY

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of deploy/k8s to change."""
    target = tmp_path / "k8s"
    shutil.copytree(k8s.DEFAULT_DIR, target)
    return target


def test_committed_resources_are_what_the_code_generates() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "broker", "k8s", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )

    assert done.returncode == 0, done.stderr


def test_check_fails_naming_a_changed_file(copy: Path) -> None:
    changed = copy / k8s.TOPOLOGY_DIR / "user_svc.yaml"
    changed.write_text(changed.read_text().replace("type: quorum", "type: classic", 1))

    done = subprocess.run(
        [sys.executable, "-m", "broker", "k8s", "--check", "--dir", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert f"{k8s.TOPOLOGY_DIR}/user_svc.yaml" in done.stderr


def test_check_fails_naming_a_missing_file(copy: Path) -> None:
    (copy / k8s.DEV_BROKER_DIR / "credentials.yaml").unlink()

    assert k8s.RESOURCES.stale(copy) == [f"{k8s.DEV_BROKER_DIR}/credentials.yaml"]


def test_check_fails_naming_a_file_of_a_vanished_service(copy: Path) -> None:
    (copy / k8s.TOPOLOGY_DIR / "shipping_svc.yaml").write_text("{}\n")

    assert k8s.RESOURCES.stale(copy) == [f"{k8s.TOPOLOGY_DIR}/shipping_svc.yaml"]


def test_writing_brings_a_stale_copy_up_to_date(copy: Path) -> None:
    (copy / k8s.TOPOLOGY_DIR / "shipping_svc.yaml").write_text("{}\n")
    (copy / k8s.TOPOLOGY_DIR / "order_svc.yaml").write_text("{}\n")

    assert k8s.RESOURCES.run(copy, check=False) == 0

    assert k8s.RESOURCES.stale(copy) == []


def test_every_queue_of_the_topology_has_one_quorum_queue_resource() -> None:
    queues = [r for a in SERVICE_ACCOUNTS for r in k8s.service_resources(a) if r["kind"] == "Queue"]
    names = sorted(q["spec"]["name"] for q in queues)

    assert names == sorted(
        name for queue in TOPOLOGY.queues for name in k8s.queue_declarations(queue)
    )
    assert {q["spec"]["type"] for q in queues} == {"quorum"}


def test_every_service_gets_a_user_whose_credentials_the_operator_generates() -> None:
    users = [r for a in SERVICE_ACCOUNTS for r in k8s.service_resources(a) if r["kind"] == "User"]

    assert [u["metadata"]["name"] for u in users] == ["user-svc", "order-svc", "inventory-svc"]
    assert all("importCredentialsSecret" not in u["spec"] for u in users)


def test_permissions_refer_to_the_users_by_resource() -> None:
    for account in SERVICE_ACCOUNTS:
        for resource in k8s.service_resources(account):
            if resource["kind"] in {"Permission", "TopicPermission"}:
                assert resource["spec"]["userReference"] == {
                    "name": k8s.resource_name(account.service)
                }


def test_dev_broker_loads_the_development_definitions() -> None:
    files = k8s.rendered_files()

    assert files[f"{k8s.DEV_BROKER_DIR}/definitions.json"] == (
        REPO_ROOT / "broker" / "definitions.json"
    ).read_text(encoding="utf-8")
    assert yaml.safe_load(files[f"{k8s.DEV_BROKER_DIR}/definitions.json"]) == (
        development_definitions()
    )


def test_dev_credentials_hold_the_passwords_of_the_development_definitions() -> None:
    users = {u["name"]: u["password"] for u in development_definitions()["users"]}

    for secret in k8s.development_credentials():
        data = secret["stringData"]
        assert users[data["username"]] == data["password"]


def test_kubernetes_names_keep_to_lowercase_letters_digits_and_dashes() -> None:
    assert k8s.resource_name("user_svc.events.retry.1000ms") == "user-svc-events-retry-1000ms"
