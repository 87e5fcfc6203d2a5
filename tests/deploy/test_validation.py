"""deploy/k8s renders, every resource is valid against its schema, and every file is lint-clean.

The same checks `python -m deploy check` runs, here so that `make test` runs them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from deploy import lint, manifests, schemas
from deploy.manifests import Manifest, ToolMissing
from tests.deploy.conftest import OVERLAYS


def test_there_are_exactly_the_dev_and_prod_overlays() -> None:
    assert manifests.overlays() == sorted(OVERLAYS)


def test_every_overlay_renders_resources(rendered: dict[str, list[Manifest]]) -> None:
    assert all(rendered[overlay] for overlay in OVERLAYS)


def test_every_rendered_resource_names_an_existing_source_file(
    overlay: list[Manifest],
) -> None:
    assert [str(m.source) for m in overlay if not m.source.is_file()] == []


def test_every_resource_is_valid_against_its_schema(overlay: list[Manifest]) -> None:
    assert [str(finding) for finding in schemas.validate(overlay)] == []


def test_every_yaml_file_passes_yamllint() -> None:
    assert [str(finding) for finding in lint.lint()] == []


def test_vendored_schemas_name_their_source() -> None:
    readme = (schemas.SCHEMA_DIR / "README.md").read_text(encoding="utf-8")

    assert "datreeio/CRDs-catalog" in readme
    assert "7b1e26ef9deea49293714d204c1a2270aab1178f" in readme


def test_a_kind_without_any_schema_is_an_error() -> None:
    unknown = Manifest(
        "prod",
        Path("deploy/k8s/overlays/prod/example.yaml"),
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    )

    [finding] = schemas.validate([unknown])

    assert "no schema for example.com/v1 Widget" in finding.message


def test_missing_kubectl_fails_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))

    with pytest.raises(ToolMissing, match="make k8s-tools"):
        manifests.render("dev")


def test_an_overlay_kustomize_refuses_fails_naming_the_overlay(tmp_path: Path) -> None:
    root = tmp_path / "k8s"
    shutil.copytree(manifests.DEFAULT_ROOT, root)
    kustomization = root / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - broker\n", "  - brokr\n"))

    with pytest.raises(manifests.RenderFailed, match="brokr") as failed:
        manifests.render("dev", root)

    assert str(root / "overlays" / "dev") in str(failed.value)
