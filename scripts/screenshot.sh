#!/usr/bin/env bash
# Screenshot of an HTML report in Debian's headless chromium (`make browser` installs it):
#   scripts/screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT] [SECTION]
# SECTION (an id such as roofline) puts that section at the top of the picture. Chromium is
# started as the tests start it: no sandbox (root), no background networking, a fresh profile.
set -euo pipefail
html=$(realpath "$1"); out=$2; size=${3:-1280x1800}; section=${4:-}
command -v chromium >/dev/null || { echo "screenshot: chromium not found; run make browser" >&2; exit 2; }
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
page=$html
if [ -n "$section" ]; then
  # A copy of the page without what comes before the section (the page's head kept).
  page="$profile/page.html"
  python3 - "$html" "$section" "$page" <<'PY'
import sys
src, sec, dst = sys.argv[1:]
h = open(src, encoding="utf-8").read()
head_end = h.index("<nav>")
start = h.index(f'<section id="{sec}"')
open(dst, "w", encoding="utf-8").write(h[:head_end] + h[start:])
PY
fi
mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
echo "$out"
