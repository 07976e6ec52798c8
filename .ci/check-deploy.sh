#!/usr/bin/env bash
# Static checks of the deployment kit (deploy/ and grafana/):
#   - every YAML and JSON file parses;
#   - every path the compose file references (build context, Dockerfile, bind-mount sources)
#     and every COPY source of deploy/Dockerfile exists (and is not excluded from the build
#     context by deploy/Dockerfile.dockerignore);
#   - promtool check config / check rules / test rules;
#   - deploy/kubernetes/prometheus-operator/prometheusrule.yaml is exactly what generate-prometheusrule.sh makes
#     from deploy/prometheus/rules.yml, and alertmanagerconfig.yaml what
#     generate-alertmanagerconfig.sh makes from deploy/alertmanager/alertmanager.yml;
#   - Alertmanager: amtool check-config, the routing tests (deploy/alertmanager/routes_test.sh),
#     Prometheus' alerting target is the compose Alertmanager service;
#   - Kubernetes workloads: strict security contexts, probes, the config and secret files the
#     config names are mounted, shard count = replicas; `kubectl kustomize` builds (if kubectl);
#   - systemd-analyze verify and an exposure threshold on the unit (if systemd-analyze);
#   - the example configs pass --check-config (if the exporter binary exists), and the
#     compose file's comment for a real account mounts a config that reads its secret where
#     compose puts it.
# Usage: .ci/check-deploy.sh [path/to/avepoint-elements-exporter]
set -euo pipefail

bin=${1:-target/debug/avepoint-elements-exporter}
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
cd "$(dirname "$0")/.."

ok() { printf 'check-deploy: ok: %s\n' "$*"; }
skip() { printf 'check-deploy: skipped: %s\n' "$*"; }
fail() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- tools
if ! python3 -c 'import yaml' 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null; } || true
  fi
  python3 -c 'import yaml' 2>/dev/null ||
    python3 -m pip install -q pyyaml 2>/dev/null ||
    python3 -m pip install -q --break-system-packages pyyaml
fi
command -v promtool >/dev/null || fail "promtool is not installed (apt-get install prometheus)"
command -v amtool >/dev/null || fail "amtool is not installed (apt-get install prometheus-alertmanager)"

# ---------------------------------------------------------------- structure (python)
python3 - <<'PY'
import fnmatch, glob, json, os, re, shlex, sys
import yaml

failures = []
def fail(msg):
    failures.append(msg)

# Every YAML and JSON file parses.
parsed = {}
files = sorted(p for d in ("deploy", "grafana") for p in glob.glob(f"{d}/**/*", recursive=True)
               if os.path.isfile(p))
n_yaml = n_json = 0
for p in files:
    try:
        with open(p, encoding="utf-8") as f:
            if p.endswith((".yml", ".yaml")):
                parsed[p] = [d for d in yaml.safe_load_all(f) if d is not None]
                n_yaml += 1
            elif p.endswith(".json"):
                parsed[p] = [json.load(f)]
                n_json += 1
    except Exception as e:  # noqa: BLE001 - report any parse error
        fail(f"{p}: does not parse: {e}")
if n_yaml == 0:
    fail("no YAML found under deploy/ and grafana/")

# Compose: build context, Dockerfile, bind-mount sources.
compose_path = "deploy/docker-compose.yml"
compose = parsed.get(compose_path, [{}])[0]
base = os.path.dirname(compose_path)
mount_targets = set()
service_names = set((compose.get("services") or {}).keys())
if not service_names:
    fail(f"{compose_path}: no services")
for name, svc in (compose.get("services") or {}).items():
    build = svc.get("build")
    if build is not None:
        ctx = build if isinstance(build, str) else build.get("context", ".")
        ctx_path = os.path.normpath(os.path.join(base, ctx))
        if not os.path.isdir(ctx_path):
            fail(f"{compose_path}: services.{name}.build.context {ctx!r} -> {ctx_path} does not exist")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        df_path = os.path.normpath(os.path.join(ctx_path, dockerfile))
        if not os.path.isfile(df_path):
            fail(f"{compose_path}: services.{name}.build.dockerfile {dockerfile!r} -> {df_path} does not exist")
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            src, dst = (v.get("source") if v.get("type") == "bind" else None), v.get("target")
        else:
            parts = v.split(":")
            src, dst = parts[0], (parts[1] if len(parts) > 1 else None)
            if not src.startswith((".", "/", "~")):
                src = None  # a named volume
        if dst:
            mount_targets.add((dst, src and os.path.normpath(os.path.join(base, src))))
        if src is not None:
            path = os.path.normpath(os.path.join(base, os.path.expanduser(src)))
            if not os.path.exists(path):
                fail(f"{compose_path}: services.{name}.volumes {v!r}: {path} does not exist")

# Prometheus sends its alerts to the compose stack's Alertmanager, which mounts the reference
# config (deploy/alertmanager/alertmanager.yml).
prom_cfg = parsed.get("deploy/prometheus/prometheus.yml", [{}])[0]
am_targets = [t for am in (prom_cfg.get("alerting") or {}).get("alertmanagers") or []
              for sc in am.get("static_configs") or [] for t in sc.get("targets") or []]
am_svc = (compose.get("services") or {}).get("alertmanager")
if am_svc is None:
    fail(f"{compose_path}: no alertmanager service")
else:
    if not any(src == os.path.normpath("deploy/alertmanager/alertmanager.yml") for _, src in mount_targets):
        fail(f"{compose_path}: the alertmanager service does not mount deploy/alertmanager/alertmanager.yml")
    if not any(a.startswith("--config.file=") and any(dst == a.split("=", 1)[1] for dst, _ in mount_targets)
               for a in am_svc.get("command") or []):
        fail(f"{compose_path}: alertmanager's --config.file is not a mounted file")
if am_targets != ["alertmanager:9093"]:
    fail(f"deploy/prometheus/prometheus.yml: alerting targets {am_targets}, expected the compose service alertmanager:9093")
if "alertmanager" not in ((compose.get("services") or {}).get("prometheus") or {}).get("depends_on", []):
    fail(f"{compose_path}: prometheus does not depend on alertmanager")

# Dockerfile COPY sources exist relative to the build context (the repository root) and are
# not excluded by the Dockerfile-specific .dockerignore.
dockerfile_path = "deploy/Dockerfile"
ignore = []
if os.path.isfile(dockerfile_path + ".dockerignore"):
    with open(dockerfile_path + ".dockerignore") as f:
        ignore = [l.strip() for l in f if l.strip() and not l.startswith("#")]
n_copy = 0
with open(dockerfile_path) as f:
    text = f.read().replace("\\\n", " ")
for line in text.splitlines():
    m = re.match(r"\s*(COPY|ADD)\s+(.*)", line, re.I)
    if not m:
        continue
    args = m.group(2).strip()
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    words = [w for w in words if not w.startswith("--")]
    if any(fl.startswith("--from=") for fl in flags):
        continue  # from another stage
    for src in words[:-1]:
        n_copy += 1
        if not glob.glob(src):
            fail(f"{dockerfile_path}: {line.strip()!r}: {src} does not exist in the build context (repository root)")
        for pat in ignore:
            if fnmatch.fnmatch(src.rstrip("/"), pat.lstrip("/").rstrip("/")):
                fail(f"{dockerfile_path}: {src} is excluded by {dockerfile_path}.dockerignore ({pat})")
if n_copy == 0:
    fail(f"{dockerfile_path}: no COPY line")
if not re.search(r"^USER\s+(65532|nonroot)", text, re.M):
    fail(f"{dockerfile_path}: the final stage must run as USER 65532 (nonroot)")

# The compose exporter's --persistence.file lies on a named volume whose mount point the
# image creates for its user (a fresh named volume takes that owner).
exporter = (compose.get("services") or {}).get("exporter") or {}
state = next((a.split("=", 1)[1] for a in exporter.get("command") or [] if a.startswith("--persistence.file=")), None)
if state is None:
    fail(f"{compose_path}: the exporter has no --persistence.file")
else:
    state_dir = os.path.dirname(state)
    if not any(dst == state_dir and src is None for dst, src in mount_targets):
        fail(f"{compose_path}: --persistence.file={state}: {state_dir} is not a named volume")
    if not re.search(r"^COPY\s+--from=\S+\s+--chown=65532:65532\s+\S+\s+" + re.escape(state_dir) + r"\s*$", text, re.M):
        fail(f"{dockerfile_path}: {state_dir} is not created for user 65532 (COPY --chown=65532:65532 ... {state_dir})")

# The systemd unit keeps its state in its StateDirectory.
unit_path = "deploy/systemd/avepoint-elements-exporter.service"
with open(unit_path) as f:
    unit = f.read()
m = re.search(r"--persistence\.file=/var/lib/([^/\s]+)/\S+", unit)
if not m:
    fail(f"{unit_path}: ExecStart has no --persistence.file under /var/lib")
elif not re.search(r"^StateDirectory=" + re.escape(m.group(1)) + r"\s*$", unit, re.M):
    fail(f"{unit_path}: --persistence.file is under /var/lib/{m.group(1)} but StateDirectory={m.group(1)} is missing")

# Grafana provisioning fits the compose file.
for p, docs in parsed.items():
    if not p.startswith("grafana/provisioning/"):
        continue
    for doc in docs:
        for prov in doc.get("providers") or []:
            path = (prov.get("options") or {}).get("path")
            if path and not any(dst == path for dst, _ in mount_targets):
                fail(f"{p}: dashboard provider path {path} is not a volume target in {compose_path}")
        for ds in doc.get("datasources") or []:
            host = re.sub(r"^\w+://([^:/]+).*", r"\1", ds.get("url", ""))
            if host not in service_names:
                fail(f"{p}: datasource {ds.get('name')} points at {host!r}, not a service of {compose_path}")

# Grafana dashboards: uid, datasource variable, every panel on ${datasource}.
for p, docs in parsed.items():
    if not (p.startswith("grafana/") and p.endswith(".json")):
        continue
    d = docs[0]
    if not d.get("uid"):
        fail(f"{p}: no uid")
    names = [v.get("name") for v in d.get("templating", {}).get("list", [])]
    if "datasource" not in names:
        fail(f"{p}: no datasource variable")
    def walk(c):
        for panel in c.get("panels", []):
            yield panel
            yield from walk(panel)
    for panel in walk(d):
        for t in panel.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                fail(f"{p}: panel {panel.get('title')!r} target {t.get('refId')} does not use ${{datasource}}")

# Kubernetes workloads.
cfg_docs = parsed.get("deploy/kubernetes/configmap.yaml", [])
secret_file = None
for doc in cfg_docs:
    if doc.get("kind") == "ConfigMap" and "config.yaml" in (doc.get("data") or {}):
        secret_file = (yaml.safe_load(doc["data"]["config.yaml"]).get("elements") or {}).get("client_secret_file")
n_workloads = 0
for p, docs in sorted(parsed.items()):
    if not p.startswith("deploy/kubernetes/"):
        continue
    for doc in docs:
        if doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        n_workloads += 1
        where = f"{p}: {doc['kind']} {doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            fail(f"{where}: automountServiceAccountToken should be false")
        # Files the pod's volumes provide, by mount path.
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext") or {}
            if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                fail(f"{cw}: runAsNonRoot is not true")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cw}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cw}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                fail(f"{cw}: privileged")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                fail(f"{cw}: capabilities.drop does not contain ALL")
            if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                fail(f"{cw}: no seccompProfile RuntimeDefault")
            if not (c.get("resources") or {}).get("requests") or not (c.get("resources") or {}).get("limits"):
                fail(f"{cw}: resources.requests and resources.limits are required")
            ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports", [])}
            if ports.get("http-metrics") != 9978:
                fail(f"{cw}: no port http-metrics 9978")
            for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
                if ((c.get(probe) or {}).get("httpGet") or {}).get("path") != path:
                    fail(f"{cw}: {probe} is not an httpGet of {path}")
            provided = set()
            for m in c.get("volumeMounts", []):
                v = vols.get(m["name"])
                if v is None:
                    if m["name"] not in claims:
                        fail(f"{cw}: volumeMount {m['name']} has no volume")
                    continue
                sources = (v.get("projected") or {}).get("sources") or [
                    {k: v[k]} for k in ("configMap", "secret") if k in v]
                for s in sources:
                    for kind in ("configMap", "secret"):
                        if kind in s:
                            for item in s[kind].get("items") or []:
                                provided.add(os.path.join(m["mountPath"], item["path"]))
            args = c.get("args", [])
            config_file = next((a.split("=", 1)[1] for a in args if a.startswith("--config.file=")), None)
            if config_file not in provided:
                fail(f"{cw}: --config.file={config_file} is not a mounted file ({sorted(provided)})")
            if secret_file and secret_file not in provided:
                fail(f"{cw}: the config's client_secret_file {secret_file} is not a mounted file ({sorted(provided)})")
            state = next((a.split("=", 1)[1] for a in args if a.startswith("--persistence.file=")), None)
            if state is None:
                fail(f"{cw}: no --persistence.file (a restart would lose every series)")
            else:
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                m = mounts.get(os.path.dirname(state))
                v = vols.get(m["name"]) if m else None
                writable = m is not None and not m.get("readOnly") and (
                    m["name"] in claims or (v is not None and ("emptyDir" in v or "persistentVolumeClaim" in v)))
                if not writable:
                    fail(f"{cw}: --persistence.file={state}: its directory is not a writable emptyDir or claimed volume mount")
            if any(a.startswith("--total-shards") for a in args):
                shards = int(next(a.split("=", 1)[1] for a in args if a.startswith("--total-shards=")))
                if doc["kind"] != "StatefulSet" or doc["spec"].get("replicas") != shards:
                    fail(f"{cw}: --total-shards={shards} but replicas={doc['spec'].get('replicas')}")
                if "--shard.from-pod-name" in args and not any(
                        e.get("name") == "POD_NAME" and
                        ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "metadata.name"
                        for e in c.get("env", [])):
                    fail(f"{cw}: --shard.from-pod-name without env POD_NAME from metadata.name")
if n_workloads == 0:
    fail("no Deployment or StatefulSet under deploy/kubernetes")

# Every Service in front of the exporter publishes not-ready pods: an exporter waiting for
# its first customer list must still be scraped (its metrics say why it waits).
for p, docs in sorted(parsed.items()):
    if p.startswith("deploy/kubernetes/") and "prometheus-operator" not in p:
        for doc in docs:
            if doc.get("kind") == "Service" and doc["spec"].get("publishNotReadyAddresses") is not True:
                fail(f"{p}: Service {doc['metadata']['name']}: publishNotReadyAddresses is not true")

kust = parsed.get("deploy/kubernetes/kustomization.yaml", [{}])[0]
for r in kust.get("resources", []):
    if not os.path.exists(os.path.join("deploy/kubernetes", r)):
        fail(f"deploy/kubernetes/kustomization.yaml: resource {r} does not exist")

if failures:
    for f in failures:
        print("check-deploy: FAILED: " + f, file=sys.stderr)
    sys.exit(1)
print(f"check-deploy: ok: {n_yaml} YAML and {n_json} JSON files parse; compose paths, "
      f"{n_copy} Dockerfile COPY sources, grafana provisioning and {n_workloads} Kubernetes "
      f"workloads check out")
PY

# ---------------------------------------------------------------- Prometheus
promtool check config deploy/prometheus/prometheus.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "promtool check config"; }
ok "promtool check config deploy/prometheus/prometheus.yml"
promtool check rules deploy/prometheus/rules.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "promtool check rules"; }
ok "promtool check rules deploy/prometheus/rules.yml"
promtool test rules deploy/prometheus/rules_test.yml deploy/prometheus/rules_forecast_test.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "promtool test rules"; }
ok "promtool test rules deploy/prometheus/rules_test.yml deploy/prometheus/rules_forecast_test.yml"

# ---------------------------------------------------------------- generated PrometheusRule
bash deploy/kubernetes/generate-prometheusrule.sh >"$tmp/prometheusrule.yaml"
if ! diff -u deploy/kubernetes/prometheus-operator/prometheusrule.yaml "$tmp/prometheusrule.yaml"; then
  fail "deploy/kubernetes/prometheus-operator/prometheusrule.yaml is out of date with deploy/prometheus/rules.yml; run deploy/kubernetes/generate-prometheusrule.sh --write"
fi
ok "deploy/kubernetes/prometheus-operator/prometheusrule.yaml matches deploy/prometheus/rules.yml"
bash deploy/kubernetes/generate-alertmanagerconfig.sh >"$tmp/alertmanagerconfig.yaml"
if ! diff -u deploy/kubernetes/prometheus-operator/alertmanagerconfig.yaml "$tmp/alertmanagerconfig.yaml"; then
  fail "deploy/kubernetes/prometheus-operator/alertmanagerconfig.yaml is out of date with deploy/alertmanager/alertmanager.yml; run deploy/kubernetes/generate-alertmanagerconfig.sh --write"
fi
ok "deploy/kubernetes/prometheus-operator/alertmanagerconfig.yaml matches deploy/alertmanager/alertmanager.yml"

# ---------------------------------------------------------------- Alertmanager
amtool check-config deploy/alertmanager/alertmanager.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "amtool check-config deploy/alertmanager/alertmanager.yml"; }
ok "amtool check-config deploy/alertmanager/alertmanager.yml"
bash deploy/alertmanager/routes_test.sh >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "deploy/alertmanager/routes_test.sh"; }
ok "$(tail -n 1 "$tmp/out")"

# ---------------------------------------------------------------- kustomize + schemas
# The base must apply on any cluster (no Prometheus Operator kinds); the component adds them.
command -v kubectl >/dev/null || fail "kubectl is not installed (needed for kubectl kustomize)"
kubectl kustomize deploy/kubernetes >"$tmp/kustomized.yaml" 2>"$tmp/out" || { cat "$tmp/out"; fail "kubectl kustomize deploy/kubernetes"; }
if grep -Eq '^kind: (ServiceMonitor|PrometheusRule|AlertmanagerConfig)' "$tmp/kustomized.yaml"; then
  fail "kubectl apply -k deploy/kubernetes would need the Prometheus Operator's CRDs"
fi
mkdir -p "$tmp/overlay"
rel=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$PWD/deploy/kubernetes" "$tmp/overlay")
printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s/prometheus-operator\n' "$rel" "$rel" >"$tmp/overlay/kustomization.yaml"
kubectl kustomize "$tmp/overlay" >"$tmp/with-operator.yaml" 2>"$tmp/out" || { cat "$tmp/out"; fail "kubectl kustomize with the prometheus-operator component"; }
for kind in ServiceMonitor PrometheusRule AlertmanagerConfig; do
  grep -q "^kind: $kind" "$tmp/with-operator.yaml" || fail "the prometheus-operator component has no $kind"
done
ok "kubectl kustomize deploy/kubernetes ($(grep -c '^kind:' "$tmp/kustomized.yaml") resources, no operator CRDs; $(grep -c '^kind:' "$tmp/with-operator.yaml") with the prometheus-operator component)"
command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate 2>/dev/null ||
  python3 -m pip install -q --break-system-packages kubernetes-validate
kubernetes-validate --strict --quiet "$tmp/kustomized.yaml" deploy/kubernetes/statefulset-sharded.yaml deploy/kubernetes/secret.example.yaml >"$tmp/out" 2>&1 ||
  { cat "$tmp/out"; fail "kubernetes-validate (offline Kubernetes schemas)"; }
ok "kubernetes-validate --strict: the kustomized base, the sharded StatefulSet and the Secret example"

# ---------------------------------------------------------------- one image name and tag
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image="avepoint-elements-exporter:$version"
refs=$(grep -rhoE 'avepoint-elements-exporter:[A-Za-z0-9._-]+' deploy/docker-compose.yml deploy/kubernetes/*.yaml README.md docs/*.md | grep -vE ':9978$' | sort -u || true)
bad=$(printf '%s\n' "$refs" | grep -vx "$image" | grep -vE 'exporter:[0-9]+$' || true)
[ -z "$bad" ] || fail "image references other than $image: $bad"
grep -q "image: $image" deploy/docker-compose.yml || fail "deploy/docker-compose.yml does not use $image"
grep -q -- "-t $image" docs/deploy.md || fail "the docker build in docs/deploy.md does not tag $image"
ok "one image name and tag everywhere: $image"

# ---------------------------------------------------------------- runbooks
# Every runbook_url is the one base of rules.yml's "# Runbook base:" line (absolute: it is read
# in a notification, far from this repository) followed by the alert's name in lower case, which
# is the heading of its runbook in docs/runbooks.md.
python3 - <<'PY'
import re, sys, yaml
text = open("deploy/prometheus/rules.yml").read()
rules = yaml.safe_load(text)
readme = open("docs/runbooks.md", encoding="utf-8").read()
def anchor(title):  # GitHub's heading anchors
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
anchors = {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", readme, re.M)}
bases = re.findall(r"^# Runbook base: (\S+)$", text, re.M)
if len(bases) != 1 or not re.match(r"https?://[^/\s]+/", bases[0]):
    sys.exit(f"deploy/prometheus/rules.yml: want one '# Runbook base: <absolute URL>' line, found {bases}")
base = bases[0]
missing = []
for group in rules["groups"]:
    for rule in group["rules"]:
        if "alert" not in rule:
            continue
        url = rule.get("annotations", {}).get("runbook_url", "")
        if url != base + rule["alert"].lower():
            missing.append(f"{rule['alert']}: runbook_url {url!r} is not {base + rule['alert'].lower()!r}")
        if rule["alert"].lower() not in anchors:
            missing.append(f"{rule['alert']}: no heading (runbook) in docs/runbooks.md #{rule['alert'].lower()}")
if missing:
    print("\n".join(missing), file=sys.stderr)
    sys.exit(1)
PY
ok "every alert's runbook_url is the rules' runbook base + its runbook heading in docs/runbooks.md"
# The base is configurable in one step: set-runbook-base.sh on a copy rewrites everything
# (rules, tests, PrometheusRule) and the unit tests still pass.
mkdir -p "$tmp/rb"
cp -r deploy "$tmp/rb/"
bash "$tmp/rb/deploy/prometheus/set-runbook-base.sh" "https://wiki.msp.example/runbooks/avepoint/" >/dev/null
old_base=$(sed -n 's/^# Runbook base: //p' deploy/prometheus/rules.yml)
if grep -rlF "$old_base" "$tmp/rb/deploy/prometheus" "$tmp/rb/deploy/kubernetes" | grep -v set-runbook-base.sh; then
  fail "set-runbook-base.sh left the old base in the files above"
fi
promtool test rules "$tmp/rb/deploy/prometheus/rules_test.yml" "$tmp/rb/deploy/prometheus/rules_forecast_test.yml" >"$tmp/out" 2>&1 ||
  { cat "$tmp/out"; fail "promtool test rules after set-runbook-base.sh"; }
grep -q 'runbook_url: https://wiki.msp.example/runbooks/avepoint/avepointtenantoutofseats$' "$tmp/rb/deploy/kubernetes/prometheus-operator/prometheusrule.yaml" ||
  fail "set-runbook-base.sh did not regenerate the PrometheusRule"
ok "deploy/prometheus/set-runbook-base.sh rewrites the base everywhere; the unit tests pass with another base"

# ---------------------------------------------------------------- systemd
unit=deploy/systemd/avepoint-elements-exporter.service
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart's binary to exist: point it at the built one, or at /bin/true.
  exe=/bin/true
  [ -x "$bin" ] && exe=$bin
  sed "s#^ExecStart=/usr/local/bin/avepoint-elements-exporter#ExecStart=$exe#" "$unit" >"$tmp/avepoint-elements-exporter.service"
  systemd-analyze verify "$tmp/avepoint-elements-exporter.service" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "systemd-analyze verify $unit"; }
  if [ -s "$tmp/out" ]; then cat "$tmp/out"; fail "systemd-analyze verify $unit printed warnings"; fi
  ok "systemd-analyze verify $unit"
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    # --threshold is the exposure level times ten: 20 = "2.0 OK".
    systemd-analyze security --offline=yes --threshold=20 "$tmp/avepoint-elements-exporter.service" >"$tmp/out" 2>&1 ||
      { tail -n 30 "$tmp/out"; fail "systemd-analyze security: exposure of $unit above 2.0"; }
    ok "systemd-analyze security: $(grep -o 'exposure level.*' "$tmp/out" | sed 's/ for [^:]*//')"
  fi
else
  skip "systemd-analyze verify $unit (systemd-analyze not installed)"
fi

# ---------------------------------------------------------------- example configs
grep -q '\./compose/config.yaml:/etc/avepoint-elements-exporter/config.yaml' deploy/docker-compose.yml \
  && grep -q 'client_secret_file: /run/secrets/elements-client-secret' deploy/compose/config.yaml \
  && grep -q 'secrets: \[elements-client-secret\]' deploy/docker-compose.yml \
  || fail "deploy/docker-compose.yml's real-account comment and deploy/compose/config.yaml disagree"
ok "the compose real-account comment mounts deploy/compose/config.yaml and its secret"
if [ -x "$bin" ]; then
  printf 'not-a-real-secret\n' >"$tmp/client-secret"
  python3 - "$tmp" <<'PY'
import sys, yaml
tmp = sys.argv[1]
cm = next(d for d in yaml.safe_load_all(open("deploy/kubernetes/configmap.yaml")) if d and d.get("kind") == "ConfigMap")
configs = {"kubernetes": cm["data"]["config.yaml"], "systemd": open("deploy/systemd/config.yaml").read(),
           "compose": open("deploy/compose/config.yaml").read()}
for name, text in configs.items():
    secret = yaml.safe_load(text)["elements"]["client_secret_file"]
    with open(f"{tmp}/{name}-config.yaml", "w") as f:
        f.write(text.replace(secret, f"{tmp}/client-secret"))
PY
  for name in kubernetes systemd compose; do
    "$bin" --check-config --config.file "$tmp/$name-config.yaml" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "--check-config of the $name example config"; }
  done
  ok "--check-config accepts deploy/kubernetes/configmap.yaml, deploy/systemd/config.yaml and deploy/compose/config.yaml"
else
  skip "--check-config of the example configs ($bin not built)"
fi

echo "check-deploy: all checks passed"
