#!/usr/bin/env bash
# Scrape, memory and polling benchmark: the exporter against its peers, same series, same
# machine, one run.
#
#   bench/run.sh [LARGE_TENANTS]     (default 50000)
#
# Two fleet shapes, each polled once by the real exporter (release build) from a synthetic
# Elements API, then served by the exporter and, with the very same seat series, by nginx (a
# static file: the practical limit), node_exporter's textfile collector and a prometheus_client
# (Python) exporter:
#   - msp (the default, what an MSP has): MSP_CUSTOMERS (default 5000) customers x 4 tenant
#     types, a handful of tenants each, one customer in 50 with 150 tenants of one type (two
#     pages), organization names of 40 to 60 characters: 20 000 targets, ~110 000 series;
#   - large: LARGE_TENANTS tenants, 100 per customer, one tenant type (few, big customers).
# Per shape: median scrape times (plain and gzip, curl, new connection each), ratios, RSS after
# the first pass and series per MiB, and the first pass against its ideal.
# Per shape also the Prometheus path (what Prometheus asks for: OpenMetrics, gzip) against
# nginx's gzip_static.
# Then: a 32-scraper wrk run (msp); the status views, and RSS while 50 clients that never
# read hold /api/v1/targets; a fleet-wide outage (msp: the API gone and every target
# failed once, its seat series kept): CPU ms per gzip scrape healthy vs outage, the
# Prometheus path against nginx serving the outage's text, the slow readers again; RSS over
# CHURN_CYCLES (default 1000) polls of every target
# with 20 % tenant churn (bench-churn, in-process), the binary on the msp shape with 20 % churn
# polling back to back for CHURN_SECONDS (default 60; RSS sampled every 5 s) and the p99
# of Prometheus-path scrapes while it publishes a snapshot after snapshot, and a rate-bound
# fleet: FLEET_CUSTOMERS
# (default 500) customers x 4 types, one in ten with 250 tenants per type (3 pages), at
# max_requests_per_second 100: its first pass against requests / rate. Last, persistence at
# the msp shape: the state file's size and write time, a restart with the API gone (process
# start to a complete /metrics) and gzip scrapes while the file is written every second. And
# poll what exists: requests per hour of a typical MSP mix with and without the empty cadence
# (bench-cadence, in-process on a paused clock). Last, the plain scrape per byte against
# nginx at 25 000, 100 000 and 400 000 series (the large shape at PLAIN_TENANTS, default
# "12500 50000 200000" tenants).
# Needs: Debian packages prometheus-node-exporter, nginx-light, wrk, curl; pip prometheus_client
# (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
LARGE_TENANTS=${1:-50000}
MSP_CUSTOMERS=${MSP_CUSTOMERS:-5000}
RUNS=${RUNS:-30}
CHURN_CYCLES=${CHURN_CYCLES:-1000}
FLEET_CUSTOMERS=${FLEET_CUSTOMERS:-500}
CHURN_SECONDS=${CHURN_SECONDS:-60}
PLAIN_TENANTS=${PLAIN_TENANTS:-12500 50000 200000}
SLOW_READERS=50
# What Prometheus (2.x and 3.x) sends when it scrapes.
PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
FLEET_RATE=100
CONCURRENCY=16

need() { command -v "$1" >/dev/null 2>&1; }
if ! need prometheus-node-exporter || ! need nginx || ! need wrk || ! need curl; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-node-exporter nginx-light wrk curl >/dev/null
fi
python3 -c 'import prometheus_client' 2>/dev/null || pip install -q prometheus_client

cargo build --release --quiet --bin avepoint-elements-exporter
cargo build --release --quiet --features bench --example bench-fake-api --example bench-churn --example bench-cadence
BIN=target/release/avepoint-elements-exporter
FAKE=target/release/examples/bench-fake-api

tmp=$(mktemp -d)
chmod 755 "$tmp"  # nginx workers run as an unprivileged user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 1200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; tail -5 "$tmp"/*/*.log 2>/dev/null >&2; return 1
}
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# The curl headers of a scrape: plain (none), gzip, or prom (what Prometheus sends).
scrape_headers() { # [gzip|prom]
  case "${1:-}" in
    gzip) hdr=(-H 'Accept-Encoding: gzip') ;;
    prom) hdr=(-H 'Accept-Encoding: gzip' -H "Accept: $PROM_ACCEPT") ;;
    *) hdr=() ;;
  esac
}
# Median scrape time in ms (curl, a new connection each time, body read in full).
median_ms() { # url [gzip|prom]
  local url=$1 hdr t=()
  scrape_headers "${2:-}"
  for _ in 1 2 3; do curl -fsS -o /dev/null "${hdr[@]}" "$url"; done
  for _ in $(seq 1 "$RUNS"); do t+=("$(curl -fsS -o /dev/null -w '%{time_total}' "${hdr[@]}" "$url")"); done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]*1000}'
}
# Median and largest scrape time in ms, as "MEDIAN MAX" (like median_ms).
median_max_ms() { # url [gzip|prom]
  local url=$1 hdr t=()
  scrape_headers "${2:-}"
  for _ in $(seq 1 "$RUNS"); do t+=("$(curl -fsS -o /dev/null -w '%{time_total}' "${hdr[@]}" "$url")"); sleep 0.1; done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int((NR+1)/2)]*1000, a[NR]*1000}'
}
# The value of an unlabelled sample on the exporter at PORT.
sample() { # port metric
  curl -fsS "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'
}
# start_fake DIR ARGS...: the synthetic API (bench-fake-api ARGS), once it says it is ready.
start_fake() {
  local dir=$1; shift
  "$FAKE" "$@" >"$dir/fake.out" &
  FAKE_PID=$!; pids+=($FAKE_PID)
  for _ in $(seq 1 100); do grep -q ready "$dir/fake.out" 2>/dev/null && break; sleep 0.05; done
}
# start_exporter DIR [FLAGS...]: the exporter on DIR/config.yaml, once ready; sets PORT, PID.
start_exporter() {
  local dir=$1; shift
  PORT=$(free_port)
  "$BIN" --config.file "$dir/config.yaml" --web.listen-address "127.0.0.1:$PORT" "$@" 2>"$dir/exporter.log" &
  PID=$!; pids+=($PID)
  wait_http "http://127.0.0.1:$PORT/-/ready"
}
# The value of a key=value field in a logfmt line.
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; }

# start_nginx DIR PORT: nginx serving DIR/www/metrics (and its .gz, gzip_static) on PORT.
start_nginx() {
  local dir=$1 nginx_port=$2
  mkdir -p "$dir/nginx/logs"
  cat >"$dir/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx; fastcgi_temp_path $dir/nginx;
  uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
  server {
    listen 127.0.0.1:$nginx_port;
    root $dir/www;
    location = /metrics { default_type "text/plain; version=0.0.4"; gzip_static on; }
  }
}
CONF
  nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" &
  pids+=($!)
}

# run_shape NAME LATENCY_MS FAKE_ARGS...: polls the shape once, serves it from every server,
# and appends its rows to $tmp/rows. Leaves the exporter running as $EXP_PORT / $EXP_PID.
run_shape() {
  local name=$1 latency=$2; shift 2
  local dir="$tmp/$name"; mkdir -p "$dir/textfile" "$dir/www" "$dir/nginx/logs"; chmod 755 "$dir" "$dir/www"
  start_fake "$dir" "$@" "$latency" "$CONCURRENCY" "$dir/config.yaml" "${SHAPE_ARGS[@]}"
  SHAPE_FAKE_PID=$FAKE_PID
  start_exporter "$dir"
  EXP_PORT=$PORT; EXP_PID=$PID
  local line; line=$(grep 'first pass complete' "$dir/exporter.log" | head -1)
  local pass_ms requests series targets
  pass_ms=$(field "$line" duration_ms); requests=$(field "$line" requests_sent)
  series=$(field "$line" series); targets=$(field "$line" targets)
  sleep 2  # let the allocator hand back what the first pass freed
  curl -fsS "http://127.0.0.1:$EXP_PORT/metrics" >"$dir/full.prom"
  # Only the seat families for the peers: they bring their own process metrics.
  awk '/^# (HELP|TYPE) (available|assigned)_user_seats /{print; next} /^(available|assigned)_user_seats\{/{print}' "$dir/full.prom" >"$dir/textfile/seats.prom"
  cp "$dir/full.prom" "$dir/www/metrics"
  gzip -6 -k -c "$dir/full.prom" >"$dir/www/metrics.gz"
  local node_port py_port nginx_port
  node_port=$(free_port); py_port=$(free_port); nginx_port=$(free_port)
  prometheus-node-exporter --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory "$dir/textfile" --web.listen-address "127.0.0.1:$node_port" 2>"$dir/node.log" &
  pids+=($!)
  python3 bench/python_exporter.py "$dir/textfile/seats.prom" "$py_port" >"$dir/py.out" 2>&1 &
  pids+=($!)
  start_nginx "$dir" "$nginx_port"
  wait_http "http://127.0.0.1:$node_port/metrics"
  wait_http "http://127.0.0.1:$nginx_port/metrics"
  for _ in $(seq 1 1800); do grep -q ready "$dir/py.out" 2>/dev/null && break; sleep 0.1; done
  wait_http "http://127.0.0.1:$py_port/metrics"
  local rss; rss=$(rss_mib "$EXP_PID")
  declare -A plain gz prom
  local names=(exporter nginx node_textfile python_client)
  local urls=("http://127.0.0.1:$EXP_PORT/metrics" "http://127.0.0.1:$nginx_port/metrics" "http://127.0.0.1:$node_port/metrics" "http://127.0.0.1:$py_port/metrics")
  for i in "${!names[@]}"; do
    plain[${names[$i]}]=$(median_ms "${urls[$i]}")
    gz[${names[$i]}]=$(median_ms "${urls[$i]}" gzip)
  done
  prom[exporter]=$(median_ms "${urls[0]}" prom)
  NGINX_PORT=$nginx_port
  local rss_after; rss_after=$(rss_mib "$EXP_PID")
  local kib gz_kib
  kib=$(wc -c <"$dir/full.prom" | awk '{printf "%.0f", $1/1024}')
  gz_kib=$(curl -fsS -H 'Accept-Encoding: gzip' "${urls[0]}" | wc -c | awk '{printf "%.0f", $1/1024}')
  {
    echo "### shape: $name ($targets targets, $series seat series, plain $kib KiB, gzip $gz_kib KiB)"
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
    echo "| exporter gzip / nginx gzip | $(ratio "${gz[exporter]}" "${gz[nginx]}")x | <= 2x |"
    echo "| exporter Prometheus path (OpenMetrics, gzip) / nginx gzip | ${prom[exporter]} ms / ${gz[nginx]} ms = $(ratio "${prom[exporter]}" "${gz[nginx]}")x | <= 1.5x |"
    echo "| node_exporter textfile / exporter (plain) | $(ratio "${plain[node_textfile]}" "${plain[exporter]}")x slower | |"
    echo "| python prometheus_client / exporter (plain) | $(ratio "${plain[python_client]}" "${plain[exporter]}")x slower | |"
    echo "| exporter RSS after the first pass | $rss MiB = $(awk -v s="$series" -v r="$rss" 'BEGIN{printf "%.0f", s / r}') series per MiB (after $((RUNS * 2 + 6)) more scrapes: $rss_after MiB) | <= 64 MiB |"
    echo "| first pass ($requests requests, $CONCURRENCY concurrent, $latency ms latency) | $pass_ms ms vs ideal $(( (requests + CONCURRENCY - 1) / CONCURRENCY * latency )) ms = $(ratio "$pass_ms" "$(( (requests + CONCURRENCY - 1) / CONCURRENCY * latency ))")x | <= 1.15x |"
    echo
  } >>"$tmp/rows"
}

: >"$tmp/rows"
# 1. The large-customer shape, then the MSP shape (which stays up for wrk).
SHAPE_ARGS=()
run_shape large 100 "$(( (LARGE_TENANTS + 99) / 100 ))" 100
SHAPE_ARGS=(4 50 0 1)
run_shape msp 10 "$MSP_CUSTOMERS" 150

# 2. 32 concurrent scrapers against the exporter (wrk), against one scraper (msp shape).
wrk_run() { # connections
  wrk -t"$(( $1 < 2 ? 1 : 2 ))" -c"$1" -d5s --latency "http://127.0.0.1:$EXP_PORT/metrics" 2>&1
}
# One scraper on the Prometheus path for SECONDS: wrk's output (latency percentiles).
wrk_prom() { # url seconds
  wrk -t1 -c1 -d"$2"s --latency -H 'Accept-Encoding: gzip' -H "Accept: $PROM_ACCEPT" "$1" 2>&1
}
# A percentile (50%, 99%, ...) of wrk's latency distribution, in ms.
wrk_pct_ms() { # percentile
  awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'
}
# Peak RSS in MiB of PID while SLOW_READERS clients hold PATH without reading it for 10 s
# (sampled every 0.5 s once every client has its answer's first bytes).
slow_readers_rss() { # pid port path
  local out="$tmp/slow.out" max=0
  python3 bench/slow_readers.py "$2" "$3" "$SLOW_READERS" 10 >"$out" &
  local reader=$!
  for _ in $(seq 1 1200); do grep -q held "$out" 2>/dev/null && break; kill -0 "$reader" 2>/dev/null || break; sleep 0.1; done
  while kill -0 "$reader" 2>/dev/null; do
    max=$(awk -v a="$max" -v b="$(rss_mib "$1")" 'BEGIN{print (b > a ? b : a)}')
    sleep 0.5
  done
  wait "$reader" || { echo "slow readers failed" >&2; return 1; }
  echo "$max"
}
# The status views of the msp shape: the targets API (everything) and the landing page.
read -r api_med api_max < <(median_max_ms "http://127.0.0.1:$EXP_PORT/api/v1/targets")
api_kib=$(curl -fsS "http://127.0.0.1:$EXP_PORT/api/v1/targets" | wc -c | awk '{printf "%.0f", $1/1024}')
read -r landing_med landing_max < <(median_max_ms "http://127.0.0.1:$EXP_PORT/")
landing_kib=$(curl -fsS "http://127.0.0.1:$EXP_PORT/" | wc -c | awk '{printf "%.0f", $1/1024}')
w1=$(wrk_run 1); w32=$(wrk_run 32)
wrk_median_ms() { awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
wrk_errors() { awk '/Socket errors|Non-2xx/ {e=1; print} END {if (!e) print "none"}'; }
m1=$(echo "$w1" | wrk_median_ms); m32=$(echo "$w32" | wrk_median_ms)
# The Prometheus path with nothing being published: the reference for the p99 of step 4.
wp=$(wrk_prom "http://127.0.0.1:$EXP_PORT/metrics" 10)
idle_p50=$(echo "$wp" | wrk_pct_ms 50%); idle_p99=$(echo "$wp" | wrk_pct_ms 99%)
rps32=$(echo "$w32" | awk '/Requests\/sec/ {print $2}')
errs=$(echo "$w32" | wrk_errors)
rss_wrk=$(rss_mib "$EXP_PID")
# 50 clients that never read the targets API (everything): the answer is shared, not built
# per client.
slow_before=$(rss_mib "$EXP_PID")
slow_healthy=$(slow_readers_rss "$EXP_PID" "$EXP_PORT" /api/v1/targets)

# 2b. A fleet-wide outage (msp): CPU per gzip scrape while healthy, then once every target
#     has failed (the API gone; its seat series stay, stale_after is 3h): per-target series
#     are pre-rendered, so the two should cost about the same.
# CPU ms the process PID spends per gzip scrape of URL, over N scrapes one after another.
cpu_ms_per_scrape() { # pid url n
  local before after
  before=$(awk '{print $14 + $15}' "/proc/$1/stat")
  for _ in $(seq 1 "$3"); do curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' "$2"; done
  after=$(awk '{print $14 + $15}' "/proc/$1/stat")
  awk -v d="$((after - before))" -v hz="$(getconf CLK_TCK)" -v n="$3" 'BEGIN {printf "%.2f", d * 1000 / hz / n}'
}
EXP_URL="http://127.0.0.1:$EXP_PORT/metrics"
OUTAGE_SCRAPES=$(( RUNS * 10 ))
cpu_healthy=$(cpu_ms_per_scrape "$EXP_PID" "$EXP_URL" "$OUTAGE_SCRAPES")
read -r gz_healthy _ < <(median_max_ms "$EXP_URL" gzip)
healthy_kib=$(curl -fsS -H 'Accept-Encoding: gzip' "$EXP_URL" | wc -c | awk '{printf "%.0f", $1/1024}')
kill "$SHAPE_FAKE_PID" 2>/dev/null || true
msp_targets=$(curl -fsS "$EXP_URL" | grep -c '^avepoint_exporter_target_up{')
# Every target due within a second (a reload of poll.interval keeps series and counters),
# until each has failed once; then back to 1h, so that nothing polls while measuring.
sed -i 's/^  interval: 1h$/  interval: 1s/' "$tmp/msp/config.yaml"
kill -HUP "$EXP_PID"
down=0
for _ in $(seq 1 1200); do
  down=$(curl -fsS "$EXP_URL" | grep -c '^avepoint_exporter_target_up{.*} 0$' || true)
  [ "$down" -ge "$msp_targets" ] && break
  sleep 0.25
done
sed -i 's/^  interval: 1s$/  interval: 1h/' "$tmp/msp/config.yaml"
kill -HUP "$EXP_PID"
# Until the last polls are published (a publish deflates the whole text: not a scrape's
# cost): the poll count unchanged over 10 s.
polls=-1
for _ in 1 2 3 4 5 6; do
  now=$(sample "$EXP_PORT" avepoint_exporter_poll_duration_seconds_count)
  [ "$now" = "$polls" ] && break
  polls=$now; sleep 10
done
outage_errors=$(curl -fsS "$EXP_URL" | grep -c '^avepoint_exporter_target_errors_total{' || true)
outage_series=$(curl -fsS "$EXP_URL" | grep -c '_user_seats{' || true)
cpu_outage=$(cpu_ms_per_scrape "$EXP_PID" "$EXP_URL" "$OUTAGE_SCRAPES")
read -r gz_outage _ < <(median_max_ms "$EXP_URL" gzip)
outage_kib=$(curl -fsS -H 'Accept-Encoding: gzip' "$EXP_URL" | wc -c | awk '{printf "%.0f", $1/1024}')
# nginx serves the outage's text (the same bytes, error series included) beside it: healthy
# and outage, the Prometheus path against gzip_static.
NGINX_URL="http://127.0.0.1:$NGINX_PORT/metrics"
prom_healthy=$(median_ms "$EXP_URL" prom)  # measured as nginx is (median_ms: no pauses)
healthy_nginx_gz=$(median_ms "$NGINX_URL" gzip)
curl -fsS "$EXP_URL" >"$tmp/msp/outage.prom"
cp "$tmp/msp/outage.prom" "$tmp/msp/www/metrics.new" && mv "$tmp/msp/www/metrics.new" "$tmp/msp/www/metrics"
gzip -6 -c "$tmp/msp/outage.prom" >"$tmp/msp/www/metrics.gz.new" && mv "$tmp/msp/www/metrics.gz.new" "$tmp/msp/www/metrics.gz"
prom_outage=$(median_ms "$EXP_URL" prom)
outage_nginx_gz=$(median_ms "$NGINX_URL" gzip)
outage_plain=$(median_ms "$EXP_URL"); outage_nginx_plain=$(median_ms "$NGINX_URL")
slow_outage=$(slow_readers_rss "$EXP_PID" "$EXP_PORT" /api/v1/targets)
outage_api_kib=$(curl -fsS "http://127.0.0.1:$EXP_PORT/api/v1/targets" | wc -c | awk '{printf "%.0f", $1/1024}')
kill "$EXP_PID" 2>/dev/null || true

# 3. Memory over many polls with churning tenants (in-process, see bench/churn.rs).
churn=$(target/release/examples/bench-churn "$CHURN_CYCLES" | tail -1 | sed 's/^churn: //')

# 4. The binary on the msp shape with 20 % of the tenants renamed on every poll, polling back
#    to back (interval 1s, at most 2 000 requests a second): RSS over time.
mkdir -p "$tmp/churn"
start_fake "$tmp/churn" "$MSP_CUSTOMERS" 150 0 16 "$tmp/churn/config.yaml" 4 50 2000 1 20
sed -i 's/^  interval: 1h$/  interval: 1s/; s/^  stale_after: 3h$/  stale_after: 1h/' "$tmp/churn/config.yaml"
start_exporter "$tmp/churn" --log.level error
CHURN_PORT=$PORT; CHURN_PID=$PID
churn_max=0
for _ in $(seq 1 $(( (CHURN_SECONDS + 4) / 5 ))); do
  sleep 5
  curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' "http://127.0.0.1:$CHURN_PORT/metrics"
  churn_max=$(awk -v a="$churn_max" -v b="$(rss_mib "$CHURN_PID")" 'BEGIN{print (b > a ? b : a)}')
done
read -r churn_gz_med churn_gz_max < <(median_max_ms "http://127.0.0.1:$CHURN_PORT/metrics" gzip)
# The Prometheus path for 10 s while snapshots are published one after another: p99 next
# to the median (rendering and compressing run off the async workers). Publishes are
# counted as the distinct poll counts a second scraper sees, sampled every 0.25 s.
( for _ in $(seq 1 40); do sample "$CHURN_PORT" avepoint_exporter_poll_duration_seconds_count; sleep 0.25; done ) >"$tmp/churn/polls" &
counter=$!
wp=$(wrk_prom "http://127.0.0.1:$CHURN_PORT/metrics" 10)
wait "$counter" || true
pub_p50=$(echo "$wp" | wrk_pct_ms 50%); pub_p99=$(echo "$wp" | wrk_pct_ms 99%)
pub_scrapes=$(echo "$wp" | awk '/requests in/ {print $1}')
publishes=$(( $(sort -un "$tmp/churn/polls" | wc -l) - 1 ))
churn_polls=$(curl -fsS "http://127.0.0.1:$CHURN_PORT/metrics" | awk '/^avepoint_exporter_poll_duration_seconds_count /{print $2}')
churn_series=$(curl -fsS "http://127.0.0.1:$CHURN_PORT/metrics" | grep -c '_user_seats{' || true)
churn_last=$(rss_mib "$CHURN_PID")
kill "$CHURN_PID" 2>/dev/null || true

# 5. A rate-bound fleet: first pass against requests / rate.
mkdir -p "$tmp/fleet"
start_fake "$tmp/fleet" "$FLEET_CUSTOMERS" 250 20 16 "$tmp/fleet/config.yaml" 4 10 "$FLEET_RATE"
start_exporter "$tmp/fleet"
FLEET_PID=$PID
fleet_line=$(grep 'first pass complete' "$tmp/fleet/exporter.log" | head -1)
fleet_ms=$(field "$fleet_line" duration_ms); fleet_requests=$(field "$fleet_line" requests_sent)
fleet_targets=$(field "$fleet_line" targets); fleet_ok=$(field "$fleet_line" ok)
fleet_ideal_ms=$(( fleet_requests * 1000 / FLEET_RATE ))
fleet_rss=$(rss_mib "$FLEET_PID")
kill "$FLEET_PID" 2>/dev/null || true

# 6. Persistence at the msp shape: the state file's size and write time; a restart with the
#    API gone (time from process start to a /metrics with every series); then the binary
#    polling back to back (as in 4) while the file is written every second: scrapes and RSS.
mkdir -p "$tmp/persist"
start_fake "$tmp/persist" "$MSP_CUSTOMERS" 150 0 16 "$tmp/persist/config.yaml" 4 50 2000 1 0
PFAKE_PID=${pids[-1]}
state="$tmp/persist/state/state.jsonl"
start_exporter "$tmp/persist" --persistence.file "$state" --persistence.interval 1s
P_PORT=$PORT; P_PID=$PID
# A write that began after the first pass (ready) holds every target.
ready_at=$(date +%s.%N)
for _ in $(seq 1 600); do
  w=$(sample "$P_PORT" avepoint_exporter_persistence_last_write_timestamp_seconds)
  awk -v w="${w:-0}" -v r="$ready_at" 'BEGIN { exit !(w > r + 0.5) }' && break; sleep 0.1
done
p_series=$(curl -fsS "http://127.0.0.1:$P_PORT/metrics" | grep -c '_user_seats{' || true)
p_targets=$(curl -fsS "http://127.0.0.1:$P_PORT/metrics" | grep -c '^avepoint_exporter_target_up{' || true)
p_write_ms=$(sample "$P_PORT" avepoint_exporter_persistence_last_write_duration_seconds | awk '{printf "%.0f", $1*1000}')
kill "$PFAKE_PID" 2>/dev/null || true
t_term=$(date +%s%N)
kill -TERM "$P_PID"; wait "$P_PID" 2>/dev/null || true
p_stop_ms=$(( ($(date +%s%N) - t_term) / 1000000 ))
p_kib=$(stat -c %s "$state" | awk '{printf "%.0f", $1/1024}')
PORT=$(free_port)
t0=$(date +%s%N)
"$BIN" --config.file "$tmp/persist/config.yaml" --web.listen-address "127.0.0.1:$PORT" \
  --persistence.file "$state" 2>"$tmp/persist/restart.log" &
R_PID=$!; pids+=($R_PID)
p_restore_ms=timeout
for _ in $(seq 1 3000); do
  n=$(curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -c '_user_seats{' || true)
  if [ "$n" = "$p_series" ]; then p_restore_ms=$(( ($(date +%s%N) - t0) / 1000000 )); break; fi
  sleep 0.01
done
p_ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/ready")
p_restore_rss=$(rss_mib "$R_PID")
kill "$R_PID" 2>/dev/null || true
mkdir -p "$tmp/pchurn"
start_fake "$tmp/pchurn" "$MSP_CUSTOMERS" 150 0 16 "$tmp/pchurn/config.yaml" 4 50 2000 1 20
sed -i 's/^  interval: 1h$/  interval: 1s/; s/^  stale_after: 3h$/  stale_after: 1h/' "$tmp/pchurn/config.yaml"
start_exporter "$tmp/pchurn" --log.level error --persistence.file "$tmp/pchurn/state.jsonl" --persistence.interval 1s
PC_PORT=$PORT; PC_PID=$PID
sleep 10
read -r pchurn_gz_med pchurn_gz_max < <(median_max_ms "http://127.0.0.1:$PC_PORT/metrics" gzip)
pchurn_max=0
for _ in 1 2 3 4 5 6; do
  sleep 2
  pchurn_max=$(awk -v a="$pchurn_max" -v b="$(rss_mib "$PC_PID")" 'BEGIN{print (b > a ? b : a)}')
done
pchurn_writes_ms=$(sample "$PC_PORT" avepoint_exporter_persistence_last_write_duration_seconds | awk '{printf "%.0f", $1*1000}')
pchurn_failures=$(sample "$PC_PORT" avepoint_exporter_persistence_write_failures_total)
kill "$PC_PID" 2>/dev/null || true

# 7. Poll what exists: requests per hour of a typical MSP fleet (80 % Microsoft 365 only, 15 %
#    one more type, 5 % all four) with empty_interval = interval and at its default
#    (in-process, paused clock: see bench/cadence.rs).
cadence=$(target/release/examples/bench-cadence "$MSP_CUSTOMERS" | tail -1 | sed 's/^cadence: //')

# 8. The plain scrape per byte against nginx (sendfile) as the text grows: the large shape
#    at each of PLAIN_TENANTS tenants (two series each); the very same bytes from both.
plain_rows=()
for tenants in $PLAIN_TENANTS; do
  dir="$tmp/plain-$tenants"; mkdir -p "$dir/www"; chmod 755 "$dir" "$dir/www"
  start_fake "$dir" "$(( (tenants + 99) / 100 ))" 100 5 "$CONCURRENCY" "$dir/config.yaml"
  start_exporter "$dir" --log.level warn
  sleep 2
  curl -fsS "http://127.0.0.1:$PORT/metrics" >"$dir/www/metrics"
  np=$(free_port); start_nginx "$dir" "$np"
  wait_http "http://127.0.0.1:$np/metrics"
  e=$(median_ms "http://127.0.0.1:$PORT/metrics"); n=$(median_ms "http://127.0.0.1:$np/metrics")
  mb=$(stat -c %s "$dir/www/metrics" | awk '{printf "%.1f", $1/1048576}')
  series=$(grep -c '_user_seats{' "$dir/www/metrics" || true)
  plain_rows+=("| $series | $mb | $e ms ($(awk -v t="$e" -v m="$mb" 'BEGIN{printf "%.2f", t/m}') ms/MiB) | $n ms ($(awk -v t="$n" -v m="$mb" 'BEGIN{printf "%.2f", t/m}') ms/MiB) | $(ratio "$e" "$n")x | $(rss_mib "$PID") MiB |")
  kill "$PID" "$FAKE_PID" 2>/dev/null || true
done

echo
echo "## Benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m))"
echo
cat "$tmp/rows"
echo "### everything else"
echo
echo "| check | figure | target |"
echo "|---|---|---|"
echo "| wrk median, 1 scraper -> 32 scrapers (msp) | ${m1} ms -> ${m32} ms = $(ratio "$m32" "$m1")x ($rps32 req/s; RSS after: $rss_wrk MiB) | <= 32x (linear) |"
echo "| wrk errors with 32 scrapers | $errs | none |"
echo "| Prometheus path (OpenMetrics, gzip) vs nginx gzip_static, msp: healthy; every target failed once | ${prom_healthy} / ${healthy_nginx_gz} ms = $(ratio "$prom_healthy" "$healthy_nginx_gz")x; ${prom_outage} / ${outage_nginx_gz} ms = $(ratio "$prom_outage" "$outage_nginx_gz")x | <= 1.5x both |"
echo "| plain scrape vs nginx, msp, every target failed once | ${outage_plain} / ${outage_nginx_plain} ms = $(ratio "$outage_plain" "$outage_nginx_plain")x | <= 2x |"
echo "| RSS with $SLOW_READERS clients holding /api/v1/targets unread, msp: healthy; outage (${outage_api_kib} KiB answer) | ${slow_before} MiB before -> at most ${slow_healthy} MiB; at most ${slow_outage} MiB | <= 128 MiB (the container) |"
echo "| Prometheus-path scrape latency (wrk, 1 scraper, 10 s), msp: idle -> polling back to back with 20% churn ($publishes snapshots published, $pub_scrapes scrapes) | p50 ${idle_p50} -> ${pub_p50} ms, p99 ${idle_p99} -> ${pub_p99} ms | p99 close to p50 |"
echo "| gzip scrape, msp: healthy -> every target failed once ($down of $msp_targets down, $outage_errors error series, $outage_series seat series kept) | CPU ${cpu_healthy} -> ${cpu_outage} ms per scrape ($OUTAGE_SCRAPES scrapes each); median ${gz_healthy} -> ${gz_outage} ms; ${healthy_kib} -> ${outage_kib} KiB | outage <= 5 ms CPU, about healthy |"
echo "| status views, msp: /api/v1/targets, / (landing page) | median ${api_med} ms (max ${api_max}), ${api_kib} KiB; median ${landing_med} ms (max ${landing_max}), ${landing_kib} KiB | / < 256 KiB |"
echo "| memory with 20% tenant churn per poll (in-process) | $churn | flat |"
echo "| binary, msp shape, 20% churn, polling back to back for ${CHURN_SECONDS} s ($churn_polls polls, $churn_series series) | RSS at most $churn_max MiB, last $churn_last MiB | <= 64 MiB |"
echo "| persistence file, msp ($p_targets targets, $p_series series) | $p_kib KiB, written in $p_write_ms ms (fsync and rename included); SIGTERM to exit ${p_stop_ms} ms (last write included) | |"
echo "| restart with the API gone: process start -> /metrics with all $p_series series | $p_restore_ms ms, /-/ready $p_ready, RSS $p_restore_rss MiB | <= 2000 ms, 200, <= 64 MiB |"
echo "| gzip scrapes while polling back to back (msp, 20% churn): without -> with a write every second | median ${churn_gz_med} -> ${pchurn_gz_med} ms, max ${churn_gz_max} -> ${pchurn_gz_max} ms (last write $pchurn_writes_ms ms, $pchurn_failures failures; RSS at most $pchurn_max MiB) | no visible step, <= 64 MiB |"
echo "| poll what exists: typical MSP fleet, interval 5m, empty_interval 5m -> 1h | $cadence | >= 2.5x fewer |"
echo "| first pass of a rate-bound fleet ($fleet_targets targets, $fleet_ok up, $fleet_requests requests at $FLEET_RATE/s) | ${fleet_ms} ms vs requests / rate ${fleet_ideal_ms} ms = $(ratio "$fleet_ms" "$fleet_ideal_ms")x (RSS $fleet_rss MiB) | <= 1.15x |"
echo
echo "### plain scrape per byte as the text grows (large shape, curl, median of $RUNS)"
echo
echo "| seat series | MiB | exporter | nginx (sendfile) | exporter / nginx (<= 2x) | exporter RSS (<= 64 MiB at 100 000) |"
echo "|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${plain_rows[@]}"
