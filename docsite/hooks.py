"""MkDocs hooks (`hooks:` in `mkdocs.yml`): the reference pages, generated at build time.

`reference/openapi.md` shows each service's committed OpenAPI document (`catalogue/openapi/`,
kept current by `python -m docsite.openapi`) in Swagger UI (the `mkdocs-swagger-ui-tag`
plugin, which bundles it: nothing is fetched from the network), and
`reference/asyncapi.md` is the AsyncAPI document rendered as Markdown. The documents themselves
are published beside them for download.
"""

from __future__ import annotations

import json
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from docsite import asyncapi, openapi

ASYNCAPI_DOCUMENT = Path("catalogue") / "asyncapi.json"
OPENAPI_DIRECTORY = Path("catalogue") / openapi.FOLDER


def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent
    documents = sorted((root / OPENAPI_DIRECTORY).glob(f"*{openapi.SUFFIX}"))
    for document in documents:
        content = document.read_text(encoding="utf-8")
        files.append(File.generated(config, f"reference/openapi/{document.name}", content=content))
    services = [document.name.removesuffix(openapi.SUFFIX) for document in documents]
    files.append(File.generated(config, "reference/openapi.md", content=_openapi_page(services)))
    raw = (root / ASYNCAPI_DOCUMENT).read_text(encoding="utf-8")
    files.append(File.generated(config, "reference/asyncapi.json", content=raw))
    page = asyncapi.render(json.loads(raw), download="asyncapi.json")
    files.append(File.generated(config, "reference/asyncapi.md", content=page))
    return files


def _openapi_page(services: list[str]) -> str:
    lines = [
        "# HTTP APIs (OpenAPI)",
        "",
        "Each service's OpenAPI document, as committed in `catalogue/openapi/` (generated from "
        "its code by `python -m docsite.openapi`). Every running service also serves its own "
        "at `GET /openapi.json`. Generate a client from it, e.g. with `openapi-python-client "
        "generate --path catalogue/openapi/order_svc.json`. "
        "The rules they share are in [the HTTP API](../contract/http-api.md).",
        "",
    ]
    for service in services:
        lines += [
            f"## {service}",
            "",
            f"The document: [{service}.json](openapi/{service}.json).",
            "",
            f'<swagger-ui src="openapi/{service}.json"/>',
            "",
        ]
    return "\n".join(lines)
