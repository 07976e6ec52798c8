#!/usr/bin/env bash
# End-to-end check of the deployment kit against a real Prometheus:
#   1. starts the exporter in --demo mode and waits until it is ready. It starts from a
#      persistence file written by a first demo run and moved 20 minutes into the past, so
#      that its healthy empty targets (polled every poll.empty_interval, 1h) have a last
#      success 20 minutes old, as on any demo that has run for a while: the exporter-health
#      panels must not flag that;
#   2. starts Prometheus (Debian's /usr/bin/prometheus, or whatever `prometheus` is on PATH)
#      scraping it every second and evaluating deploy/prometheus/rules.yml every second (the
#      hourly group at its own interval);
#   3. once a few samples are stored, runs every PromQL expression of every panel of every
#      Grafana dashboard under grafana/ (template variables replaced) and every label_values()
#      variable query, and fails when one errors or returns nothing (except the panels in
#      YOUNG_EMPTY below, which need days of history: they must succeed and be empty); and
#      fails when a panel in HEALTHY below shows a value outside its green threshold (the
#      demo is a healthy fleet: a panel that is yellow or red on it misleads);
#   4. fails when a rule's health is not "ok" (for a rule of a group with an interval of 10
#      minutes or more that has not been evaluated yet: when its query, run now, fails or is
#      empty), when no seat alert (AvePointTenant*) is pending or firing on the demo data, or
#      when an exporter-health alert is (the demo is healthy);
#   5. checks OpenMetrics: Prometheus's own scrapes were served as OpenMetrics (it asks for it
#      first), and the OpenMetrics answer parses with prometheus_client's OpenMetrics parser.
# Usage: .ci/prometheus-e2e.sh [path/to/avepoint-elements-exporter]
set -euo pipefail
CI_NAME=prometheus-e2e
source "$(dirname "$0")/lib.sh"
ci_init "${1:-}"

# A first run writes its state at clean shutdown; every time in it is then moved 20 minutes
# back, as if the demo had been running that long.
exporter_port=$(free_port)
"$bin" --demo --web.listen-address "127.0.0.1:$exporter_port" --persistence.file "$tmp/state" >"$tmp/exporter.log" 2>&1 &
exporter_pid=$!
pids="$pids $exporter_pid"
wait_for "http://127.0.0.1:$exporter_port/-/ready" 30 "$exporter_pid"
kill -TERM "$exporter_pid"
wait "$exporter_pid" || { echo "prometheus-e2e: the first demo run did not shut down cleanly" >&2; exit 1; }
python3 - "$tmp/state" <<'PY'
import json, sys
SHIFT = 1200  # seconds: more than the dashboard's 900 s yellow threshold
TIMES = ("written_at", "last_poll", "last_success", "failing_since", "next_due")
path = sys.argv[1]
lines = []
with open(path, encoding="utf-8") as f:
    for line in f:
        record = json.loads(line)
        for body in record.values():
            for key in TIMES:
                if isinstance(body, dict) and isinstance(body.get(key), (int, float)):
                    body[key] -= SHIFT
        lines.append(json.dumps(record, ensure_ascii=False))
with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
PY

exporter_port=$(free_port)
"$bin" --demo --web.listen-address "127.0.0.1:$exporter_port" --persistence.file "$tmp/state" >"$tmp/exporter.log" 2>&1 &
exporter_pid=$!
pids="$pids $exporter_pid"
wait_for "http://127.0.0.1:$exporter_port/-/ready" 30 "$exporter_pid"

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $root/deploy/prometheus/rules.yml
scrape_configs:
  - job_name: avepoint-elements-exporter
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
EOF

start_prometheus

# Wait (polling) until Prometheus holds at least 15 scrapes of every seat series (about 15 s at
# 1 s, which spans three demo polls) so that rate(), deriv() and predict_linear() have data.
want_scrapes=15
deadline=$((SECONDS + 90))
while :; do
  n=$(curl -fsS "$prom/api/v1/query" \
        --data-urlencode 'query=min(count_over_time(available_user_seats{job="avepoint-elements-exporter"}[5m]))' 2>/dev/null |
      python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null || echo 0)
  kill -0 "$exporter_pid" 2>/dev/null || { echo "prometheus-e2e: the exporter exited" >&2; exit 1; }
  kill -0 "$prometheus_pid" 2>/dev/null || { echo "prometheus-e2e: prometheus exited" >&2; exit 1; }
  [ "$n" -lt "$want_scrapes" ] || break
  [ "$SECONDS" -lt "$deadline" ] || { echo "prometheus-e2e: only $n scrapes stored after 90 s" >&2; exit 1; }
  sleep 0.5
done

# OpenMetrics as Prometheus asks for it: the exact Accept header of Prometheus 2.x.
python3 -c 'import prometheus_client' 2>/dev/null || pip install -q prometheus_client
curl -fsS -o "$tmp/om.txt" -D "$tmp/om.headers" \
  -H 'Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' \
  "http://127.0.0.1:$exporter_port/metrics"
grep -qi '^content-type: application/openmetrics-text; version=1.0.0' "$tmp/om.headers" ||
  { echo "prometheus-e2e: no OpenMetrics answer to Prometheus's Accept header" >&2; cat "$tmp/om.headers" >&2; exit 1; }
python3 - "$tmp/om.txt" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
assert text.endswith("# EOF\n"), "no # EOF at the end"
families = {f.name: f for f in text_string_to_metric_families(text)}
for name, kind in [("available_user_seats", "gauge"), ("avepoint_exporter_api_requests", "counter"),
                   ("avepoint_exporter_poll_duration_seconds", "histogram")]:
    assert families.get(name) is not None and families[name].type == kind, (name, families.get(name))
samples = sum(len(f.samples) for f in families.values())
print(f"prometheus-e2e: OpenMetrics answer parses: {len(families)} families, {samples} samples")
PY

PROM="$prom" python3 - "$root"/grafana <<'PY'
import json, os, re, sys, urllib.parse, urllib.request

prom = os.environ["PROM"]
grafana_dir = sys.argv[1]
failures = []

# Panels that need days of history (like the forecast alert they mirror): empty on a young
# Prometheus, which is what they must be on a fresh demo.
YOUNG_EMPTY = {"Days until exhaustion (trend of the last 7 days)"}
# Panels that say whether the fleet is healthy: on the healthy demo every value they show must
# be inside their green threshold step.
HEALTHY = {"Targets down", "Oldest successful poll", "Config reload",
           "Days until exhaustion (trend of the last 7 days)"}

def colour(steps, value):
    """The colour Grafana gives `value` under absolute threshold `steps`."""
    found = None
    for step in steps:
        if step.get("value") is None or value >= step["value"]:
            found = step.get("color")
    return found or ""

def api(path, params=None):
    data = urllib.parse.urlencode(params).encode() if params is not None else None
    try:
        with urllib.request.urlopen(prom + path, data=data, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # Prometheus answers 400/422 with a JSON error body
        try:
            return json.load(e)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}"}

# Grafana's built-in variables; every dashboard variable ($customer, ${tenant_type}, ...) matches all.
BUILTIN = {"__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
           "__range": "1h", "__range_s": "3600", "__range_ms": "3600000"}
VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")

def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTIN:
            return BUILTIN[name]
        if name.startswith("__"):
            raise ValueError(f"unknown Grafana built-in variable ${name}")
        return ".*"
    return VAR.sub(repl, expr)

def panels_of(container):
    for p in container.get("panels", []):
        yield p
        yield from panels_of(p)  # panels nested in (collapsed) rows

files = sorted(os.path.join(d, f) for d, _, fs in os.walk(grafana_dir) for f in fs if f.endswith(".json"))
if not files:
    failures.append(f"no dashboard JSON under {grafana_dir}")
panel_queries = 0
variable_queries = 0
healthy_checked = set()
for path in files:
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
    for panel in panels_of(dashboard):
        for t in panel.get("targets", []):
            if not t.get("expr"):
                continue
            where = f"{os.path.basename(path)}: panel {panel.get('title')!r} target {t.get('refId')}"
            try:
                expr = substitute(t["expr"])
            except ValueError as e:
                failures.append(f"{where}: {e}")
                continue
            panel_queries += 1
            r = api("/api/v1/query", {"query": expr})
            if r.get("status") != "success":
                failures.append(f"{where}: query failed: {r.get('error')}\n    {expr}")
            elif panel.get("title") in YOUNG_EMPTY:
                # Empty here, so what it shows with history is checked by promtool, on this
                # very expression, in the forecast's unit tests.
                forecast_tests = os.path.join(os.path.dirname(grafana_dir), "deploy", "prometheus",
                                              "rules_forecast_test.yml")
                with open(forecast_tests, encoding="utf-8") as f:
                    if f"count by (tenant_id) ({expr})" not in f.read():
                        failures.append(f"{where}: its expression is not the one tested in "
                                        f"{forecast_tests} (update the test)\n    {expr}")
                if r["data"]["result"]:
                    failures.append(f"{where}: needs days of history, yet shows "
                                    f"{len(r['data']['result'])} series on a fresh demo\n    {expr}")
            elif r["data"]["resultType"] in ("vector", "matrix") and not r["data"]["result"]:
                failures.append(f"{where}: empty result\n    {expr}")
            if r.get("status") == "success" and panel.get("title") in HEALTHY:
                healthy_checked.add(panel.get("title"))
                steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
                for sample in r["data"]["result"] if r["data"]["resultType"] == "vector" else []:
                    v = float(sample["value"][1])
                    c = colour(steps, v)
                    if "green" not in c:
                        failures.append(f"{where}: {c or 'no colour'} for {v:g} on the healthy demo "
                                        f"({sample['metric'] or 'no labels'})\n    {expr}")
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*", q)
        where = f"{os.path.basename(path)}: variable ${v.get('name')}"
        if not m:
            failures.append(f"{where}: unsupported variable query {q!r}")
            continue
        variable_queries += 1
        params = {"match[]": substitute(m.group(1).strip())} if m.group(1) else None
        url = f"/api/v1/label/{m.group(2)}/values"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        r = api(url)
        if r.get("status") != "success":
            failures.append(f"{where}: {q} failed: {r.get('error')}")
        elif not r["data"]:
            failures.append(f"{where}: {q} has no values")

if files and healthy_checked != HEALTHY:
    failures.append(f"panels to check for health not found: {sorted(HEALTHY - healthy_checked)}")

rules = api("/api/v1/rules")
n_rules = 0
for g in rules.get("data", {}).get("groups", []):
    for rule in g.get("rules", []):
        n_rules += 1
        if rule.get("health") == "unknown" and g.get("interval", 0) >= 600:
            # A group with a long interval (the hourly one) may not have been evaluated yet in
            # this short run: its query, evaluated now, must succeed and return data.
            r = api("/api/v1/query", {"query": rule.get("query", "")})
            if r.get("status") != "success" or not r["data"]["result"]:
                failures.append(f"rule {rule.get('name')} (group {g.get('name')}, not evaluated "
                                f"yet): its query fails or is empty: {r.get('error')!r}")
        elif rule.get("health") != "ok":
            failures.append(f"rule {rule.get('name')} (group {g.get('name')}): health "
                            f"{rule.get('health')!r}, lastError: {rule.get('lastError')!r}")
if n_rules == 0:
    failures.append("Prometheus loaded no rules from deploy/prometheus/rules.yml")

seat = api("/api/v1/query", {"query": 'ALERTS{alertname=~"AvePointTenant.*"}'})["data"]["result"]
if not seat:
    failures.append("no AvePointTenant* alert is pending or firing on the demo data")
by_alert = {}
for a in seat:
    m = a["metric"]
    by_alert.setdefault((m.get("alertname"), m.get("alertstate")), []).append(
        f"{m.get('customer_name')} / {m.get('tenant_name')} ({m.get('tenant_type')})")
for (name, state), tenants in sorted(by_alert.items()):
    more = f" and {len(tenants) - 3} more" if len(tenants) > 3 else ""
    print(f"prometheus-e2e: {name} {state} for {len(tenants)} tenant(s): {', '.join(tenants[:3])}{more}")
om = api("/api/v1/query", {"query": 'sum(avepoint_exporter_scrapes_total{format="openmetrics"})'})["data"]["result"]
if not om or float(om[0]["value"][1]) < 1:
    failures.append("Prometheus's scrapes were not served as OpenMetrics "
                    f"(avepoint_exporter_scrapes_total{{format=\"openmetrics\"}}: {om})")
health = api("/api/v1/query", {"query": 'ALERTS{alertname=~"AvePointExporter.*"}'})["data"]["result"]
for a in health:
    failures.append(f"exporter-health alert {a['metric'].get('alertname')} is "
                    f"{a['metric'].get('alertstate')} on the healthy demo: {a['metric']}")

if failures:
    print("prometheus-e2e: FAILED", file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print(f"prometheus-e2e: {panel_queries} panel queries ok, {variable_queries} variable queries ok, "
      f"{n_rules} rules healthy, {len(seat)} seat alerts pending or firing "
      f"({len(files)} dashboard{'s' if len(files) != 1 else ''})")
PY
