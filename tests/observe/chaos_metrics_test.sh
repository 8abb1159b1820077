#!/usr/bin/env bash
# `faultline chaos` nodes serve /metrics on loopback: the harness prints one address per node; each
# answers with the text exposition format, and the cluster's electors report the lease they won.
#   chaos_metrics_test.sh FAULTLINE
# The harness is a direct child (it kills and reaps its node processes); it is killed on exit.
set -u
FL="$1"
WORK="$(mktemp -d /tmp/faultline-chaos-metrics-XXXXXX)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$WORK/err" 2>/dev/null | tail -n 20; exit 1; }

"$FL" chaos split-brain --variant hardened --time 12s --seed 3 > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 1 100); do
  [ "$(grep -c ' metrics: http://127.0.0.1:' "$WORK/err")" = 6 ] && break
  kill -0 "$PID" 2>/dev/null || fail "chaos exited before printing the metrics addresses"
  sleep 0.1
done
[ "$(grep -c ' metrics: http://127.0.0.1:' "$WORK/err")" = 6 ] || fail "expected 6 metrics addresses"
grep -o 'node [0-9]* metrics: http://127.0.0.1:[0-9]*/metrics' "$WORK/err" > "$WORK/urls"

# Scrape every node once a second while the run lasts (a paused node answers later, or never:
# each must answer at least once).
declare -A answered
while kill -0 "$PID" 2>/dev/null; do
  while read -r _ node _ url; do
    if curl -s --max-time 1 -o "$WORK/m$node" -w '%{http_code}' "$url" 2>/dev/null | grep -q 200; then
      grep -q '^# TYPE ' "$WORK/m$node" && answered[$node]=1
      cat "$WORK/m$node" >> "$WORK/all"
    fi
  done < "$WORK/urls"
  sleep 1
done
wait "$PID"
rc=$?
PID=""
[ "$rc" = 0 ] || fail "chaos exited $rc"
for n in 0 1 2 3 4 5; do
  [ "${answered[$n]:-0}" = 1 ] || fail "node $n never served /metrics"
done
grep -Eq '^faultline_lease_acquired_total\{instance_name="elector"\} [1-9]' "$WORK/all" ||
  fail "no elector reported an acquired lease"
echo "every node served /metrics; electors reported:"
grep -E '^faultline_(lease|self_fenced|phi)' "$WORK/all" | sort | uniq -c | sort -rn | head -n 8
echo PASS
