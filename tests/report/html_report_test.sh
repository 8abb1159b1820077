#!/usr/bin/env bash
# faultline lab --html: the page of a small lab run (every scenario, 2 seeds) is valid HTML with
# well-formed SVG, agrees row by row with the --json of the same run, and draws charts with fault
# bands for every scenario; bad --html arguments are command-line misuse (exit 2).
# Usage: html_report_test.sh path/to/faultline
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

timeout 300 "$bin" lab --seeds 2 --jobs 2 --html "$tmp/report.html" --json "$tmp/result.json" \
  >"$tmp/out" 2>"$tmp/err"
code=$?
if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
  echo "FAIL: lab --html exited $code"; cat "$tmp/err"; fails=$((fails + 1))
fi
if [ ! -s "$tmp/report.html" ]; then
  echo "FAIL: no report written"; exit 1
fi
python3 "$here/check_report.py" "$tmp/report.html" "$tmp/result.json" || fails=$((fails + 1))

# The same seeds give the same page, byte for byte but for the file name in its header: the page
# holds no wall-clock figures, and the thread count does not change a run.
"$bin" lab --seeds 2 --jobs 1 --html "$tmp/again.html" >/dev/null 2>&1
if ! cmp -s "$tmp/report.html" <(sed 's/again\.html/report.html/' "$tmp/again.html"); then
  echo "FAIL: a second run of the same seeds wrote a different page"; fails=$((fails + 1))
fi

for args in "--html=" "--html $tmp/no/such/dir/r.html" "--html $tmp"; do
  # shellcheck disable=SC2086
  "$bin" lab selftest --seeds 1 $args >/dev/null 2>"$tmp/err"
  got=$?
  if [ "$got" -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    echo "FAIL: lab $args exited $got (want 2, one line)"; cat "$tmp/err"; fails=$((fails + 1))
  fi
done

if [ "$fails" -ne 0 ]; then echo "html_report_test: $fails failures"; exit 1; fi
echo "html_report_test: ok"
