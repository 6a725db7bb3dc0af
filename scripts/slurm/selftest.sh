#!/usr/bin/env bash
# Slurm self-test: a one-node Slurm cluster on this machine from Debian's packages (munged,
# slurmctld and slurmd on loopback, every file in a scratch folder), a 2-task job array of
# scripts/slurm/wattbench-array.sbatch running a tiny suite, `wattbench merge` of the two
# result files (refused without --allow-duplicates, since both tasks ran on this machine;
# accepted with it), and checks of the merged file. Everything started is stopped on exit.
#
#   scripts/slurm/selftest.sh [WATTBENCH_BIN]     (default target/debug/wattbench)
#
# Exit 0 passed, 1 failed, 77 skipped: Slurm is not installed and cannot be (not root, or no
# package source); the reason is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=$(realpath "${1:-target/debug/wattbench}")
say() { echo "slurm selftest: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
[ -x "$bin" ] || fail "no wattbench binary at $bin (build it first)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || { say "SKIPPED: Slurm is not installed and this is not root (apt-get install slurmctld slurmd munge)"; exit 77; }
  say "installing Debian's slurmctld, slurmd and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; } \
    || { say "SKIPPED: the Slurm packages cannot be installed here"; exit 77; }
fi

d=$(mktemp -d /tmp/wattbench-slurm.XXXXXX)
chmod 755 "$d"
pids=()
cleanup() {
  local rc=$?
  for f in "$d"/slurmd.pid "$d"/slurmctld.pid "$d"/munged.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  if [ $rc -ne 0 ]; then
    for log in "$d"/*.log "$d"/*.out; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$d"
  exit $rc
}
trap cleanup EXIT
# A signal is a failure (130, 143), never the status of the command it interrupted.
trap 'exit 130' INT
trap 'exit 143' TERM

# munge: a fresh key, its own socket; root needs --force.
dd if=/dev/urandom of="$d/munge.key" bs=1024 count=1 status=none
chmod 400 "$d/munge.key"
munged --force --key-file="$d/munge.key" --socket="$d/munge.sock" --pid-file="$d/munged.pid" \
  --log-file="$d/munged.log" --seed-file="$d/munge.seed" 2>>"$d/munged.log" \
  || fail "munged did not start"

host=$(hostname -s)
mkdir -p "$d/state" "$d/spool" "$d/out"
cat >"$d/slurm.conf" <<CONF
ClusterName=wattbench-selftest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge.sock
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=selftest Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$d/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 1 60); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "the node did not come up (sinfo: ${state:-nothing})"
say "one-node cluster up ($host, $(nproc) CPUs)"

cat >"$d/tiny.toml" <<'TOML'
name = "slurm-tiny"
dtypes = ["f32"]
gemm = [ { tag = "g", m = 32, n = 16, k = 24 } ]
rnn = [ { cell = "gru", hidden = 6, batch = 2, steps = 3 } ]
TOML
job=$(sbatch --parsable --array=0-1 --cpus-per-task=1 --chdir="$root" \
  --output="$d/task-%a.out" \
  --export=ALL,WATTBENCH_BIN="$bin",WATTBENCH_OUT="$d/out",WATTBENCH_ARGS="--suite $d/tiny.toml --backend reference --min-time 0 --min-samples 3 --warmup 0" \
  scripts/slurm/wattbench-array.sbatch) || fail "sbatch refused the array"
say "submitted array job $job (2 tasks)"
for _ in $(seq 1 180); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "the array did not finish in 3 minutes"
n=$(find "$d/out" -name 'task-*.json' | wc -l)
[ "$n" = 2 ] || fail "expected 2 task result files, found $n"

# Both tasks ran on this machine: merging them is refused unless allowed.
if "$bin" merge "$d/out" -o "$d/merged.json" 2>"$d/merge.err"; then
  fail "merge accepted the same cases twice from one machine"
fi
grep -q -- "--allow-duplicates" "$d/merge.err" || fail "merge's refusal does not say what to do: $(cat "$d/merge.err")"
[ ! -e "$d/merged.json" ] || fail "a refused merge wrote a file"
"$bin" merge "$d/out" --allow-duplicates -o "$d/merged.json" >&2 || fail "merge --allow-duplicates failed"
python3 - "$d/merged.json" <<'PY' || fail "the merged file is not what the tasks wrote"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["schema_version"] == 2, m["schema_version"]
assert len(m["runs"]) == 2 and len(m["merged"]["inputs"]) == 2, m["merged"]
# task-<job>-<index>-<host>.json
tasks = sorted(i.rsplit("/", 1)[-1].split("-")[2] for i in m["merged"]["inputs"])
assert tasks == ["0", "1"], tasks
for run in m["runs"]:
    cases = run["cases"]
    assert len(cases) == 2 and all(c["status"] == "ok" for c in cases), cases
    assert run["environment"]["host"]["hostname"], "no host name"
print(f"merged: {len(m['runs'])} runs, {sum(len(r['cases']) for r in m['runs'])} verified cases")
PY
# The merged file reads back as its runs.
"$bin" report --format html "$d/merged.json" -o "$d/merged.html" >/dev/null \
  || fail "report cannot read the merged file"
say "passed: 2-task array ran, merged, read back"
