"""Offline checks of the Kubernetes manifests in `deploy/k8s`: render, validate, lint, policies.

Nothing here needs a cluster. Every overlay is rendered with `kubectl kustomize` (`manifests`),
every rendered resource validated against its schema (`schemas`: built-in kinds with
kubernetes-validate in strict mode against one pinned Kubernetes version, custom resources with
the JSON Schemas vendored in `deploy/k8s/schemas`), every YAML file linted (`lint`), and the
rules this system depends on checked (`policies`). Each problem is a `Finding` naming the source
file and the path inside the resource, so a mistake points at the line to fix.

    python -m deploy check   # exit 1 listing every finding; `make test` runs the same checks
"""
