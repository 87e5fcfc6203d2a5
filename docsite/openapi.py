"""Each service's OpenAPI document, taken from its HTTP app built but never started, and the
committed copies in `catalogue/openapi/<service>.json` that clients are generated from.

Building an app opens no connection (engines and broker connections are created lazily, by the
app's lifespan), so the documents come from the code, offline, with the default settings; a
service serves the same document at `GET /openapi.json`. The committed copies are what a client
generator, the docs site and a reviewer read; `python -m docsite.openapi --check` (run by the
unit tests) fails when they differ from what the code generates, so a route cannot change
without its published description changing with it.

    python -m docsite.openapi          # (re)write catalogue/openapi/
    python -m docsite.openapi --check  # exit 1, listing stale files, if they are out of date

A service of the contract whose package is not in this checkout yet is left out.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any, get_type_hints

from fastapi import FastAPI

from broker.generated import GeneratedFiles

# The contract's services (v1.1): inventory_svc is listed before it is built, so its document
# appears the day its package does.
SERVICES = ("user_svc", "order_svc", "inventory_svc")

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "catalogue"
FOLDER = "openapi"
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
    """Every committed document, by its path relative to the catalogue directory, as text."""
    return {
        f"{FOLDER}/{service}{SUFFIX}": json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        for service, document in openapi_documents().items()
    }


DOCUMENTS = GeneratedFiles(
    name="OpenAPI documents",
    command="python -m docsite.openapi",
    render=rendered_files,
    description="Write each service's OpenAPI document, generated from its code.",
    directory=DEFAULT_DIR,
    owned=((FOLDER, f"*{SUFFIX}"),),
)


main = DOCUMENTS.main

if __name__ == "__main__":
    raise SystemExit(main())
