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
# checks that stderr is exactly one line starting with "faultline: error:". A run that hangs is
# killed after 120 s (exit 124) and fails.
expect() {
  local want=$1 what=$2; shift 3
  timeout 120 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
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
# Probe coverage: each scenario's line counts only the probes its modules can reach.
expect 0 "lab prints probe coverage" -- lab split-brain --seeds 2
if grep -q '^probes split-brain: 1/3 hit: fence.stale_token_rejected x[0-9]*; never hit: lease.lock_delay, lease.renewal_too_late$' "$tmp/out" &&
   grep -q '^probes, scenarios run: 1/3 hit; never hit: lease.lock_delay, lease.renewal_too_late$' "$tmp/out"; then
  passes=$((passes + 1))
else
  fails=$((fails + 1)); echo "FAIL: probe coverage lines"; grep '^probes' "$tmp/out" | sed 's/^/  /'
fi
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

# kv append (strings concatenated, an unset key as ""), --minimize, --initial-value.
printf '%s\n' '{"process":1,"type":"invoke","f":"append","value":{"key":1,"value":"a"}}' \
  '{"process":1,"type":"ok","f":"append","value":{"key":1,"value":"a"}}' \
  '{"process":2,"type":"invoke","f":"append","value":{"key":1,"value":"b"}}' \
  '{"process":2,"type":"ok","f":"append","value":{"key":1,"value":"b"}}' \
  '{"process":3,"type":"invoke","f":"read","value":{"key":1,"value":null}}' \
  '{"process":3,"type":"ok","f":"read","value":{"key":1,"value":"ab"}}' >"$tmp/append.jsonl"
sed 's/"value":"ab"/"value":"ba"/' "$tmp/append.jsonl" >"$tmp/append-bad.jsonl"
sed '3,4s/"value":"b"/"value":7/' "$tmp/append.jsonl" >"$tmp/append-number.jsonl"
sed '3,4s/,"value":"b"//' "$tmp/append.jsonl" >"$tmp/append-novalue.jsonl"
expect 0 "append history" -- check linearizable --model kv "$tmp/append.jsonl"
expect 1 "append history read out of order" -- check linearizable --model kv "$tmp/append-bad.jsonl"
grep -q 'cannot place #4' "$tmp/out" || { fails=$((fails + 1)); echo "FAIL: append verdict names no failing op"; }
grep -q 'minimal' "$tmp/out" && { fails=$((fails + 1)); echo "FAIL: minimised without --minimize"; }
expect 1 "append history, --minimize" -- check linearizable --model kv --minimize "$tmp/append-bad.jsonl"
grep -q 'minimal non-linearizable set' "$tmp/out" || { fails=$((fails + 1)); echo "FAIL: --minimize gave no minimal set"; }
expect 1 "--minimize with an effort" -- check linearizable --model kv --minimize --minimize-effort 2 "$tmp/append-bad.jsonl"
expect 0 "--minimize on a linearizable history" -- check linearizable --model kv --minimize "$tmp/append.jsonl"
expect 2 "append of a number" -- check linearizable --model kv "$tmp/append-number.jsonl"
grep -q 'line 3: .*JSON string' "$tmp/err" || { fails=$((fails + 1)); echo "FAIL: bad append names no line"; }
expect 2 "append without a value" -- check linearizable --model kv "$tmp/append-novalue.jsonl"
expect 2 "--minimize-effort without --minimize" -- check linearizable --model kv --minimize-effort 2 "$tmp/append.jsonl"
expect 2 "--minimize-effort not a number" -- check linearizable --model kv --minimize --minimize-effort x "$tmp/append.jsonl"
expect 2 "--initial-value not JSON" -- check linearizable --model kv --initial-value '{' "$tmp/append.jsonl"
printf '%s\n' '{"process":1,"type":"invoke","f":"read","value":{"key":1,"value":null}}' \
  '{"process":1,"type":"ok","f":"read","value":{"key":1,"value":""}}' >"$tmp/empty-read.jsonl"
expect 1 "read of \"\" from an unset key" -- check linearizable --model kv "$tmp/empty-read.jsonl"
expect 0 "read of \"\" with --initial-value \"\"" -- check linearizable --model kv --initial-value '""' "$tmp/empty-read.jsonl"
# Several histories in one run: the largest exit code; a malformed one stops the run.
expect 0 "two linearizable histories" -- check linearizable --model kv "$tmp/append.jsonl" "$tmp/append.jsonl"
expect 1 "one of two not linearizable" -- check linearizable --model kv "$tmp/append-bad.jsonl" "$tmp/append.jsonl"
[ "$(grep -c ': linearizable\|: not linearizable' "$tmp/out")" -eq 2 ] || { fails=$((fails + 1)); echo "FAIL: batch printed no verdict per file"; }
expect 2 "a malformed history among several" -- check linearizable --model kv "$tmp/append.jsonl" "$tmp/append-number.jsonl"

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
    for k in ("scenario", "variant", "seeds", "violations", "failing_seeds", "metrics",
              "violation_details", "verdict", "reason", "cpu_seconds"):
        assert k in r, k
    assert r["seeds"] == 4
    # One entry per violated check: its first (lowest) seed, and the detail (may be empty).
    assert set(r["violation_details"]) == set(r["violations_by_name"]), r
    for name, first in r["violation_details"].items():
        assert set(first) == {"seed", "detail"}, first
        assert first["seed"] in r["failing_seeds"], first
for k in ("cpu_seconds", "wall_seconds", "runs", "threads", "divergences"):
    assert k in doc, k
assert doc["runs"] == 8 and doc["divergences"] == []
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

# has FILE PATTERN DESCRIPTION: FILE (out or err of the last expect) matches the extended regex.
has() {
  if grep -Eq -- "$2" "$tmp/$1"; then passes=$((passes + 1)); else
    fails=$((fails + 1)); echo "FAIL: $3: $1 lacks /$2/"; sed 's/^/  /' "$tmp/$1" | head -5; fi
}

# Every file argument that cannot be read is a one-line error naming the file and the OS reason.
mkdir -p "$tmp/adir"
expect 2 "history is a directory" -- check linearizable --model register "$tmp/adir"
has err "cannot read '.*adir': Is a directory" "directory error names file and reason"
expect 2 "history does not exist" -- check linearizable --model register "$tmp/none.jsonl"
has err "cannot read '.*none.jsonl': No such file or directory" "missing file error gives the reason"
ln -s "$tmp/vanished.jsonl" "$tmp/dangling.jsonl"
expect 2 "history vanished (dangling link)" -- check linearizable --model register "$tmp/dangling.jsonl"
has err "dangling.jsonl': No such file or directory" "vanished file error gives the reason"
mkfifo "$tmp/fifo"
expect 2 "history is a FIFO with no writer (must not block)" -- check linearizable --model register "$tmp/fifo"
has err "cannot read '.*fifo': .*FIFO" "FIFO error names file and reason"
expect 2 "history on a character device" -- check linearizable --model kv /dev/null
expect 2 "empty history file name" -- check linearizable --model kv ""

# Seeds are parsed exactly: no clamping, no wrapping, the largest seed is valid.
expect 2 "seed 2^64" -- lab selftest --seeds 1 --seed 18446744073709551616
has err "out of range" "seed 2^64 is out of range"
expect 2 "seed -1" -- lab selftest --seeds 1 --seed -1
expect 2 "seed 10^23" -- lab selftest --seeds 1 --seed 99999999999999999999999
expect 2 "lab seed -5 (used to run seed 2^64-5)" -- lab selftest --variant hardened --seeds 1 --seed -5
expect 2 "seed with suffix" -- lab selftest --seeds 1 --seed 12k
expect 2 "seed with plus sign" -- lab selftest --seeds 1 --seed +3
expect 0 "largest seed" -- lab selftest --variant hardened --seed 18446744073709551615 --seeds 1
has out "^selftest +hardened +1 " "largest seed runs one seed"
expect 2 "replay seed 2^64" -- replay selftest --variant naive --seed 18446744073709551616
expect 2 "replay seed -1" -- replay selftest --variant naive --seed -1
expect 2 "seeds abc" -- lab selftest --seeds abc
has err "not a number" "seeds abc says not a number"
expect 2 "jobs too many" -- lab selftest --seeds 1 --jobs 100000
expect 2 "deadline zero" -- check linearizable --model register --deadline 0 "$tmp/good.jsonl"

# Other misuse: named precisely, one line.
expect 2 "unknown top-level option" -- --bogus
has err "unknown option '--bogus'" "unknown top-level option is named"
expect 2 "unknown option after a subcommand" -- check --bogus
has err "unknown option .--bogus." "unknown option after check is named"
expect 2 "empty json file name" -- lab selftest --seeds 1 --json ""
expect 2 "empty history file name for replay" -- replay selftest --variant naive --seed 1 --history ""
expect 0 "repeated scenario id" -- lab selftest selftest --variant hardened --seeds 1
[ "$(grep -c '^selftest ' "$tmp/out")" -eq 1 ] && passes=$((passes + 1)) ||
  { fails=$((fails + 1)); echo "FAIL: repeated scenario id ran twice"; }

# --help shows every default and what 0 jobs means; the banner promises no fixed count.
"$bin" lab --help >"$tmp/out" 2>&1
has out "0 = one per core" "lab --help explains --jobs 0"
has out "default 20" "lab --help shows the --seeds default"
has out "default 1\)" "lab --help shows the --seed default"
has out "inconclusive" "lab --help defines inconclusive"
"$bin" check linearizable --help >"$tmp/out" 2>&1
has out "default 60" "check --help shows the --deadline default"
has out "max-states.*default 4000000" "check --help shows the --max-states default"
"$bin" --help >"$tmp/out" 2>&1
if grep -Eqi 'seven|[0-9]+ (distributed|failures|problems)' "$tmp/out"; then
  fails=$((fails + 1)); echo "FAIL: banner promises a fixed number of problems"; else passes=$((passes + 1)); fi

# replay: exit 1 when the run has violations (like lab), 0 when it has none; details printed.
expect 1 "replay with violations" -- replay selftest --variant naive --seed 1
has out "^violation " "replay lists its violations"
expect 0 "replay without violations" -- replay selftest --variant hardened --seed 1

# The register model cannot express a kv read ({"key":k}): misuse with the line number, not a
# "not linearizable" verdict.
{ echo; printf '%s\n' '{"process":0,"type":"invoke","f":"write","value":{"key":1,"value":5},"time_ns":1}' \
  '{"process":0,"type":"ok","f":"write","value":{"key":1,"value":5},"time_ns":2}' \
  '{"process":1,"type":"invoke","f":"read","value":{"key":1},"time_ns":3}' \
  '{"process":1,"type":"ok","f":"read","value":{"key":1,"value":5},"time_ns":4}'; } >"$tmp/kv.jsonl"
expect 0 "kv history, kv model" -- check linearizable --model kv "$tmp/kv.jsonl"
expect 2 "kv history, register model" -- check linearizable --model register "$tmp/kv.jsonl"
has err "line 4: .*register model" "kv history under the register model names the line"

# The memo limit is an option, and an "unknown" names the limit that produced it.
expect 1 "max-states reached" -- check linearizable --model register --max-states 1 "$tmp/good.jsonl"
has out "^.*: unknown " "max-states 1 gives unknown"
has out "reached --max-states 1 " "unknown names the --max-states limit"
expect 0 "max-states large enough" -- check linearizable --model register --max-states 100 "$tmp/good.jsonl"
expect 2 "max-states zero" -- check linearizable --model register --max-states 0 "$tmp/good.jsonl"

# A baseline on too few seeds to judge its minimum failure rate is inconclusive, says why, and
# does not fail the lab (gossip fails on about 10% of seeds; 3 seeds cannot show that).
expect 0 "small sample is inconclusive" -- lab selftest --variant gossip --variant hardened --seeds 3 --seed 2
has out "^selftest +gossip .*inconclusive" "table shows inconclusive"
has out "^selftest/gossip inconclusive: .*needs [0-9]+ seeds" "inconclusive says why in one line"
# The closing line reports measured CPU time (runs and reruns) and the lab's wall time apart.
expect 0 "timing line" -- lab selftest --variant hardened --seeds 2
has out "CPU time, [0-9.]+s wall time on [0-9]+ threads" "closing line separates CPU and wall time"

# Soak: fresh seeds from the OS until the time is up, the start seed printed first.
expect 0 "soak 2 s" -- soak 2 selftest
head -1 "$tmp/out" | grep -Eq '^soak: 2 s from seed ([0-9]+) \(rerun: faultline soak 2 selftest --seed \1\)$' &&
  passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL: soak does not print its seed first"; head -3 "$tmp/out"; }
has out "^selftest +hardened " "soak table has the hardened variant"
has out "^seeds covered: [0-9]+ \.\. [0-9]+ \([0-9]+ per variant" "soak prints the seed range"
has out "^soak: PASS" "soak passes"
expect 0 "soak reproducible start" -- soak 1 selftest --seed 40 --batch 3 --baselines
has out "^seeds covered: 40 \.\. " "soak --seed starts there"
has out "^selftest +naive " "soak --baselines runs baselines"
# The soak's "these runs again" command reruns exactly its seeds: the same table rows.
grep '^selftest ' "$tmp/out" >"$tmp/soak-rows"
again=$(sed -n 's/^these runs again: faultline //p' "$tmp/out")
# shellcheck disable=SC2086
"$bin" $again 2>/dev/null | grep '^selftest ' >"$tmp/lab-rows"
if [ -s "$tmp/soak-rows" ] && cmp -s "$tmp/soak-rows" "$tmp/lab-rows"; then passes=$((passes + 1)); else
  fails=$((fails + 1)); echo "FAIL: soak's rerun command does not reproduce its table"; fi
expect 2 "soak zero seconds" -- soak 0
expect 2 "soak not a number" -- soak soon
expect 2 "soak unknown scenario" -- soak 1 nope

echo "cli: $passes passed, $fails failed"
[ $fails -eq 0 ]
