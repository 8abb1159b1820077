#!/usr/bin/env bash
# Command-line contract of `faultline`: exit codes (0 ok, 1 verdict failed, 2 misuse) and one-line
# errors for bad input. Usage: cli_test.sh path/to/faultline
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0

# expect CODE DESCRIPTION -- ARGS...: runs faultline ARGS, checks the exit code; for code 2 also
# checks that stderr is exactly one line starting with "faultline: error:".
expect() {
  local want=$1 what=$2; shift 3
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  local ok=1
  [ "$got" -eq "$want" ] || ok=0
  if [ "$want" -eq 2 ]; then
    [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^faultline: error: ' "$tmp/err" || ok=0
  fi
  if [ $ok -eq 1 ]; then
    passes=$((passes + 1))
  else
    fails=$((fails + 1))
    echo "FAIL: $what (exit $got, want $want)"; sed 's/^/  stderr: /' "$tmp/err" | head -5
  fi
}

expect 0 "version" -- version
expect 0 "lab --list" -- lab --list
expect 2 "no subcommand" --
expect 2 "unknown subcommand" -- frobnicate
expect 2 "unknown flag" -- lab --frobnicate
expect 2 "unknown scenario" -- lab no-such-scenario --seeds 1
expect 2 "unknown variant" -- lab selftest --variant no-such --seeds 1
expect 2 "malformed seed" -- lab selftest --seed abc
expect 2 "negative seed count" -- lab selftest --seeds -3
expect 2 "zero seeds" -- lab selftest --seeds 0
expect 2 "seed overflow" -- lab selftest --seed 18446744073709551615 --seeds 2
expect 2 "json into missing directory" -- lab selftest --seeds 1 --json "$tmp/no/such/dir/out.json"
expect 2 "json onto a directory" -- lab selftest --seeds 1 --json "$tmp"
expect 2 "replay unknown scenario" -- replay nope --variant naive --seed 1
expect 2 "replay unknown variant" -- replay selftest --variant nope --seed 1
expect 2 "replay malformed seed" -- replay selftest --variant naive --seed 1x
expect 2 "replay without variant" -- replay selftest --seed 1

# check linearizable: verdicts as exit codes, malformed histories as line-numbered misuse.
printf '%s\n' '{"process":0,"type":"invoke","f":"write","value":1,"time_ns":1}' \
  '{"process":0,"type":"ok","f":"write","value":1,"time_ns":2}' \
  '{"process":1,"type":"invoke","f":"read","value":null,"time_ns":3}' \
  '{"process":1,"type":"ok","f":"read","value":1,"time_ns":4}' >"$tmp/good.jsonl"
sed 's/"f":"read","value":1/"f":"read","value":0/' "$tmp/good.jsonl" >"$tmp/stale.jsonl"
printf '%s\n' '{"process":0,"type":"invoke","f":"write","value":1,"time_ns":1}' '{"process":0,' >"$tmp/torn.jsonl"
expect 0 "linearizable history" -- check linearizable --model register "$tmp/good.jsonl"
expect 1 "non-linearizable history" -- check linearizable --model register "$tmp/stale.jsonl"
expect 2 "malformed history" -- check linearizable --model register "$tmp/torn.jsonl"
grep -q 'line 2' "$tmp/err" || { fails=$((fails + 1)); echo "FAIL: malformed history error names no line"; }
expect 2 "unknown model" -- check linearizable --model queue "$tmp/good.jsonl"
expect 2 "missing history file" -- check linearizable --model register "$tmp/none.jsonl"

# End to end: a split-brain run's client history, checked by the CLI. The naive design's (seed 1)
# has a stale read from a deposed leader; the hardened design's is linearizable.
for variant in naive hardened; do
  "$bin" replay split-brain --variant "$variant" --seed 1 --history "$tmp/sb-$variant.jsonl" >/dev/null
  grep -E '"f":"(read|write)"' "$tmp/sb-$variant.jsonl" >"$tmp/sb-$variant-clients.jsonl"
done
expect 1 "split-brain naive history" -- check linearizable --model kv "$tmp/sb-naive-clients.jsonl"
expect 0 "split-brain hardened history" -- check linearizable --model kv "$tmp/sb-hardened-clients.jsonl"
expect 0 "split-brain lab, hardened" -- lab split-brain --variant hardened --seeds 10

# A real lab run writes valid JSON with the documented fields and passes.
expect 0 "lab selftest json" -- lab selftest --variant naive --variant hardened --seeds 4 --json "$tmp/out.json"
if python3 - "$tmp/out.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["passed"] is True
for r in doc["results"]:
    for k in ("scenario", "variant", "seeds", "violations", "failing_seeds", "metrics"):
        assert k in r, k
    assert r["seeds"] == 4
naive = [r for r in doc["results"] if r["variant"] == "naive"][0]
assert naive["violations"] > 0 and len(naive["failing_seeds"]) > 0
hard = [r for r in doc["results"] if r["variant"] == "hardened"][0]
assert hard["violations"] == 0 and hard["failing_seeds"] == []
PY
then passes=$((passes + 1)); else fails=$((fails + 1)); echo "FAIL: json content"; fi
[ -e "$tmp/out.json.tmp" ] && { fails=$((fails + 1)); echo "FAIL: temporary json left behind"; }

# Replay is deterministic: the same seed prints the same hash twice, and a trace.
"$bin" replay selftest --variant naive --seed 7 --trace >"$tmp/r1" 2>&1
"$bin" replay selftest --variant naive --seed 7 --trace >"$tmp/r2" 2>&1
if cmp -s "$tmp/r1" "$tmp/r2" && grep -q '^hash ' "$tmp/r1" && grep -q 'nemesis' "$tmp/r1"; then
  passes=$((passes + 1))
else
  fails=$((fails + 1)); echo "FAIL: replay not identical or no trace"
fi

# Determinism check over 30 seeds of every variant reports zero divergences.
"$bin" lab selftest --seeds 30 --check-determinism >"$tmp/det" 2>&1
if grep -q ' 0 divergences' "$tmp/det"; then passes=$((passes + 1)); else
  fails=$((fails + 1)); echo "FAIL: determinism"; cat "$tmp/det"; fi

echo "cli: $passes passed, $fails failed"
[ $fails -eq 0 ]
