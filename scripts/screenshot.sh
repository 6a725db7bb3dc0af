#!/usr/bin/env bash
# Screenshot of an HTML report in Debian's headless chromium (`make browser` installs it):
#   scripts/screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT] [SECTION]
# SECTION (an id such as roofline) puts that section at the top of the picture. Chromium is
# started as the tests start it: no sandbox (root), no background networking, a fresh profile.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT] [SECTION]" >&2; exit 2; }
[ -f "$1" ] || { echo "screenshot: no report at $1" >&2; exit 2; }
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
if f'<section id="{sec}"' not in h or "<nav>" not in h:
    sys.exit(f"screenshot: {src} has no section {sec!r} (or is not a wattbench report)")
head_end = h.index("<nav>")
start = h.index(f'<section id="{sec}"')
open(dst, "w", encoding="utf-8").write(h[:head_end] + h[start:])
PY
fi
mkdir -p "$(dirname "$out")"
# Written in the scratch folder, checked, then moved: a failed capture keeps the previous picture.
shot="$profile/shot.png"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$shot" "file://$page" 2>"$profile/chromium.err" || true
if [ ! -s "$shot" ] || [ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
  echo "screenshot: chromium wrote no PNG; its messages:" >&2
  cat "$profile/chromium.err" >&2
  exit 1
fi
mv "$shot" "$out"
echo "$out"
