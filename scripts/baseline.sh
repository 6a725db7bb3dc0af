#!/usr/bin/env bash
# The CI comparison's baseline and check (see .ci/run):
#   scripts/baseline.sh record   run the CI suite RUNS times (default 3, at least 2: compare
#                                needs 2 runs a side for peak memory) on this machine and
#                                store them under results/baselines/<hardware>/ (commit them);
#                                the stored baseline is replaced only once all RUNS result
#                                files are written
#   scripts/baseline.sh check    run it once and compare with the stored baseline of the same
#                                hardware; prints the comparison (Markdown) and never fails on
#                                it: one run against a baseline from another day is a report,
#                                not a gate (gate changes with `wattbench ab`) for the numbers.
#                                Exit 0 unless the run itself could not be made (its own exit
#                                status, 2 or 4, or 128+N when a signal ended it), or a case
#                                failed verification or errored (1, after the report: a wrong
#                                result is a bug, never noise). A run where every case was
#                                skipped (3) is said and compared as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
runs=${RUNS:-3}
if [ "$mode" = record ]; then
  # Checked before anything is built or run: RUNS=0 or a word once recorded no run at all
  # and still replaced the committed baseline with the empty folder.
  case $runs in
    '' | *[!0-9]*) runs_ok=0 ;;
    *) runs_ok=$(( 10#$runs >= 2 )) ;;
  esac
  if [ "$runs_ok" -ne 1 ]; then
    echo "RUNS=$runs: give a whole number of runs, at least 2 (default 3; compare needs 2" \
      "runs a side for peak memory); nothing recorded, the baseline is as it was" >&2
    exit 2
  fi
  runs=$(( 10#$runs ))
fi
make build >&2
bin=./target/release/wattbench
suite_args=(--suite quick --mode infer --backend reference,candle,tch --min-time 0.3)
# One folder per hardware fingerprint.
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
slug=$(wb_hardware_slug "$bin")
dir=results/baselines/$slug
case $mode in
  record)
    # Recorded beside it, then swapped in whole: a failed run, or fewer runs than before,
    # never leaves a baseline of mixed or failed runs.
    mkdir -p "$(dirname "$dir")"
    tmp=$(mktemp -d "$dir.new.XXXXXX")
    chmod 755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    for i in $(seq 1 "$runs"); do
      rc=0
      "$bin" run "${suite_args[@]}" --output "$tmp/run-$i.json" >/dev/null || rc=$?
      if [ "$rc" -ne 0 ]; then
        echo "run $i exited $rc (message above): no baseline recorded; $dir is as it was" >&2
        exit 1
      fi
    done
    # Every run must have left its file: a run that exits 0 without one leaves no baseline.
    written=0
    for i in $(seq 1 "$runs"); do
      if [ -s "$tmp/run-$i.json" ]; then
        written=$((written + 1))
      fi
    done
    if [ "$written" -ne "$runs" ]; then
      echo "only $written of $runs result files were written: no baseline recorded; $dir is" \
        "as it was" >&2
      exit 1
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir"
    trap - EXIT
    echo "$dir"
    ;;
  check)
    if [ ! -d "$dir" ]; then
      echo "no committed baseline for this hardware ($slug): nothing to compare with;" \
        "record one with scripts/baseline.sh record" >&2
      exit 0
    fi
    new=$(mktemp -d)
    trap 'rm -rf "$new"' EXIT
    status=0
    "$bin" run "${suite_args[@]}" --output "$new/run.json" >/dev/null || status=$?
    case $status in
      0) ;;
      1) echo "the run had a case that failed verification or errored: the comparison below" \
           "lists it (FAILED on new); this check exits 1 after it" >&2 ;;
      3) echo "the run skipped every case (reasons above): the comparison below lists them" >&2 ;;
      *) echo "the run could not be made (exit $status, message above): no comparison" >&2
         exit "$status" ;;
    esac
    if [ ! -f "$new/run.json" ]; then
      echo "the run wrote no result file (exit $status): no comparison" >&2
      exit 1
    fi
    echo "## This commit against the baseline in $dir (report only, not a gate)"
    "$bin" compare "$dir" "$new/run.json" --format markdown --no-fail || {
      echo "the comparison could not be made (message above)" >&2
    }
    exit $(( status == 1 ))
    ;;
  *) echo "usage: scripts/baseline.sh record|check" >&2; exit 2 ;;
esac
