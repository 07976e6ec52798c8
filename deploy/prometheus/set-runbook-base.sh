#!/usr/bin/env bash
# Sets the base of every alert's runbook_url: rewrites the "# Runbook base:" line and every
# runbook_url of deploy/prometheus/rules.yml, the expected runbook_urls of its unit tests, and
# regenerates deploy/kubernetes/prometheus-operator/prometheusrule.yaml. Each runbook_url is
# the base followed by the alert's name in lower case, so the base ends where that name starts:
#   deploy/prometheus/set-runbook-base.sh https://git.msp.example/infra/avepoint-elements-exporter/-/blob/main/docs/runbooks.md#
#   deploy/prometheus/set-runbook-base.sh https://wiki.msp.example/runbooks/avepoint/
# Then rerun the unit tests (promtool test rules ...) and deploy the rules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
new=${1:-}
case "$new" in
  http://*|https://*) ;;
  *) echo "usage: $0 BASE_URL   (absolute: http:// or https://)" >&2; exit 2 ;;
esac
case "$new" in *[[:space:]\"\'\\]*) echo "set-runbook-base: the base must not contain spaces, quotes or backslashes" >&2; exit 2 ;; esac
rules=$here/rules.yml
old=$(sed -n 's/^# Runbook base: //p' "$rules")
[ -n "$old" ] || { echo "set-runbook-base: no '# Runbook base:' line in $rules" >&2; exit 1; }
# Literal text in a sed s||| pattern and replacement.
old_re=$(printf '%s' "$old" | sed 's/[][\.*^$|/]/\\&/g')
new_rep=$(printf '%s' "$new" | sed 's/[&|]/\\&/g')
for f in "$rules" "$here/rules_test.yml" "$here/rules_forecast_test.yml"; do
  sed -i "s|^# Runbook base: $old_re\$|# Runbook base: $new_rep|; s|\\(runbook_url: \"\\{0,1\\}\\)$old_re|\\1$new_rep|" "$f"
done
bash "$here/../kubernetes/generate-prometheusrule.sh" --write >/dev/null
echo "set-runbook-base: $old -> $new (rules.yml, its unit tests, the PrometheusRule)"
