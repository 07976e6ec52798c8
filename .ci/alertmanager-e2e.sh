#!/usr/bin/env bash
# The whole alerting chain, for real: what a person at the MSP receives.
#   exporter --demo -> Prometheus (the shipped rules) -> Alertmanager (the shipped config) ->
#   a webhook sink on 127.0.0.1 standing in for the service desk and the platform team.
#
# Set-up (everything on loopback, every process stopped at exit):
#   1. the rules are deploy/prometheus/rules.yml with every `for:` cut to FOR (20s), and
#      alertmanager.yml is deploy/alertmanager/alertmanager.yml with its receivers' URLs
#      pointed at the sink and group_wait/group_interval cut to GROUP (10s); diffs prove that
#      nothing else differs (repeat_interval, routes, grouping and inhibitions are shipped ones);
#   2. exporter A runs --demo: Contoso's tenant "Contoso Sales" runs out of seats about a
#      minute after start and "Contoso CRM" is low on seats (src/demo/mod.rs);
#   3. a customer whose targets are down: the demo has none (every demo target answers), so a
#      second exporter B polls one demo customer, Tailspin Toys (whose tailspintoys.com is out
#      of seats from the start), through a proxy to A's simulated API. Once B has polled it,
#      the proxy is stopped: B's Tailspin targets fail (target_up 0) while B keeps their
#      last-good seat series (stale_after 1h), exactly what a real outage of one customer looks
#      like. Prometheus drops A's own copy of Tailspin at scrape time, so Tailspin's only seat
#      data is that stale copy: its out-of-seats alert fires and must not reach the service
#      desk (inhibited by AvePointExporterTargetDown, which goes to the platform team);
#   4. the demo buys seats for Contoso Sales after 20 minutes out, counted in polls of that
#      target (the demo's clock); the test sends those polls to the demo API itself (a burst of
#      first-page requests) instead of waiting, and the real exporter's next poll sees the
#      purchase.
# Asserts, polling with deadlines:
#   - the service desk gets notifications for one group only, Contoso's (grouped by customer),
#     and one of them lists Contoso Sales as out of seats with its free and assigned seats in
#     the summary and an absolute runbook_url (rules.yml's runbook base + alert name);
#   - no service-desk notification for Tailspin Toys, although its out-of-seats alert reached
#     Alertmanager (checked: suppressed, inhibited by its TargetDown);
#   - exporter-health alerts (AvePointExporter*) reach the platform receiver (TargetDown for
#     Tailspin) and never the service desk; the platform receives no seat alert;
#   - after the purchase, a notification with Contoso Sales' alert resolved.
# Usage: .ci/alertmanager-e2e.sh [path/to/avepoint-elements-exporter]
set -euo pipefail
CI_NAME=alertmanager-e2e
source "$(dirname "$0")/lib.sh"
ci_init "${1:-}"
FOR=${FOR:-20s}
GROUP=${GROUP:-10s}
DEADLINE=${DEADLINE:-240}
alertmanager_bin=$(command -v alertmanager || command -v prometheus-alertmanager || true)
[ -n "$alertmanager_bin" ] || { echo "$CI_NAME: alertmanager is not installed (apt-get install prometheus-alertmanager)" >&2; exit 1; }
support=(python3 "$root/.ci/alertmanager_e2e_support.py")
tailspin=5d880000-1a9b-4c3e-8f21-77e20000cc03
contoso=f1620000-b9d4-4a0e-a165-97db0000fc15

# Extra logs shown on failure (lib.sh shows the exporter's and Prometheus').
e2e_cleanup() {
  local status=$?
  set +e # errexit would end this trap at the (exit) below, before anything is stopped
  if [ "$status" -ne 0 ]; then
    echo "--- exporter B log (last 20 lines)"; tail -n 20 "$tmp/exporter-b.log" 2>/dev/null || true
    echo "--- alertmanager log (last 20 lines)"; tail -n 20 "$tmp/alertmanager.log" 2>/dev/null || true
    echo "--- notifications received"; cut -c1-400 "$tmp/notifications.jsonl" 2>/dev/null || true
  fi
  (exit "$status") # ci_cleanup stops everything, removes $tmp and exits with the status it is called with
  ci_cleanup
}
trap e2e_cleanup EXIT

# Polls COMMAND (a shell snippet) every 0.5 s until it succeeds, for at most SECONDS.
poll_until() {
  local what=$1 seconds=$2 cmd=$3 deadline=$((SECONDS + $2))
  until eval "$cmd" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$CI_NAME: timed out after $seconds s waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}

# ---------------------------------------------------------------- 1. test copies, proven
sed -E "s/^([[:space:]]*for:)[[:space:]]+[0-9a-z]+/\1 $FOR/" deploy/prometheus/rules.yml >"$tmp/rules.yml"
if ! diff <(grep -Ev '^[[:space:]]*for:' deploy/prometheus/rules.yml) <(grep -Ev '^[[:space:]]*for:' "$tmp/rules.yml") >/dev/null; then
  echo "$CI_NAME: the test copy of the rules differs from rules.yml in more than its for: lines" >&2
  exit 1
fi
grep -qE "^[[:space:]]*for: $FOR([[:space:]]|$)" "$tmp/rules.yml" || { echo "$CI_NAME: no for: line was cut to $FOR" >&2; exit 1; }
promtool check rules "$tmp/rules.yml" >/dev/null

sink_port_file=$tmp/sink.port
"${support[@]}" sink "$sink_port_file" "$tmp/notifications.jsonl" &
pids="$pids $!"
touch "$tmp/notifications.jsonl"
poll_until "the webhook sink" 10 "[ -s '$sink_port_file' ]"
sink="http://127.0.0.1:$(cat "$sink_port_file")"
# Each receiver's url lines point at $sink/<receiver name>; group_wait and group_interval cut.
awk -v sink="$sink" -v group="$GROUP" '
  /^[[:space:]]*- name:[[:space:]]/ { receiver = $3 }
  /^[[:space:]]*- url:[[:space:]]/ { sub(/url:.*/, "url: " sink "/" receiver) }
  /^[[:space:]]*group_(wait|interval):[[:space:]]/ { sub(/:.*/, ": " group) }
  { print }' deploy/alertmanager/alertmanager.yml >"$tmp/alertmanager.yml"
changed='^[[:space:]]*(- url:|group_wait:|group_interval:)'
if ! diff <(grep -Ev "$changed" deploy/alertmanager/alertmanager.yml) <(grep -Ev "$changed" "$tmp/alertmanager.yml") >/dev/null; then
  echo "$CI_NAME: the test copy of alertmanager.yml differs in more than its url, group_wait and group_interval lines" >&2
  exit 1
fi
for receiver in service-desk platform; do
  grep -q "url: $sink/$receiver\$" "$tmp/alertmanager.yml" || { echo "$CI_NAME: receiver $receiver's url was not pointed at the sink" >&2; exit 1; }
done
if grep -E '^[[:space:]]*- url:' "$tmp/alertmanager.yml" | grep -v "$sink/" >/dev/null; then
  echo "$CI_NAME: a receiver url still points away from the sink" >&2
  exit 1
fi
amtool check-config "$tmp/alertmanager.yml" >/dev/null 2>&1 || amtool check-config "$tmp/alertmanager.yml"

# ---------------------------------------------------------------- 2. exporter A (--demo)
start=$SECONDS
a_port=$(free_port)
"$bin" --demo --web.listen-address "127.0.0.1:$a_port" >"$tmp/exporter.log" 2>&1 &
a_pid=$!
pids="$pids $a_pid"
wait_for "http://127.0.0.1:$a_port/-/ready" 30 "$a_pid"
demo_api=$(sed -n 's/.*msg="demo mode: polling the built-in simulated Elements API" api=\([0-9.:]*\).*/\1/p' "$tmp/exporter.log" | head -1)
[ -n "$demo_api" ] || { echo "$CI_NAME: the demo API's address is not in the exporter's log" >&2; exit 1; }

# ---------------------------------------------------------------- 3. exporter B, Tailspin down
"${support[@]}" proxy "$tmp/proxy.port" "$demo_api" &
proxy_pid=$!
pids="$pids $proxy_pid"
poll_until "the proxy" 10 "[ -s '$tmp/proxy.port' ]"
proxy="127.0.0.1:$(cat "$tmp/proxy.port")"
cat >"$tmp/exporter-b.yaml" <<EOF
# The demo API's own (public, fixed) credentials: see src/demo/mod.rs.
elements:
  base_url: http://$proxy
  token_url: http://$proxy/connect/token
  client_id: demo-client
  client_secret: demo-secret
  retries: 0
  timeout: 2s
poll:
  interval: 2s
  stale_after: 1h
customers:
  - id: $tailspin
    name: Tailspin Toys
    tenant_types: [google, microsoft_365]
EOF
b_port=$(free_port)
"$bin" --config.file "$tmp/exporter-b.yaml" --web.listen-address "127.0.0.1:$b_port" >"$tmp/exporter-b.log" 2>&1 &
b_pid=$!
pids="$pids $b_pid"
wait_for "http://127.0.0.1:$b_port/-/ready" 30 "$b_pid"
b_metrics="curl -fsS http://127.0.0.1:$b_port/metrics"
poll_until "exporter B to poll Tailspin" 30 "[ \$($b_metrics | grep -c '^avepoint_exporter_target_up{customer_id=\"$tailspin\",.*} 1\$') -eq 2 ]"
kill "$proxy_pid"
poll_until "Tailspin's targets to fail on exporter B" 30 "[ \$($b_metrics | grep -c '^avepoint_exporter_target_up{customer_id=\"$tailspin\",.*} 0\$') -eq 2 ]"
# Without its last-good series the inhibition would have nothing to inhibit.
# (Read whole before grep: grep -q would close the pipe on curl, failing it under pipefail.)
$b_metrics >"$tmp/exporter-b.metrics"
grep -q "^available_user_seats{customer_id=\"$tailspin\",.*tenant_name=\"tailspintoys.com\"} 0\$" "$tmp/exporter-b.metrics" ||
  { echo "$CI_NAME: exporter B lost Tailspin's last-good seat series" >&2; exit 1; }
echo "$CI_NAME: exporter B: Tailspin Toys' targets down, its out-of-seats tenant still exported (last good)"

# ---------------------------------------------------------------- Alertmanager, Prometheus
am_port=$(free_port)
"$alertmanager_bin" \
  --config.file="$tmp/alertmanager.yml" \
  --storage.path="$tmp/am-data" \
  --web.listen-address="127.0.0.1:$am_port" \
  --cluster.listen-address= \
  --log.level=warn >"$tmp/alertmanager.log" 2>&1 &
am_pid=$!
pids="$pids $am_pid"
am="http://127.0.0.1:$am_port"
wait_for "$am/-/ready" 30 "$am_pid"

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files:
  - $tmp/rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$am_port"]
scrape_configs:
  - job_name: avepoint-elements-exporter
    static_configs:
      - targets: ["127.0.0.1:$a_port", "127.0.0.1:$b_port"]
    metric_relabel_configs:
      # Tailspin Toys' data comes from exporter B only (see the header).
      - source_labels: [instance, customer_id]
        regex: '127\.0\.0\.1:$a_port;$tailspin'
        action: drop
EOF
start_prometheus
echo "$CI_NAME: exporters, Alertmanager and Prometheus up after $((SECONDS - start)) s (for: $FOR, group_wait/group_interval: $GROUP)"

# ---------------------------------------------------------------- 4. what a person gets
NOTIFICATIONS="$tmp/notifications.jsonl" AM="$am" DEADLINE="$DEADLINE" DEMO_API="$demo_api" \
  CONTOSO="$contoso" TAILSPIN="$tailspin" SUPPORT="$root/.ci/alertmanager_e2e_support.py" \
  RUNBOOK_BASE="$(sed -n 's/^# Runbook base: //p' deploy/prometheus/rules.yml)" \
  PIDS="$a_pid $b_pid $am_pid $prometheus_pid" python3 - <<'PY'
import json, os, re, subprocess, sys, time, urllib.request

env = os.environ
contoso, tailspin, base = env["CONTOSO"], env["TAILSPIN"], env["RUNBOOK_BASE"]
start = time.monotonic()
deadline = start + int(env["DEADLINE"])
failures = []

def say(msg):
    print(f"alertmanager-e2e: {time.monotonic() - start:5.0f} s  {msg}", flush=True)

def notifications():
    with open(env["NOTIFICATIONS"]) as f:
        return [json.loads(line) for line in f if line.strip()]

def alive():
    for pid in env["PIDS"].split():
        try:
            os.kill(int(pid), 0)
        except OSError:
            sys.exit(f"alertmanager-e2e: process {pid} exited")

def wait(what, check, until):
    while True:
        alive()
        found = check()
        if found:
            return found
        if time.monotonic() > until:
            sys.exit(f"alertmanager-e2e: FAILED: timed out waiting for {what}")
        time.sleep(1)

def alerts(receiver, status=None):
    for n in notifications():
        if n["path"] != "/" + receiver:
            continue
        for a in n["body"]["alerts"]:
            if status is None or a["status"] == status:
                yield n, a

def contoso_sales_out(status):
    return [a for _, a in alerts("service-desk", status)
            if a["labels"].get("alertname") == "AvePointTenantOutOfSeats"
            and a["labels"].get("tenant_name") == "Contoso Sales"]

def tailspin_suppressed():
    with urllib.request.urlopen(env["AM"] + "/api/v2/alerts", timeout=10) as r:
        return [a for a in json.load(r)
                if a["labels"].get("alertname") == "AvePointTenantOutOfSeats"
                and a["labels"].get("customer_id") == tailspin
                and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]

def platform_target_down():
    return [a for _, a in alerts("platform", "firing")
            if a["labels"].get("alertname") == "AvePointExporterTargetDown"
            and a["labels"].get("customer_id") == tailspin]

# Firing: Contoso's ticket, Tailspin's inhibited alert, Tailspin's TargetDown on the platform.
sales = wait("a service-desk notification with Contoso Sales out of seats", lambda: contoso_sales_out("firing"), deadline)[0]
say(f"service desk: {sales['annotations'].get('summary')}")
wait("Tailspin Toys' out-of-seats alert to be in Alertmanager, suppressed by an inhibition",
     tailspin_suppressed, deadline)
say("Alertmanager: Tailspin Toys' out-of-seats alert suppressed (inhibited)")
wait("AvePointExporterTargetDown for Tailspin Toys on the platform receiver", platform_target_down, deadline)
say("platform: AvePointExporterTargetDown for Tailspin Toys")

summary = sales["annotations"].get("summary", "")
if not re.fullmatch(r"Tenant Contoso Sales \(microsoft_365\) of Contoso is out of seats: 0 free, [1-9][0-9]* assigned", summary):
    failures.append(f"Contoso Sales' summary does not name tenant, type, customer, free and assigned seats: {summary!r}")
if sales["annotations"].get("runbook_url") != base + "avepointtenantoutofseats":
    failures.append(f"Contoso Sales' runbook_url is {sales['annotations'].get('runbook_url')!r}, not {base}avepointtenantoutofseats")
if not re.match(r"https?://", sales["annotations"].get("runbook_url", "")):
    failures.append("the runbook_url is not absolute")
if sales["labels"].get("customer_name") != "Contoso":
    failures.append(f"Contoso Sales' alert has customer_name {sales['labels'].get('customer_name')!r}")

# The purchase, at the demo's own end of the out-of-seats round, and the resolved notification.
polls = subprocess.run([sys.executable, env["SUPPORT"], "fast-forward", env["DEMO_API"], contoso, "0",
                        "Contoso Sales", "400"], check=True, capture_output=True, text=True).stdout.strip()
say(f"demo: Contoso Sales bought seats (demo clock advanced by {polls} polls)")
wait("a service-desk notification with Contoso Sales' out-of-seats alert resolved",
     lambda: contoso_sales_out("resolved"), time.monotonic() + 90)
say("service desk: Contoso Sales' out-of-seats alert resolved")

# Everything the two receivers got over the whole run.
desk = [n for n in notifications() if n["path"] == "/service-desk"]
platform = [n for n in notifications() if n["path"] == "/platform"]
others = [n["path"] for n in notifications() if n["path"] not in ("/service-desk", "/platform")]
if others:
    failures.append(f"notifications on unexpected paths: {sorted(set(others))}")
desk_groups = {n["body"]["groupKey"] for n in desk}
if len(desk_groups) != 1:
    failures.append(f"the service desk got {len(desk_groups)} notification groups, expected one (Contoso's): {sorted(desk_groups)}")
for n in desk:
    if n["body"].get("receiver") != "service-desk":
        failures.append(f"a notification on /service-desk came from receiver {n['body'].get('receiver')!r}")
    if n["body"]["groupLabels"] != {"customer_id": contoso}:
        failures.append(f"service-desk notification grouped by {n['body']['groupLabels']}, expected Contoso's customer_id")
    for a in n["body"]["alerts"]:
        l = a["labels"]
        if not l.get("alertname", "").startswith("AvePointTenant"):
            failures.append(f"the service desk got {l.get('alertname')} (not a seat alert)")
        if l.get("customer_id") == tailspin:
            failures.append(f"the service desk got {l.get('alertname')} for Tailspin Toys, whose targets are down")
        elif l.get("customer_id") != contoso:
            failures.append(f"the service desk got {l.get('alertname')} for customer {l.get('customer_name')!r}")
listed = {a["labels"].get("tenant_name") for n in desk for a in n["body"]["alerts"]}
if "Contoso CRM" not in listed:
    failures.append(f"Contoso's notifications do not list its low tenant Contoso CRM (listed: {sorted(listed)})")
for n in platform:
    if n["body"].get("receiver") != "platform":
        failures.append(f"a notification on /platform came from receiver {n['body'].get('receiver')!r}")
    if n["body"]["groupLabels"].keys() != {"alertname"}:
        failures.append(f"platform notification grouped by {n['body']['groupLabels']}, expected alertname")
    for a in n["body"]["alerts"]:
        if not a["labels"].get("alertname", "").startswith("AvePointExporter"):
            failures.append(f"the platform receiver got {a['labels'].get('alertname')} for {a['labels'].get('customer_name')}")

say(f"service desk: {len(desk)} notification(s), one group (Contoso), tenants {sorted(listed)}; "
    f"platform: {len(platform)} notification(s), alerts "
    f"{sorted({a['labels']['alertname'] for n in platform for a in n['body']['alerts']})}")
if failures:
    print("alertmanager-e2e: FAILED", file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print("alertmanager-e2e: all checks passed")
PY
