"""`make migration` writes the next revision from what a service's models changed, on a scratch
database it removes afterwards (`scripts/new-migration.sh`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository's tracked files, for the script to write into."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = tmp_path / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return tmp_path


def test_a_new_column_in_the_models_becomes_the_next_revision(checkout: Path) -> None:
    models = checkout / "order_svc" / "models.py"
    text = models.read_text()
    models.write_text(
        text.replace(
            '    Column("request_fingerprint", Text),\n',
            '    Column("request_fingerprint", Text),\n    Column("gift_note", Text),\n',
        )
    )
    versions = checkout / "order_svc" / "migrations" / "versions"
    before = set(versions.glob("*.py"))

    made = subprocess.run(
        ["bash", "scripts/new-migration.sh", "order_svc", "add a gift note"],
        cwd=checkout,
        env={**os.environ, "VENV": str(Path(sys.executable).parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert made.returncode == 0, made.stderr
    [written] = set(versions.glob("*.py")) - before
    latest = max(int(p.name[:4]) for p in before)
    assert written.name == f"{latest + 1:04d}_add_a_gift_note.py"
    revision = written.read_text()
    assert re.search(r"op\.add_column\(\s*\"orders\",\s*sa\.Column\(\"gift_note\"", revision)
    assert f'down_revision: str | Sequence[str] | None = "{latest:04d}"' in revision
