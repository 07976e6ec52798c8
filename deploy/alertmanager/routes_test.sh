#!/usr/bin/env bash
# Routing tests of alertmanager.yml (next to this file): each alert of
# deploy/prometheus/rules.yml, with the labels Prometheus gives it, must reach its receiver and
# no other. Fails as well when rules.yml has an alert that no test below names.
# Needs amtool (Debian: prometheus-alertmanager). After changing routes or receivers, update
# the expected receivers here.
# Usage: deploy/alertmanager/routes_test.sh [path/to/alertmanager.yml]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
config=${1:-$here/alertmanager.yml}
rules=$here/../prometheus/rules.yml
command -v amtool >/dev/null || { echo "routes_test: amtool is not installed (apt-get install prometheus-alertmanager)" >&2; exit 1; }

amtool check-config "$config" >/dev/null

# receiver | labels of the alert (as Prometheus sends them, plus the scrape's job and instance)
seat='job=avepoint-elements-exporter instance=exporter:9978 severity=warning customer_id=f1620000-b9d4-4a0e-a165-97db0000fc15 customer_name=Contoso tenant_type=microsoft_365 tenant_id=t1 tenant_name=Contoso_Sales'
target='job=avepoint-elements-exporter instance=exporter:9978 severity=warning customer_id=f1620000-b9d4-4a0e-a165-97db0000fc15 tenant_type=microsoft_365'
exporter='job=avepoint-elements-exporter instance=exporter:9978 severity=warning'
cases=(
  "service-desk|alertname=AvePointTenantOutOfSeats $seat"
  "service-desk|alertname=AvePointTenantLowOnSeats $seat"
  "service-desk|alertname=AvePointTenantSeatsForecastExhausted $seat"
  # A customer without a configured name is still a seat alert.
  "service-desk|alertname=AvePointTenantOutOfSeats job=avepoint-elements-exporter instance=exporter:9978 severity=warning customer_id=c2 tenant_type=google tenant_id=C01 tenant_name=tailspintoys.com"
  # Raised to critical by an MSP that wants running out to page: still the service desk's.
  "service-desk|alertname=AvePointTenantOutOfSeats severity=critical customer_id=c1 tenant_type=google tenant_id=C01 tenant_name=x"
  "platform|alertname=AvePointExporterTargetDown $target"
  "platform|alertname=AvePointExporterDataStale $target"
  "platform|alertname=AvePointExporterNotScraped severity=critical job=avepoint-elements-exporter instance=exporter:9978"
  # The absent() half: no job, no instance.
  "platform|alertname=AvePointExporterNotScraped severity=critical"
  "platform|alertname=AvePointExporterConfigReloadFailed $exporter"
  "platform|alertname=AvePointExporterDiscoveryFailing $exporter"
  "platform|alertname=AvePointExporterPersistenceFailing $exporter"
  "platform|alertname=AvePointExporterPollingBehind $exporter"
  "platform|alertname=AvePointExporterApiThrottled $exporter"
  # Not ours (the default route), and not a seat alert because it carries a customer label.
  "platform|alertname=SomethingElse customer_id=c1"
)

failures=0
tested=""
for case in "${cases[@]}"; do
  want=${case%%|*}
  labels=${case#*|}
  # shellcheck disable=SC2086 # the labels are separate arguments
  # (stderr: amtool warns that --config.file wins over its default --alertmanager.url)
  got=$(amtool config routes test --config.file="$config" $labels 2>/dev/null) || true
  name=${labels%% *}
  tested="$tested ${name#alertname=}"
  if [ "$got" = "$want" ]; then
    echo "routes_test: ok: ${name#alertname=} -> $want"
  else
    echo "routes_test: FAILED: ${name#alertname=} ($labels) -> ${got:-nothing}, expected $want" >&2
    failures=$((failures + 1))
  fi
done

for alert in $(sed -n 's/^[[:space:]]*- alert:[[:space:]]*//p' "$rules"); do
  case " $tested " in
    *" $alert "*) ;;
    *) echo "routes_test: FAILED: $alert (in rules.yml) has no routing test here" >&2; failures=$((failures + 1)) ;;
  esac
done

[ "$failures" -eq 0 ] || { echo "routes_test: $failures failure(s)" >&2; exit 1; }
echo "routes_test: all ${#cases[@]} routing tests passed"
