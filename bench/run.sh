#!/usr/bin/env bash
# Scrape benchmark: the exporter against its peers, same series, same machine, one run.
#
#   bench/run.sh [TENANTS]        (default 50000 tenants = 100000 seat series)
#
# Starts a synthetic Elements API (100 tenants per customer, 100 ms latency per answer), lets
# the exporter (release build, max_concurrency 16) poll it once, then serves the very same seat
# series from node_exporter's textfile collector, a prometheus_client (Python) exporter and
# nginx (a static file: the practical limit). Prints median scrape times (plain and gzip),
# ratios, the exporter's RSS, its poll cycle time against the ideal, and a 32-scraper wrk run.
# Then runs bench-churn: RSS over CHURN_CYCLES (default 1000) polls with churning tenants, and
# a rate-bound fleet: FLEET_CUSTOMERS (default 500) customers x 4 tenant types, one customer in
# ten with 250 tenants per type (3 pages), at max_requests_per_second 100: its first pass
# against requests / rate.
# Needs: Debian packages prometheus-node-exporter, nginx-light, wrk, curl; pip prometheus_client
# (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${1:-50000}
RUNS=${RUNS:-30}
CHURN_CYCLES=${CHURN_CYCLES:-1000}
FLEET_CUSTOMERS=${FLEET_CUSTOMERS:-500}
FLEET_RATE=100
PER_CUSTOMER=100
CUSTOMERS=$(( (TENANTS + PER_CUSTOMER - 1) / PER_CUSTOMER ))
LATENCY_MS=100
CONCURRENCY=16

need() { command -v "$1" >/dev/null 2>&1; }
if ! need prometheus-node-exporter || ! need nginx || ! need wrk || ! need curl; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-node-exporter nginx-light wrk curl >/dev/null
fi
python3 -c 'import prometheus_client' 2>/dev/null || pip install -q prometheus_client

cargo build --release --quiet --bin avepoint-elements-exporter --example bench-fake-api --example bench-churn
BIN=target/release/avepoint-elements-exporter
FAKE=target/release/examples/bench-fake-api

tmp=$(mktemp -d)
chmod 755 "$tmp"  # nginx workers run as an unprivileged user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; tail -5 "$tmp"/*.log "$tmp"/nginx/error.log 2>/dev/null >&2; return 1
}

# 1. The synthetic API and the exporter.
"$FAKE" "$CUSTOMERS" "$PER_CUSTOMER" "$LATENCY_MS" "$CONCURRENCY" "$tmp/config.yaml" >"$tmp/fake.out" &
pids+=($!)
for _ in $(seq 1 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
EXP_PORT=$(free_port)
"$BIN" --config.file "$tmp/config.yaml" --web.listen-address "127.0.0.1:$EXP_PORT" 2>"$tmp/exporter.log" &
EXP_PID=$!; pids+=($EXP_PID)
wait_http "http://127.0.0.1:$EXP_PORT/-/ready"
poll_ms=$(sed -n 's/.*first pass complete.* duration_ms=\([0-9]*\).*/\1/p' "$tmp/exporter.log" | head -1)
series=$(sed -n 's/.*first pass complete.* series=\([0-9]*\).*/\1/p' "$tmp/exporter.log" | head -1)
requests=$(( CUSTOMERS * ( (PER_CUSTOMER + 99) / 100 ) ))
ideal_ms=$(( ( (requests + CONCURRENCY - 1) / CONCURRENCY ) * LATENCY_MS ))

# 2. The same series for the peers.
curl -fsS "http://127.0.0.1:$EXP_PORT/metrics" >"$tmp/full.prom"
mkdir -p "$tmp/textfile" "$tmp/www"
# Only the seat families: node_exporter and the Python client bring their own process metrics.
awk '/^# (HELP|TYPE) (available|assigned)_user_seats /{print; next} /^(available|assigned)_user_seats\{/{print}' "$tmp/full.prom" >"$tmp/textfile/seats.prom"
cp "$tmp/full.prom" "$tmp/www/metrics"
gzip -6 -k -c "$tmp/full.prom" >"$tmp/www/metrics.gz"

NODE_PORT=$(free_port)
prometheus-node-exporter --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory "$tmp/textfile" --web.listen-address "127.0.0.1:$NODE_PORT" 2>"$tmp/node.log" &
pids+=($!)
PY_PORT=$(free_port)
python3 bench/python_exporter.py "$tmp/textfile/seats.prom" "$PY_PORT" >"$tmp/py.out" 2>&1 &
pids+=($!)
NGINX_PORT=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $tmp/www;
    location = /metrics { default_type "text/plain; version=0.0.4"; gzip_static on; }
  }
}
CONF
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
pids+=($!)
wait_http "http://127.0.0.1:$NODE_PORT/metrics"
wait_http "http://127.0.0.1:$NGINX_PORT/metrics"
for _ in $(seq 1 1200); do grep -q ready "$tmp/py.out" 2>/dev/null && break; sleep 0.1; done
wait_http "http://127.0.0.1:$PY_PORT/metrics"

# 3. Median scrape time with curl (a new connection each time, body read in full).
median_ms() { # url [gzip]
  local url=$1 hdr=() t=()
  [ "${2:-}" = gzip ] && hdr=(-H 'Accept-Encoding: gzip')
  for _ in 1 2 3; do curl -fsS -o /dev/null "${hdr[@]}" "$url"; done
  for _ in $(seq 1 "$RUNS"); do t+=("$(curl -fsS -o /dev/null -w '%{time_total}' "${hdr[@]}" "$url")"); done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]*1000}'
}
size_kib() { curl -fsS ${2:+-H 'Accept-Encoding: gzip'} "$1" | wc -c | awk '{printf "%.0f", $1/1024}'; }

declare -A plain gz
names=(exporter nginx node_textfile python_client)
urls=("http://127.0.0.1:$EXP_PORT/metrics" "http://127.0.0.1:$NGINX_PORT/metrics" "http://127.0.0.1:$NODE_PORT/metrics" "http://127.0.0.1:$PY_PORT/metrics")
for i in "${!names[@]}"; do
  plain[${names[$i]}]=$(median_ms "${urls[$i]}")
  gz[${names[$i]}]=$(median_ms "${urls[$i]}" gzip)
done
rss_mib=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$EXP_PID/status")

# 4. 32 concurrent scrapers against the exporter (wrk), against one scraper.
wrk_run() { # connections
  wrk -t"$(( $1 < 2 ? 1 : 2 ))" -c"$1" -d5s --latency "http://127.0.0.1:$EXP_PORT/metrics" 2>&1
}
w1=$(wrk_run 1); w32=$(wrk_run 32)
wrk_median_ms() { awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
wrk_errors() { awk '/Socket errors|Non-2xx/ {e=1; print} END {if (!e) print "none"}'; }
m1=$(echo "$w1" | wrk_median_ms); m32=$(echo "$w32" | wrk_median_ms)
rps32=$(echo "$w32" | awk '/Requests\/sec/ {print $2}')
errs=$(echo "$w32" | wrk_errors)
rss_after_mib=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$EXP_PID/status")

# 5. Memory over many polls with churning tenants (in-process, see bench/churn.rs).
churn=$(target/release/examples/bench-churn "$CHURN_CYCLES" | tail -1 | sed 's/^churn: //')

# 6. A rate-bound fleet: first pass against requests / rate.
"$FAKE" "$FLEET_CUSTOMERS" 250 20 16 "$tmp/fleet.yaml" 4 10 "$FLEET_RATE" >"$tmp/fleet-fake.out" &
pids+=($!)
for _ in $(seq 1 100); do grep -q ready "$tmp/fleet-fake.out" 2>/dev/null && break; sleep 0.05; done
FLEET_PORT=$(free_port)
"$BIN" --config.file "$tmp/fleet.yaml" --web.listen-address "127.0.0.1:$FLEET_PORT" 2>"$tmp/fleet.log" &
FLEET_PID=$!; pids+=($FLEET_PID)
wait_http "http://127.0.0.1:$FLEET_PORT/-/ready"
fleet_line=$(grep 'first pass complete' "$tmp/fleet.log" | head -1)
fleet_ms=$(echo "$fleet_line" | sed -n 's/.* duration_ms=\([0-9]*\).*/\1/p')
fleet_requests=$(echo "$fleet_line" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
fleet_targets=$(echo "$fleet_line" | sed -n 's/.* targets=\([0-9]*\).*/\1/p')
fleet_ok=$(echo "$fleet_line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
fleet_ideal_ms=$(( fleet_requests * 1000 / FLEET_RATE ))
fleet_rss_mib=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$FLEET_PID/status")
kill "$FLEET_PID" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "## Scrape benchmark: $TENANTS tenants, $series seat series ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m))"
echo
echo "| server | plain median (ms) | gzip median (ms) | plain vs exporter |"
echo "|---|---:|---:|---:|"
for n in "${names[@]}"; do
  echo "| $n | ${plain[$n]} | ${gz[$n]} | $(ratio "${plain[$n]}" "${plain[exporter]}")x |"
done
echo
echo "| check | figure | target |"
echo "|---|---|---|"
echo "| exporter plain / nginx plain | $(ratio "${plain[exporter]}" "${plain[nginx]}")x | <= 2x |"
echo "| node_exporter textfile / exporter (plain) | $(ratio "${plain[node_textfile]}" "${plain[exporter]}")x faster | >= 50x |"
echo "| python prometheus_client / exporter (plain) | $(ratio "${plain[python_client]}" "${plain[exporter]}")x faster | |"
echo "| exporter gzip / exporter plain | $(ratio "${gz[exporter]}" "${plain[exporter]}")x | <= 1x |"
echo "| exporter RSS after poll + scrapes | ${rss_mib} MiB (after wrk: ${rss_after_mib} MiB) | <= 64 MiB |"
echo "| first pass ($requests requests, $CONCURRENCY concurrent, ${LATENCY_MS} ms latency) | ${poll_ms} ms vs ideal ${ideal_ms} ms = $(ratio "$poll_ms" "$ideal_ms")x | <= 1.15x |"
echo "| wrk median, 1 scraper -> 32 scrapers | ${m1} ms -> ${m32} ms = $(ratio "$m32" "$m1")x ($rps32 req/s) | <= 32x (linear) |"
echo "| wrk errors with 32 scrapers | $errs | none |"
echo "| memory, 10k tenants with 20% churn per poll | $churn | flat |"
echo "| first pass of a rate-bound fleet ($fleet_targets targets, $fleet_ok up, $fleet_requests requests at $FLEET_RATE/s) | ${fleet_ms} ms vs requests / rate ${fleet_ideal_ms} ms = $(ratio "$fleet_ms" "$fleet_ideal_ms")x (RSS ${fleet_rss_mib} MiB) | <= 1.15x |"
echo
echo "Body sizes: plain $(size_kib "${urls[0]}") KiB, gzip $(size_kib "${urls[0]}" gzip) KiB."
