#!/usr/bin/env bash
# A real Prometheus scrapes faultline's /metrics (tests/observe/scrape_target.cc) on loopback and
# answers queries with the process's own tally:
#   prometheus_scrape_test.sh SCRAPE_TARGET
# Both servers are direct children on free loopback ports, killed and reaped on exit. A missing
# `prometheus` binary fails the test (it is in ./run's Debian packages).
set -u
TARGET="$1"
WORK="$(mktemp -d /tmp/faultline-prom-test-XXXXXX)"
TARGET_PID=""
PROM_PID=""
cleanup() {
  for pid in $PROM_PID $TARGET_PID; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  [ -f "$WORK/prometheus.log" ] && tail -n 20 "$WORK/prometheus.log"
  exit 1
}
command -v prometheus >/dev/null || fail "no prometheus binary (Debian package prometheus)"

"$TARGET" "$WORK" 200 > "$WORK/target.log" 2>&1 &
TARGET_PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/port" ] && break; sleep 0.05; done
[ -f "$WORK/port" ] || fail "scrape_target did not start: $(cat "$WORK/target.log")"
TARGET_PORT="$(cat "$WORK/port")"
echo "scrape_target on 127.0.0.1:$TARGET_PORT; tally:"; cat "$WORK/tally"
tally() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/tally"; }

# A free loopback port for Prometheus (bound and released; Prometheus takes it next).
PROM_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: faultline
    static_configs:
      - targets: ['127.0.0.1:$TARGET_PORT']
YAML
prometheus --config.file="$WORK/prometheus.yml" --web.listen-address="127.0.0.1:$PROM_PORT" \
  --storage.tsdb.path="$WORK/data" > "$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

# query EXPR -> the single result's value ("" when no series).
query() {
  curl -s --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys
d=json.load(sys.stdin)
assert d["status"]=="success", d
r=d["data"]["result"]
print(r[0]["value"][1] if len(r)==1 else "")' 2>/dev/null
}

# Wait (at most 15 s) until a scrape has landed the series.
for _ in $(seq 1 75); do
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited"
  [ -n "$(query 'faultline_retry_attempts_total')" ] && break
  sleep 0.2
done
[ -n "$(query 'faultline_retry_attempts_total')" ] || fail "no faultline series scraped in 15 s"

check() {  # check NAME EXPR OP EXPECTED
  local v; v="$(query "$2")"
  [ -n "$v" ] || fail "$1: no result for $2"
  python3 -c "import sys; v=float('$v'); e=float('$4'); sys.exit(0 if v $3 e else 1)" ||
    fail "$1: $2 = $v, expected $3 $4"
  echo "ok: $1: $2 = $v ($3 $4)"
}
check "target up" 'up{job="faultline"}' "==" 1
check "breaker tripped" 'faultline_breaker_transitions_total{instance_name="backend",to="open"}' ">=" 1
check "breaker trips match" 'faultline_breaker_transitions_total{instance_name="backend",to="open"}' "==" "$(tally breaker_opened)"
check "breaker state is a state" 'faultline_breaker_state{instance_name="backend"}' "<=" 4
check "budget denied retries" 'faultline_retry_budget_denied_total{instance_name="backend"}' ">" 0
check "retries match the tally" 'faultline_retry_attempts_total{instance_name="backend"}' "==" "$(tally retries)"
check "every call counted" 'sum(faultline_calls_total{instance_name="backend"})' "==" "$(tally calls)"
check "unavailable calls" 'faultline_calls_total{instance_name="backend",code="UNAVAILABLE"}' "==" "$(tally unavailable)"
check "breaker rejections" 'faultline_breaker_rejected_total{instance_name="backend"}' "==" "$(tally breaker_rejected)"
# Attempts that reached the backend: first attempts and retries, minus those the breaker refused.
check "backend attempts" 'sum(faultline_calls_total{instance_name="backend"}) + sum(faultline_retry_attempts_total{instance_name="backend"}) - sum(faultline_breaker_rejected_total{instance_name="backend"})' "==" "$(tally backend_calls)"
check "latency histogram" 'faultline_call_duration_seconds_count{instance_name="backend"}' "==" "$(tally calls)"
echo "PASS"
