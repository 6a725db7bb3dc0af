#!/usr/bin/env bash
# Validates the Kubernetes manifests under scripts/k8s/ against the Kubernetes API schema with
# kubernetes-validate (PyPI; installed into ~/.cache/wattbench/k8s-venv once), strictly:
# unknown fields are errors. Also checks that a broken copy is refused, so the check can fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${K8S_VERSION:-1.31.0}
venv=${WATTBENCH_CACHE:-$HOME/.cache/wattbench}/k8s-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "kubernetes-validate==1.37.0" >&2
fi
kv=$venv/bin/kubernetes-validate
for f in scripts/k8s/*.yaml; do
  "$kv" --strict --kubernetes-version "$version" "$f"
done
# A typo in a field name must be caught.
bad=$(mktemp --suffix=.yaml); trap 'rm -f "$bad"' EXIT
sed 's/completionMode: Indexed/completionMod: Indexed/' scripts/k8s/wattbench-indexed-job.yaml >"$bad"
if "$kv" --strict --kubernetes-version "$version" "$bad" >/dev/null 2>&1; then
  echo "k8s validate: a manifest with an unknown field passed: the check cannot fail" >&2
  exit 1
fi
echo "k8s manifests valid against Kubernetes $version"
