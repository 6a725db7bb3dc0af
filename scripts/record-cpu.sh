#!/usr/bin/env bash
# Record a reference set of CPU results under results/cpu/<UTC date>-<hardware slug>/: the machine's
# ceilings, the quick suite in inference and training modes, and the three end-to-end training
# runs on candle and tch. Each result file has its Markdown report beside it; one HTML report
# covers them all, and its screenshot (headless chromium) becomes docs/report-screenshot.png.
# Run on a quiet machine. The folder is named by the date and the hardware fingerprint (two
# VMs of one hostname are often different CPUs); an existing folder is never written into
# (exit 2): remove it, or name another with RECORD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
make build
bin=./target/release/wattbench
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
dir=${RECORD_DIR:-"results/cpu/$(date -u +%Y%m%d)-$(wb_hardware_slug "$bin")"}
if [ -e "$dir" ]; then
  echo "record-cpu: $dir exists; remove it or set RECORD_DIR to another folder" >&2
  exit 2
fi
mkdir -p "$dir"
# The machine's ceilings, to results/ceilings/ (where reports look for them) and beside the runs.
# Its stderr (warnings, and the path of the file it wrote, last) is shown and kept; a failure
# stops the script with its message.
if ! "$bin" ceilings >"$dir/ceilings.txt" 2>"$dir/ceilings.err"; then
  cat "$dir/ceilings.err" >&2
  echo "record-cpu: wattbench ceilings failed (above); nothing more recorded in $dir" >&2
  exit 1
fi
cat "$dir/ceilings.err" >&2
ceilings=$(tail -n 1 "$dir/ceilings.err")
rm "$dir/ceilings.err"
cp "$ceilings" "$dir/ceilings.json"
for mode in infer train; do
  "$bin" run --suite quick --mode "$mode" --output "$dir/quick-$mode.json" >/dev/null
  "$bin" report "$dir/quick-$mode.json" --output "$dir/quick-$mode.md"
done
for model in mlp cnn lstm; do
  for backend in candle tch; do
    "$bin" train --model "$model" --backend "$backend" --steps 200 --project-steps 100000 \
      --output "$dir/train-$model-$backend.json" >"$dir/train-$model-$backend.txt"
  done
done
"$bin" report --format html "$dir" --ceilings "$dir/ceilings.json" --output "$dir/report.html"
bash scripts/screenshot.sh "$dir/report.html" docs/report-screenshot.png 1280x2000 roofline
echo "$dir"
