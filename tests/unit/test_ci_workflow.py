"""The example CI workflow (examples/ci/github-actions.yml) checked offline with actionlint: it
has no finding, and mistakes planted in a copy are found, each of its kind on its line.

actionlint checks the workflow's syntax, its expressions and the contexts they may use, the
inputs of the actions it uses and their runtimes, and, through ShellCheck, its `run:` scripts.
ShellCheck comes from Debian's package (`make test-tools`) and is passed explicitly, so a machine
without it fails here instead of checking less.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "github-actions.yml"
ACTIONLINT = Path(sysconfig.get_path("scripts")) / "actionlint"


def findings(path: Path) -> list[dict[str, Any]]:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "ShellCheck is missing: run make test-tools"
    done = subprocess.run(
        [str(ACTIONLINT), "-format", "{{json .}}", f"-shellcheck={shellcheck}", "-pyflakes=", path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 1) == bool(found), done.stdout + done.stderr
    return found


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_the_example_workflow_has_no_finding() -> None:
    assert findings(WORKFLOW) == []


@pytest.mark.parametrize(
    ("original", "planted", "kind"),
    [
        pytest.param("runs-on:", "run-on:", "syntax-check", id="misspelt-key"),
        pytest.param(
            "python-version:", "python_version:", "action", id="input-the-action-does-not-have"
        ),
        pytest.param('"$EVENTFUL_PACKAGE"', "$EVENTFUL_PACKAGE", "shellcheck", id="unquoted"),
        pytest.param(
            "rabbitmq.id }}", "rabbitmq.container_id }}", "expression", id="unknown-property"
        ),
    ],
)
def test_a_mistake_planted_in_the_workflow_is_found_on_its_line(
    tmp_path: Path, original: str, planted: str, kind: str
) -> None:
    text = WORKFLOW.read_text()
    assert text.count(original) == 1, f"{original!r} is not once in the workflow to plant in"
    copy = tmp_path / "planted.yml"
    copy.write_text(text.replace(original, planted))

    found = {(finding["kind"], finding["line"]) for finding in findings(copy)}

    assert (kind, line_of(text, original)) in found
