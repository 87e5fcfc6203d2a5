"""A mistake planted in a copy of deploy/k8s fails the check, naming the file and the path.

Each test copies the tree, changes one file the way a person might get it wrong, and runs the
whole check (`python -m deploy check`) on the copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.__main__ import check
from deploy.manifests import DEFAULT_ROOT, Finding


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "k8s"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def plant(tree: Path, file: str, old: str, new: str) -> Path:
    path = tree / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {file}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


# Three mistakes in three files of one copy, checked once: none hides another.
MISSPELT = (
    "base/service/worker.yaml",
    "readOnlyRootFilesystem: true",
    "readOnlyRootFileSystem: true",
)
WRONG_TYPE = ("overlays/prod/rabbitmq.yaml", "replicas: 3", 'replicas: "3"')
CLASSIC_QUEUE = ("overlays/prod/topology/user_svc.yaml", "type: quorum", "type: classic")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Finding]]:
    root = tmp_path_factory.mktemp("planted") / "k8s"
    shutil.copytree(DEFAULT_ROOT, root)
    for mistake in (MISSPELT, WRONG_TYPE, CLASSIC_QUEUE):
        plant(root, *mistake)
    return root, check(root)


def findings_at(planted: tuple[Path, list[Finding]], file: str, path: str) -> list[Finding]:
    root, findings = planted
    found = [f for f in findings if f.file == str(root / file) and f.path == path]
    assert found, "\n".join(map(str, findings))
    return found


def test_a_misspelt_field_names_its_file_and_path(planted: tuple[Path, list[Finding]]) -> None:
    misspelt = findings_at(
        planted,
        MISSPELT[0],
        "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem",
    )

    assert any("'readOnlyRootFileSystem' was unexpected" in f.message for f in misspelt)


def test_a_wrong_type_in_a_custom_resource_names_its_file_and_path(
    planted: tuple[Path, list[Finding]],
) -> None:
    wrong = findings_at(planted, WRONG_TYPE[0], "spec.replicas")

    assert any("'3' is not of type 'integer'" in finding.message for finding in wrong)


def test_a_queue_that_is_not_quorum_names_its_file_and_path(
    planted: tuple[Path, list[Finding]],
) -> None:
    [classic] = findings_at(planted, CLASSIC_QUEUE[0], "spec.type")

    assert "must be quorum" in classic.message


def test_the_command_line_check_exits_non_zero_listing_the_finding(tree: Path) -> None:
    planted = plant(tree, "overlays/prod/service/database.yaml", "instances: 3", "instances: 1")

    done = subprocess.run(
        [sys.executable, "-m", "deploy", "check", "--root", str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert f"{planted}: spec.instances: Cluster user-svc-db (overlay prod)" in done.stderr
