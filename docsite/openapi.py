"""Each service's OpenAPI document, taken from its HTTP app built but never started.

Building an app opens no connection (engines and broker connections are created lazily, by the
app's lifespan), so the documents come from the code at build time, offline, with the default
settings. A service of the contract whose package is not in this checkout yet is left out.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, get_type_hints

from fastapi import FastAPI

# The contract's services (v1.1): inventory_svc is listed before it is built, so its document
# appears in the site the day its package does.
SERVICES = ("user_svc", "order_svc", "inventory_svc")


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
