"""`python -m deploy check [--root DIR]`: render, validate, lint and check every overlay.

Exit status 0 when there is nothing to report, 1 with every finding listed (file, path in the
resource, what is wrong), 2 when a tool the checks need is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy import policies, schemas
from deploy.lint import lint
from deploy.manifests import (
    DEFAULT_ROOT,
    Finding,
    RenderFailed,
    ToolMissing,
    display,
    overlays,
    render,
)

EXIT_FINDINGS = 1
EXIT_TOOL_MISSING = 2


def check(root: Path = DEFAULT_ROOT) -> list[Finding]:
    """Every finding in `root` (a copy of deploy/k8s): lint, schemas and policies per overlay."""
    findings = lint(root)
    for overlay in overlays(root):
        try:
            manifests = render(overlay, root)
        except RenderFailed as failure:
            findings.append(
                Finding(
                    display(root / "overlays" / overlay / "kustomization.yaml"), "", str(failure)
                )
            )
            continue
        findings += schemas.validate(manifests, root / "schemas")
        findings += policies.check(manifests)
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="check every overlay of deploy/k8s")
    checking.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        findings = check(args.root)
    except ToolMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        return EXIT_TOOL_MISSING
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(f"{len(findings)} problem(s) in {args.root}", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"{args.root}: every overlay renders, validates and keeps the policies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
