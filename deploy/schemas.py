"""Schema validation of every rendered resource: built-in kinds and custom resources alike.

Built-in kinds are checked by kubernetes-validate in strict mode (an unknown field is an error,
as a misspelt field would otherwise be dropped silently by the API server) against one pinned
Kubernetes version. Custom resources are checked against the JSON Schemas of their CRDs vendored
in `deploy/k8s/schemas/<group>/<kind>_<version>.json` (unknown fields are errors there too).
A kind with neither is an error itself: nothing reaches a cluster unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
from jsonschema import Draft7Validator, ValidationError
from jsonschema.validators import validator_for

from deploy.manifests import DEFAULT_ROOT, Finding, Manifest

# The Kubernetes version the built-in kinds are validated against (kubernetes-validate ships
# the schemas of each minor version); raise it with the oldest version the system supports.
KUBERNETES_VERSION = "1.34.0"
SCHEMA_DIR = DEFAULT_ROOT / "schemas"


def validate(manifests: Iterable[Manifest], schema_dir: Path = SCHEMA_DIR) -> list[Finding]:
    findings: list[Finding] = []
    for manifest in manifests:
        schema_file = custom_resource_schema(manifest.document, schema_dir)
        if schema_file is not None:
            findings += _validate_custom(manifest, schema_file)
        else:
            findings += _validate_builtin(manifest)
    return findings


def custom_resource_schema(document: dict[str, Any], schema_dir: Path) -> Path | None:
    """The vendored schema of a custom resource, or None for a kind without one."""
    group, _, version = str(document.get("apiVersion", "")).rpartition("/")
    if not group:
        return None
    path = schema_dir / group / f"{str(document.get('kind', '')).lower()}_{version}.json"
    return path if path.is_file() else None


@cache
def _validator(schema_file: Path) -> Any:
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    return validator_for(schema, default=Draft7Validator)(schema)


def _validate_custom(manifest: Manifest, schema_file: Path) -> list[Finding]:
    errors = sorted(
        _validator(schema_file).iter_errors(manifest.document),
        key=lambda error: [str(segment) for segment in error.path],
    )
    return [manifest.finding(error_path(error), error.message) for error in errors]


def _validate_builtin(manifest: Manifest) -> list[Finding]:
    try:
        kubernetes_validate.validate(manifest.document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [manifest.finding(error_path(error), error.message)]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            manifest.finding(
                "",
                f"no schema for {manifest.document.get('apiVersion')} {manifest.kind}: "
                "not a Kubernetes "
                f"{KUBERNETES_VERSION} kind, and no CRD schema vendored in deploy/k8s/schemas",
            )
        ]
    return []


def error_path(error: ValidationError) -> str:
    """Where the error is, as `spec.containers[0].name`; for an unknown field, that field."""
    segments: list[Any] = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        unknown = sorted(key for key in error.instance if key not in known)
        if len(unknown) == 1:
            segments.append(unknown[0])
    return format_path(segments)


def format_path(segments: Sequence[Any]) -> str:
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else str(segment)
    return text
