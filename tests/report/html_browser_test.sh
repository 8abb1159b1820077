#!/usr/bin/env bash
# faultline lab --html in a real browser: headless Chromium (Debian's `chromium`, installed by
# ./run) renders the report of a small lab run to a PNG and dumps its DOM. The PNG must be a real,
# non-blank image, and the DOM must hold the report's titles, a section per scenario and its
# charts. A missing chromium fails the test (the test command installs it): never skipped. Nothing is fetched from the network.
# Usage: html_browser_test.sh path/to/faultline
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
browser=$(command -v chromium || true)
if [ -z "$browser" ]; then echo "html_browser_test: chromium not installed (./run installs it)"; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

timeout 300 "$bin" lab --seeds 2 --jobs 2 --html "$tmp/report.html" >/dev/null 2>&1
[ -s "$tmp/report.html" ] || { echo "FAIL: no report written"; exit 1; }

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$tmp/profile" --window-size=1400,3000)
timeout 120 "$browser" "${flags[@]}" --screenshot="$tmp/report.png" "file://$tmp/report.html" \
  >"$tmp/shot.log" 2>&1
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$tmp/report.html" >"$tmp/dom.html" \
  2>"$tmp/dom.log"

if [ ! -s "$tmp/report.png" ]; then
  echo "FAIL: no screenshot"; tail -5 "$tmp/shot.log"; fails=$((fails + 1))
else
  python3 "$here/check_png.py" "$tmp/report.png" 1400 || fails=$((fails + 1))
fi
want=("<title>faultline lab report</title>" ">faultline lab report</h1>" ">Summary</h2>"
      "<table id=\"summary\">")
for id in $("$bin" lab --list | grep -v '^ '); do
  want+=("<section id=\"$id\"><h2>$id</h2>")
done
for w in "${want[@]}"; do
  grep -qF "$w" "$tmp/dom.html" || { echo "FAIL: not in the rendered DOM: $w"; fails=$((fails + 1)); }
done
svgs=$(grep -o '<svg ' "$tmp/dom.html" | wc -l)
if [ "$svgs" -lt 8 ]; then echo "FAIL: $svgs charts in the rendered DOM"; fails=$((fails + 1)); fi

if [ "$fails" -ne 0 ]; then echo "html_browser_test: $fails failures"; exit 1; fi
echo "html_browser_test: ok ($svgs charts rendered)"
