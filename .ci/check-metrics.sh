#!/usr/bin/env bash
# Starts the exporter in --demo mode, waits until it is ready, and runs `promtool check metrics`
# on a plain and a gzip scrape. Usage: .ci/check-metrics.sh [path/to/binary]
set -euo pipefail
bin=${1:-target/debug/avepoint-elements-exporter}
tmp=$(mktemp -d)
"$bin" --demo --web.listen-address 127.0.0.1:0 2>"$tmp/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
addr=""
for _ in $(seq 1 200); do
  addr=$(sed -n 's/.*msg=listening address=\([0-9.:]*\).*/\1/p' "$tmp/log" | head -1)
  [ -n "$addr" ] && curl -fsS "http://$addr/-/ready" >/dev/null 2>&1 && break
  sleep 0.05
done
[ -n "$addr" ] || { echo "exporter did not start:"; cat "$tmp/log"; exit 1; }
curl -fsS "http://$addr/-/ready" >/dev/null
curl -fsS "http://$addr/metrics" >"$tmp/plain"
curl -fsS --compressed "http://$addr/metrics" >"$tmp/gzip"
# promtool only warns (exit 0) on lint problems it considers minor; treat any output as failure.
for f in plain gzip; do
  out=$(promtool check metrics <"$tmp/$f" 2>&1) || { echo "$out"; exit 1; }
  if [ -n "$out" ]; then echo "promtool check metrics ($f): $out"; exit 1; fi
done
grep -q '^available_user_seats{' "$tmp/plain"
grep -q '^available_user_seats{' "$tmp/gzip"
echo "check-metrics: $(grep -c '^available_user_seats{' "$tmp/plain") tenants, promtool check metrics clean (plain and gzip)"
