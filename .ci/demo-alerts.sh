#!/usr/bin/env bash
# The seat alerts on the demo, on a real Prometheus: what a user who runs --demo next to
# Prometheus with deploy/prometheus/rules.yml sees, minus the waiting.
#   1. starts the exporter with --demo, and Prometheus (Debian's /usr/bin/prometheus, or
#      whatever `prometheus` is on PATH) scraping it and evaluating the rules every 2 s;
#   2. the rules are a copy of deploy/prometheus/rules.yml in which every `for:` is cut to
#      FOR (20s): the shipped ones (15m for AvePointTenantOutOfSeats, 30m for
#      AvePointTenantLowOnSeats, 1d for the forecast) do not fit in a CI run. Only the `for:`
#      lines differ (checked below): every expression is the shipped one;
#   3. polls Prometheus' /api/v1/alerts every 2 s until AvePointTenantOutOfSeats fires for the
#      demo's running-out tenant (Contoso Sales) and AvePointTenantLowOnSeats for its low one
#      (Contoso CRM), and for at least OBSERVE seconds (120), with a deadline of DEADLINE (240);
#   4. fails when, at any poll, AvePointTenantSeatsForecastExhausted is pending or firing for
#      more than MAX_FORECAST (3) tenants, or when more than that many tenants were ever pending
#      or firing on it (the ALERTS series over the whole run): with the demo's drifting seat
#      counts, the rule used to be pending for about half of the 185 tenants after a minute.
# Usage: .ci/demo-alerts.sh [path/to/avepoint-elements-exporter]
set -euo pipefail
CI_NAME=demo-alerts
source "$(dirname "$0")/lib.sh"
ci_init "${1:-}"
FOR=${FOR:-20s}
OBSERVE=${OBSERVE:-120}
DEADLINE=${DEADLINE:-240}
MAX_FORECAST=${MAX_FORECAST:-3}

# The rules with short `for:` durations, and proof that nothing else changed.
sed -E "s/^([[:space:]]*for:)[[:space:]]+[0-9a-z]+/\1 $FOR/" deploy/prometheus/rules.yml >"$tmp/rules.yml"
if ! diff <(grep -Ev '^[[:space:]]*for:' deploy/prometheus/rules.yml) <(grep -Ev '^[[:space:]]*for:' "$tmp/rules.yml") >/dev/null; then
  echo "demo-alerts: the test copy of the rules differs from rules.yml in more than its for: lines" >&2
  exit 1
fi
cut_lines=$(grep -cE "^[[:space:]]*for: $FOR([[:space:]]|$)" "$tmp/rules.yml" || true)
[ "$cut_lines" -gt 0 ] || { echo "demo-alerts: no for: line was cut to $FOR" >&2; exit 1; }
promtool check rules "$tmp/rules.yml" >/dev/null

start=$SECONDS
exporter_port=$(free_port)
"$bin" --demo --web.listen-address "127.0.0.1:$exporter_port" >"$tmp/exporter.log" 2>&1 &
exporter_pid=$!
pids="$pids $exporter_pid"
wait_for "http://127.0.0.1:$exporter_port/-/ready" 30 "$exporter_pid"

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files:
  - $tmp/rules.yml
scrape_configs:
  - job_name: avepoint-elements-exporter
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
EOF
start_prometheus
echo "demo-alerts: exporter and Prometheus up after $((SECONDS - start)) s; rules.yml with $cut_lines for: lines cut to $FOR"

PROM="$prom" FOR="$FOR" OBSERVE="$OBSERVE" DEADLINE="$DEADLINE" MAX_FORECAST="$MAX_FORECAST" \
  EXPORTER_PID="$exporter_pid" PROMETHEUS_PID="$prometheus_pid" python3 - <<'PY'
import json, os, sys, time, urllib.parse, urllib.request

prom = os.environ["PROM"]
observe, deadline_s = int(os.environ["OBSERVE"]), int(os.environ["DEADLINE"])
max_forecast = int(os.environ["MAX_FORECAST"])
FORECAST = "AvePointTenantSeatsForecastExhausted"
# (alert, customer, tenant) that the demo is built to fire (src/demo/mod.rs).
expected = [("AvePointTenantOutOfSeats", "Contoso", "Contoso Sales"),
            ("AvePointTenantLowOnSeats", "Contoso", "Contoso CRM")]

def get(path, params=None):
    url = prom + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]

def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except OSError:
        return False

start = time.monotonic()
fired = {}          # (alert, customer, tenant) -> seconds after start when first seen firing
forecast_max = (0, 0.0, [])  # most forecast tenants at one poll: count, when, which
polls = 0
failures = []
while True:
    for name in ("EXPORTER_PID", "PROMETHEUS_PID"):
        if not alive(os.environ[name]):
            sys.exit(f"demo-alerts: {name.split('_')[0].lower()} exited")
    now = time.monotonic() - start
    alerts = get("/api/v1/alerts")["alerts"]
    polls += 1
    for a in alerts:
        l = a["labels"]
        key = (l.get("alertname"), l.get("customer_name"), l.get("tenant_name"))
        if a["state"] == "firing" and key not in fired:
            fired[key] = now
            print(f"demo-alerts: {now:5.0f} s  {key[0]} firing for {key[1]} / {key[2]}")
    forecast = sorted(f"{a['labels'].get('customer_name')} / {a['labels'].get('tenant_name')} ({a['state']})"
                      for a in alerts if a["labels"].get("alertname") == FORECAST)
    if len(forecast) > forecast_max[0]:
        forecast_max = (len(forecast), now, forecast)
    if len(forecast) > max_forecast:
        failures.append(f"{FORECAST} pending or firing for {len(forecast)} tenants at {now:.0f} s "
                        f"(at most {max_forecast}): {', '.join(forecast[:5])}{' ...' if len(forecast) > 5 else ''}")
        break
    if all(k in fired for k in expected) and now >= observe:
        break
    if now >= deadline_s:
        for k in expected:
            if k not in fired:
                failures.append(f"{k[0]} did not fire for {k[1]} / {k[2]} within {deadline_s} s")
        break
    time.sleep(2)

# Every tenant the forecast was ever pending or firing for during the run, from Prometheus' own
# record (ALERTS), not only at the moments polled above.
elapsed = int(time.monotonic() - start) + 10
ever = get("/api/v1/query", {"query": "count by (customer_id, tenant_type, tenant_id) "
           f'(count_over_time(ALERTS{{alertname="{FORECAST}"}}[{elapsed}s]))'})["result"]
if len(ever) > max_forecast:
    failures.append(f"{FORECAST} was pending or firing for {len(ever)} tenants during the run (at most {max_forecast})")

print(f"demo-alerts: {polls} polls of /api/v1/alerts over {time.monotonic() - start:.0f} s")
for k in expected:
    if k in fired:
        print(f"demo-alerts: ok: {k[0]} fired for {k[1]} / {k[2]} after {fired[k]:.0f} s")
others = sorted(f"{k[0]} for {k[1]} / {k[2]}" for k in fired if k not in expected)
if others:
    print(f"demo-alerts: also fired: {'; '.join(others)}")
print(f"demo-alerts: {FORECAST}: at most {forecast_max[0]} tenant(s) pending or firing at one poll, "
      f"{len(ever)} during the whole run (limit {max_forecast})")
if failures:
    print("demo-alerts: FAILED", file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print("demo-alerts: all checks passed")
PY
