"""`python -m tests.support.servers`: remove the private servers of test runs that are gone
(a pytest that was SIGKILLed), and list the runs still in progress."""

from __future__ import annotations

from tests.support.servers.registry import ROOT, sweep_stale


def main() -> None:
    for folder in sweep_stale():
        print(f"removed {folder}")
    live = sorted(ROOT.iterdir()) if ROOT.is_dir() else []
    for folder in live:
        print(f"in progress: {folder}")
    if not live:
        print(f"no private servers under {ROOT}")


if __name__ == "__main__":
    main()
