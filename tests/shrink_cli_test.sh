#!/usr/bin/env bash
# `faultline shrink` end to end: a failing selftest/gossip seed (the counter acknowledges before
# its write is durable, so one crash is its minimal failing case) shrinks to at most 3 faults, the
# printed replay command fails with the same violation, and bad input exits 2.
# Usage: shrink_cli_test.sh path/to/faultline
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The first failing gossip seed in 1..60.
seed=
for s in $(seq 1 60); do
  if ! timeout 60 "$bin" replay selftest --variant gossip --seed "$s" >/dev/null 2>&1; then
    seed=$s
    break
  fi
done
[ -n "$seed" ] || { echo "FAIL: no failing selftest/gossip seed in 1..60"; exit 1; }

timeout 120 "$bin" shrink selftest --variant gossip --seed "$seed" >"$tmp/shrink" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "shrink exit $rc"
original=$(sed -n 's/^original: \([0-9]*\) faults$/\1/p' "$tmp/shrink")
reduced=$(sed -n 's/^reduced: \([0-9]*\) faults$/\1/p' "$tmp/shrink")
[ -n "$original" ] && [ -n "$reduced" ] || fail "no fault counts in: $(head -3 "$tmp/shrink")"
[ "${reduced:-99}" -le 3 ] || fail "reduced to $reduced faults (want <= 3)"
[ "${original:-0}" -gt "${reduced:-99}" ] || fail "original $original faults, reduced $reduced"
grep -q 'nemesis crash' <(sed -n '/^reduced:/,/^reduced run/p' "$tmp/shrink") ||
  fail "the reduced faults have no crash"
grep -q '^reduced run: fails with lost-acknowledged-increment' "$tmp/shrink" ||
  fail "reduced run does not report the same violation"

# The printed replay command reproduces the violation (exit 1: the run has violations).
cmd=$(sed -n 's/^replay: faultline //p' "$tmp/shrink")
[ -n "$cmd" ] || fail "no replay command"
# shellcheck disable=SC2086
timeout 60 "$bin" $cmd >"$tmp/replay" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "replay of the reduced run exit $rc (want 1)"
grep -q '^violation lost-acknowledged-increment' "$tmp/replay" || fail "replay lost the violation"
grep -q "^faults kept: $reduced of" "$tmp/replay" || fail "replay does not list the kept faults"

# A run that does not fail has nothing to shrink: exit 1.
timeout 60 "$bin" shrink selftest --variant hardened --seed 1 >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] || fail "shrink of a passing run exit $rc (want 1)"

# Misuse: exit 2 with one line on stderr.
misuse() {
  timeout 60 "$bin" "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q '^faultline: error: ' "$tmp/err"; then
    fail "misuse '$*' exit $rc: $(head -2 "$tmp/err")"
  fi
}
misuse shrink selftest --variant gossip
misuse shrink no-such --variant gossip --seed 1
misuse shrink selftest --variant no-such --seed 1
misuse shrink selftest --variant gossip --seed 1 --runs 0
misuse replay selftest --variant gossip --seed 1 --faults 1,x
misuse replay selftest --variant gossip --seed 1 --faults ""
misuse replay selftest --variant gossip --seed 1 --faults 100000
misuse replay selftest --variant gossip --seed 1 --ops 0
misuse replay selftest --variant gossip --seed 1 --time-ms -5

# The lab prints probe coverage, and --buggify runs.
timeout 120 "$bin" lab selftest --seeds 3 --buggify >"$tmp/lab" 2>&1
grep -q '^probes selftest: [0-9]*/[0-9]* hit' "$tmp/lab" || fail "lab prints no probe coverage"

if [ $fails -gt 0 ]; then
  echo "$fails failures"
  exit 1
fi
echo "shrink cli: all passed (seed $seed: $original -> $reduced faults)"
