#!/usr/bin/env bash
# Validates the Kubernetes manifests under scripts/k8s/ against the Kubernetes API schema with
# kubernetes-validate (PyPI; installed into ~/.cache/wattbench/k8s-venv once), strictly:
# unknown fields are errors. Also checks that a broken copy is refused, so the check can fail,
# and that the Indexed Job's failures are per index (one failed index does not stop the rest).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${K8S_VERSION:-1.31.0}
venv=${WATTBENCH_CACHE:-$HOME/.cache/wattbench}/k8s-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  # Debian's python3 makes virtual environments only with python3-venv: installed as root,
  # else asked for. A half-made environment is cleared, never reused.
  if ! python3 -m venv --clear "$venv" >&2; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      { apt-get update -q && apt-get install -y -q python3-venv; } >&2
      python3 -m venv --clear "$venv" >&2
    else
      echo "k8s validate: python3 -m venv failed (above): install Debian's python3-venv" >&2
      exit 1
    fi
  fi
  "$venv/bin/pip" install --quiet "kubernetes-validate==1.37.0" >&2 || {
    rm -rf "$venv"
    echo "k8s validate: kubernetes-validate could not be installed (above)" >&2
    exit 1
  }
fi
kv=$venv/bin/kubernetes-validate
for f in scripts/k8s/*.yaml; do
  "$kv" --strict --kubernetes-version "$version" "$f"
done
# A typo in a field name must be caught.
bad=$(mktemp --suffix=.yaml); trap 'rm -f "$bad"' EXIT
sed 's/completionMode: Indexed/completionMod: Indexed/' scripts/k8s/wattbench-indexed-job.yaml >"$bad"
refusal=$("$kv" --strict --kubernetes-version "$version" "$bad" 2>&1) && {
  echo "k8s validate: a manifest with an unknown field passed: the check cannot fail" >&2
  exit 1
}
# Refused for the typo, not for a crash of the validator.
grep -q completionMod <<<"$refusal" || {
  echo "k8s validate: the broken manifest was refused, but not for its unknown field:" >&2
  echo "$refusal" >&2
  exit 1
}
# One index that fails (a failed verification exits 1) must not fail the Job, whose
# controller would then stop the pods of the other indexes: failures are per index, and
# wattbench's own verdicts are not retried; an evicted or preempted pod is not a failure.
"$venv/bin/python" - scripts/k8s/wattbench-indexed-job.yaml <<'EOF'
import sys
import yaml
spec = yaml.safe_load(open(sys.argv[1]))["spec"]
where = sys.argv[1] + ": "
assert spec.get("backoffLimitPerIndex") is not None, where + "no backoffLimitPerIndex"
assert "backoffLimit" not in spec, where + "backoffLimit counts failures across indexes"
assert spec.get("maxFailedIndexes", spec["completions"]) == spec["completions"], (
    where + "maxFailedIndexes below completions stops the other indexes"
)
rules = spec.get("podFailurePolicy", {}).get("rules", [])
fail_index = set()
for r in rules:
    if r["action"] == "FailIndex":
        fail_index |= set(r["onExitCodes"]["values"])
assert {1, 2, 3} <= fail_index, where + "exit codes 1, 2 and 3 must fail their index at once"
assert any(
    r["action"] == "Ignore"
    and any(c["type"] == "DisruptionTarget" for c in r.get("onPodConditions", []))
    for r in rules
), where + "a disrupted pod (DisruptionTarget) must not count as a failure"
env = {e["name"]: e for e in spec["template"]["spec"]["containers"][0].get("env", [])}
node = env.get("WATTBENCH_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {})
assert node.get("fieldPath") == "spec.nodeName", (
    where + "WATTBENCH_NODE_NAME must come from spec.nodeName, or a pod records its own name "
    "as the machine's"
)
EOF
echo "k8s manifests valid against Kubernetes $version"
