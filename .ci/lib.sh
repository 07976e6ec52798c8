# Shared by the CI scripts that run the exporter next to a real Prometheus; sourced after
# `set -euo pipefail`, with CI_NAME set to the script's name (it prefixes every message).
#   ci_init BIN       resolves the exporter binary into $bin (absolute), cds to the repository
#                     root ($root), finds Prometheus ($prometheus_bin), makes $tmp and traps
#                     EXIT: every pid in $pids is stopped, both logs are shown on failure,
#                     $tmp is removed.
#   free_port         a free TCP port on 127.0.0.1.
#   wait_for URL SECONDS PID
#                     polls until URL answers 200, the process dies, or the deadline passes.
#   start_prometheus  starts Prometheus on a free loopback port with $tmp/prometheus.yml and
#                     storage in $tmp/data, logging to $tmp/prometheus.log; sets
#                     $prometheus_port, $prometheus_pid and $prom, and waits until it is ready.

ci_init() {
  bin=${1:-target/debug/avepoint-elements-exporter}
  case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  root=$PWD
  [ -x "$bin" ] || { echo "$CI_NAME: exporter binary $bin not found (build it first)" >&2; exit 1; }
  prometheus_bin=$(command -v prometheus || true)
  [ -n "$prometheus_bin" ] || { echo "$CI_NAME: prometheus is not installed (apt-get install prometheus)" >&2; exit 1; }
  tmp=$(mktemp -d)
  pids=""
  trap ci_cleanup EXIT
}

ci_cleanup() {
  local status=$?
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "--- exporter log (last 20 lines)"; tail -n 20 "$tmp/exporter.log" 2>/dev/null || true
    echo "--- prometheus log (last 20 lines)"; tail -n 20 "$tmp/prometheus.log" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "$CI_NAME: process $pid exited while waiting for $url" >&2; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "$CI_NAME: timed out waiting for $url" >&2; return 1; }
    sleep 0.2
  done
}

start_prometheus() {
  prometheus_port=$(free_port)
  "$prometheus_bin" \
    --config.file="$tmp/prometheus.yml" \
    --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" \
    --log.level=warn >"$tmp/prometheus.log" 2>&1 &
  prometheus_pid=$!
  pids="$pids $prometheus_pid"
  prom="http://127.0.0.1:$prometheus_port"
  wait_for "$prom/-/ready" 60 "$prometheus_pid"
}
