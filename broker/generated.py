"""Files generated from code and committed beside it: one way to write them, and to tell which
committed copies no longer match the code.

A generated file that is written by hand drifts from the code it describes; one that is committed
but never checked drifts just as surely. Each generator states what it renders and which folders it
owns, and `--check` (run by `make test`) fails while the committed copies differ: missing, changed,
or left over from something the code no longer has (a removed event type, a removed service).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class GeneratedFiles:
    """`render` gives every file's text by its path relative to the target directory. In each
    `owned` folder (relative path, glob) a matching file that is not rendered is a leftover.
    `command` is the command line that (re)writes them into `directory` by default."""

    name: str
    command: str
    description: str
    directory: Path
    render: Callable[[], Mapping[str, str]]
    owned: tuple[tuple[str, str], ...]

    def leftovers(self, directory: Path, expected: Mapping[str, str]) -> list[str]:
        present = {
            f"{folder}/{path.name}"
            for folder, pattern in self.owned
            if (directory / folder).is_dir()
            for path in (directory / folder).glob(pattern)
        }
        return sorted(present - expected.keys())

    def stale(self, directory: Path) -> list[str]:
        """Relative paths under `directory` that are missing, differ, or should not be there."""
        expected = self.render()
        changed = [
            name
            for name, text in expected.items()
            if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
        ]
        return sorted(changed + self.leftovers(directory, expected))

    def write(self, directory: Path) -> list[str]:
        """Write every rendered file under `directory` and remove the leftovers."""
        expected = self.render()
        for name in self.leftovers(directory, expected):
            (directory / name).unlink()
        for name, text in expected.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return sorted(expected)

    def run(self, directory: Path, *, check: bool) -> int:
        """The command line's work: write, or with `check` report what is stale; the exit status."""
        if not check:
            written = self.write(directory)
            print(f"wrote {len(written)} files to {directory}")
            return 0
        stale = self.stale(directory)
        if not stale:
            print(f"{self.name} in {directory}: up to date")
            return 0
        print(f"{self.name} in {directory}: stale", file=sys.stderr)
        for name in stale:
            print(f"  {name}", file=sys.stderr)
        print(f"regenerate with: {self.command}", file=sys.stderr)
        return 1

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The generator's command line: `<command> [--check] [--dir DIR]`."""
        parser = argparse.ArgumentParser(prog=self.command, description=self.description)
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 listing the files that differ from what the code generates",
        )
        parser.add_argument(
            "--dir",
            type=Path,
            default=self.directory,
            help=f"where the files go (default: {self.directory})",
        )
        args = parser.parse_args(argv)
        return self.run(args.dir, check=args.check)
