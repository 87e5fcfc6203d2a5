"""yamllint over every YAML file of `deploy/k8s`, with the committed `.yamllint.yaml`.

Kustomize accepts YAML that is easy to misread (a duplicated key silently wins, a tab or a
stray indent changes nesting); the linter refuses it before anything is rendered.
"""

from __future__ import annotations

from pathlib import Path

from yamllint import linter
from yamllint.config import YamlLintConfig

from deploy.manifests import DEFAULT_ROOT, Finding, display

CONFIG_FILE = ".yamllint.yaml"


def lint(root: Path = DEFAULT_ROOT) -> list[Finding]:
    config = YamlLintConfig(file=str(root / CONFIG_FILE))
    findings: list[Finding] = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        text = path.read_text(encoding="utf-8")
        findings += [
            Finding(
                file=display(path),
                path=f"line {problem.line} column {problem.column}",
                message=f"{problem.desc} ({problem.rule or 'syntax'})",
            )
            for problem in linter.run(text, config, str(path))
        ]
    return findings
