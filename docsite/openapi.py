"""Each service's OpenAPI document, taken from its HTTP app built but never started, and the
committed copies in `catalogue/openapi/<service>.json` that clients are generated from.

Building an app opens no connection (engines and broker connections are created lazily, by the
app's lifespan), so the documents come from the code, offline, with the default settings; a
service serves the same document at `GET /openapi.json`. The committed copies are what a client
generator, the docs site and a reviewer read; `python -m docsite.openapi --check` (run by the
unit tests) fails when they differ from what the code generates, so a route cannot change
without its published description changing with it.

    python -m docsite.openapi          # (re)write catalogue/openapi/
    python -m docsite.openapi --check  # exit 1, listing stale files, if it is out of date

A service of the contract whose package is not in this checkout yet is left out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_type_hints

from fastapi import FastAPI

# The contract's services (v1.1): inventory_svc is listed before it is built, so its document
# appears the day its package does.
SERVICES = ("user_svc", "order_svc", "inventory_svc")

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "catalogue" / "openapi"
SUFFIX = ".json"


def present_services() -> list[str]:
    return [name for name in SERVICES if importlib.util.find_spec(name) is not None]


def build_app(service: str) -> FastAPI:
    """`<service>.app.create_app(<its settings type>())`, the `all` role's HTTP app."""
    create_app = importlib.import_module(f"{service}.app").create_app
    settings_type = get_type_hints(create_app)["settings"]
    app: FastAPI = create_app(settings_type())
    return app


def openapi_documents() -> dict[str, dict[str, Any]]:
    return {service: build_app(service).openapi() for service in present_services()}


def rendered_files() -> dict[str, str]:
    """Every committed document, by its file name, as text."""
    return {
        f"{service}{SUFFIX}": json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        for service, document in openapi_documents().items()
    }


def stale_files(directory: Path = DEFAULT_DIR) -> list[str]:
    """File names under `directory` that are missing, differ, or name no service of the code."""
    expected = rendered_files()
    present = {path.name for path in directory.glob(f"*{SUFFIX}")}
    stale = [
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text("utf-8") != text
    ]
    return sorted(stale + sorted(present - expected.keys()))


def write_documents(directory: Path = DEFAULT_DIR) -> list[str]:
    """Write every document under `directory`, and remove those of services that are gone."""
    expected = rendered_files()
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob(f"*{SUFFIX}"):
        if path.name not in expected:
            path.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(expected)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m docsite.openapi",
        description="Write each service's OpenAPI document, generated from its code.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing the files that differ from what the code generates",
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"where (default: {DEFAULT_DIR})"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        stale = stale_files(directory)
        if stale:
            print(f"stale OpenAPI documents in {directory}:", file=sys.stderr)
            for name in stale:
                print(f"  {name}", file=sys.stderr)
            print("regenerate them with: python -m docsite.openapi", file=sys.stderr)
            return 1
        print(f"OpenAPI documents in {directory} are up to date")
        return 0
    written = write_documents(directory)
    print(f"wrote {len(written)} files to {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
