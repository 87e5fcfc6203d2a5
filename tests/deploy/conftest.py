"""The overlays of deploy/k8s, each rendered once per session with `kubectl kustomize`.

Rendering needs kubectl: where it is missing these tests fail (never skip) with what to install.
"""

from __future__ import annotations

import pytest

from deploy.manifests import Manifest, overlays, render

OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    return {overlay: render(overlay) for overlay in overlays()}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    manifests: list[Manifest] = rendered[request.param]
    return manifests


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.kind == kind]
