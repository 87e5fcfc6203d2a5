"""MkDocs hooks (`hooks:` in `mkdocs.yml`): the reference pages, generated at build time.

`reference/openapi.md` shows each service's OpenAPI document in Swagger UI (the
`mkdocs-swagger-ui-tag` plugin, which bundles it: nothing is fetched from the network), and
`reference/asyncapi.md` is the AsyncAPI document rendered as Markdown. The documents themselves
are published beside them for download.
"""

from __future__ import annotations

import json
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from docsite import asyncapi
from docsite.openapi import openapi_documents

ASYNCAPI_DOCUMENT = Path("catalogue") / "asyncapi.json"


def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent
    documents = openapi_documents()
    for service, document in documents.items():
        files.append(
            File.generated(
                config, f"reference/openapi/{service}.json", content=json.dumps(document, indent=2)
            )
        )
    files.append(File.generated(config, "reference/openapi.md", content=_openapi_page(documents)))
    raw = (root / ASYNCAPI_DOCUMENT).read_text(encoding="utf-8")
    files.append(File.generated(config, "reference/asyncapi.json", content=raw))
    page = asyncapi.render(json.loads(raw), download="asyncapi.json")
    files.append(File.generated(config, "reference/asyncapi.md", content=page))
    return files


def _openapi_page(documents: dict[str, dict[str, object]]) -> str:
    lines = [
        "# HTTP APIs (OpenAPI)",
        "",
        "Each service's OpenAPI document, taken from its code when this site was built. "
        "Every running service also serves its own at `GET /openapi.json`. "
        "The rules they share are in [the HTTP API](../contract/http-api.md).",
        "",
    ]
    for service in documents:
        lines += [
            f"## {service}",
            "",
            f"The document: [{service}.json](openapi/{service}.json).",
            "",
            f'<swagger-ui src="openapi/{service}.json"/>',
            "",
        ]
    return "\n".join(lines)
