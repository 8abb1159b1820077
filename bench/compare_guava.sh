#!/usr/bin/env bash
# GCRA (faultline Gcra::TryAcquire) against Guava's RateLimiter.tryAcquire(), measured in
# alternation in one run: ROUNDS rounds of [resilience_bench GCRA rows, Guava harness], then the
# median of each over the rounds and the ratio Guava / faultline for each clock.
#
#   bench/compare_guava.sh [BUILD_DIR] [ROUNDS]      (defaults: build/release, 5)
#
# Needs resilience_bench built in BUILD_DIR, a JDK (javac, java) and Guava at
# /usr/share/java/guava.jar (Debian: libguava-java; override with GUAVA_JAR). Both sides are
# single-threaded on one shared limiter and report wall-clock ns per call: faultline's
# BM_GcraAcquire / BM_GcraReject rows (real_time, threads:1) for /manual, /steady and /coarse, and
# GuavaRateLimiterBench's admit / reject paths (bench/java/GuavaRateLimiterBench.java). Run it
# under `nice` on a machine as quiet as you can get; both sides see the same load, since they
# alternate.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build/release}"
rounds="${2:-5}"
guava="${GUAVA_JAR:-/usr/share/java/guava.jar}"
bench="$build/bench/resilience_bench"

die() { echo "compare_guava: $*" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$rounds'"
[[ -x "$bench" ]] || die "$bench not found: build the resilience_bench target first"
[[ -r "$guava" ]] || die "$guava not found: install libguava-java or set GUAVA_JAR"
command -v javac >/dev/null || die "javac not found: install a JDK (openjdk-17-jdk-headless)"
command -v python3 >/dev/null || die "python3 not found"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
javac -cp "$guava" -d "$work" "$here/java/GuavaRateLimiterBench.java"

filter='^BM_Gcra(Acquire|Reject)/(manual|steady|coarse)/real_time/threads:1$'
for r in $(seq 1 "$rounds"); do
  "$bench" --benchmark_filter="$filter" --benchmark_min_time=0.5 --benchmark_format=json \
    > "$work/faultline_$r.json" 2>/dev/null
  java -cp "$guava:$work" GuavaRateLimiterBench 10000000 5 > "$work/guava_$r.txt"
  echo "round $r/$rounds done" >&2
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
fl, gv = {}, {}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{work}/faultline_{r}.json"))["benchmarks"]:
        path = "admit" if b["name"].startswith("BM_GcraAcquire/") else "reject"
        clock = b["name"].split("/")[1]
        fl.setdefault((path, clock), []).append(b["real_time"])
    for line in open(f"{work}/guava_{r}.txt"):
        key, _, value = line.partition(" ")
        if key.startswith("guava_"):
            gv.setdefault(key[len("guava_"):-len("_ns_per_op")], []).append(float(value))
print(f"medians of {rounds} alternating rounds, ns per call, one thread")
print(f"{'path':8} {'Guava':>8} {'GCRA manual':>12} {'GCRA steady':>12} {'GCRA coarse':>12}"
      f" {'Guava/steady':>13} {'Guava/coarse':>13}")
for path in ("admit", "reject"):
    g = statistics.median(gv[path])
    m, s, c = (statistics.median(fl[(path, k)]) for k in ("manual", "steady", "coarse"))
    print(f"{path:8} {g:8.2f} {m:12.2f} {s:12.2f} {c:12.2f} {g / s:12.2f}x {g / c:12.2f}x")
PY
