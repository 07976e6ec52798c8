#!/usr/bin/env bash
# Real Prometheus scrapes the exporter over TLS with a client certificate and basic auth, using
# examples/web-config.yml and the scrape_config of docs/security.md:
#   1. makes a server CA, a client CA and their certificates with openssl;
#   2. starts the exporter (--demo) with examples/web-config.yml (certificates beside it);
#   3. starts Prometheus with two jobs: "secure" as docs/security.md says (https, tls_config with CA,
#      client certificate and key, basic_auth with password_file) and "no-client-cert" without
#      the client certificate;
#   4. passes when "secure" is up with seat series stored and "no-client-cert" is down.
# Usage: .ci/prometheus-tls.sh [path/to/avepoint-elements-exporter]
set -euo pipefail
CI_NAME=prometheus-tls
source "$(dirname "$0")/lib.sh"
ci_init "${1:-}"
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }

# Certificates: server CA -> exporter (IP 127.0.0.1); Prometheus CA -> Prometheus' client cert.
cd "$tmp"
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
leaf() { # name ca ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
ca exporter-ca
ca prometheus-ca
leaf exporter exporter-ca "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf prometheus prometheus-ca "subjectAltName=DNS:prometheus
extendedKeyUsage=clientAuth"
cp "$root/examples/web-config.yml" web-config.yml
printf 'change-me' >exporter-password
cd "$root"

exporter_port=$(free_port)
"$bin" --demo --web.config.file "$tmp/web-config.yml" \
  --web.listen-address "127.0.0.1:$exporter_port" >"$tmp/exporter.log" 2>&1 &
pids="$pids $!"

cat >"$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: secure
    scheme: https
    tls_config:
      ca_file: $tmp/exporter-ca.crt
      cert_file: $tmp/prometheus.crt
      key_file: $tmp/prometheus.key
    basic_auth:
      username: prometheus
      password_file: $tmp/exporter-password
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
  - job_name: no-client-cert
    scheme: https
    tls_config:
      ca_file: $tmp/exporter-ca.crt
    basic_auth:
      username: prometheus
      password_file: $tmp/exporter-password
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
YML
start_prometheus

query() {
  curl -fsS "$prom/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")' 2>/dev/null ||
    echo none
}
deadline=$((SECONDS + 90))
while :; do
  secure=$(query 'up{job="secure"}')
  plain=$(query 'up{job="no-client-cert"}')
  seats=$(query 'count(available_user_seats{job="secure"})')
  if [ "$secure" = 1 ] && [ "$plain" = 0 ] && [ "$seats" != none ]; then
    echo "prometheus-tls: job secure up with $seats seat series over mTLS + basic auth; job without a client certificate down"
    exit 0
  fi
  [ "$SECONDS" -lt "$deadline" ] || {
    echo "prometheus-tls: secure up=$secure, no-client-cert up=$plain, seat series=$seats after 90 s" >&2
    curl -fsS "$prom/api/v1/targets" | python3 -c 'import json,sys; [print(t["labels"]["job"], t["health"], t["lastError"]) for t in json.load(sys.stdin)["data"]["activeTargets"]]' >&2 || true
    exit 1
  }
  sleep 0.5
done
