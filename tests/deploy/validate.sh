#!/usr/bin/env bash
# Validates deploy/ offline, with no container engine, cluster or broker:
# the Dockerfile (hadolint), the compose file (docker-compose config) and
# its agreement with the configs, tests and code (check_in_step.py), the
# Prometheus config, rules and rule unit tests (promtool), the Grafana
# dashboard's panel ids and metric names (check_dashboard.py against
# tests/deploy/metrics.txt), the Kubernetes manifests (kubernetes-validate,
# strict, bundled schemas) and the KEDA ScaledObjects (KEDA's CRD schema and
# the Kafka scaler's documented keys). One "ok - ..." / "not ok - ..." line
# per check, the failing tool's output under it; exits 1 if any failed.
# The tools come from scripts/install-deploy-tools.sh.
#
# Environment: RELAY_SOURCE_DIR (the repository), RELAY_TOOLS_DIR (where
# promtool was unpacked, default build/tools), RELAY_KEDA_CRD (KEDA's
# ScaledObject CRD, default ../shared/schemas/keda/ beside the repository).
set -uo pipefail

SRC=${RELAY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$SRC"
TOOLS=${RELAY_TOOLS_DIR:-$SRC/build/tools}
PROMTOOL=$TOOLS/prometheus/usr/bin/promtool
[ -x "$PROMTOOL" ] || PROMTOOL=$(command -v promtool || echo "$PROMTOOL")
KEDA_CRD=${RELAY_KEDA_CRD:-$SRC/../shared/schemas/keda/keda.sh_scaledobjects.yaml}
K8S_VERSION=1.30.0
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
PASSED=0
FAILED=0

# check "description" command...: runs the command, prints ok / not ok and,
# on failure, the command's output.
check() {
  local what=$1; shift
  if "$@" >"$OUT" 2>&1; then
    PASSED=$((PASSED + 1)); echo "ok - $what"
  else
    FAILED=$((FAILED + 1)); echo "not ok - $what"
    grep -Ev "^(ok - |INFO )" "$OUT" | head -n 40 | sed "s/^/#   /"
  fi
}
need() { # need TOOL: fails the check that needs a tool missing
  command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] ||
    { echo "$1 is not installed: run scripts/install-deploy-tools.sh"; return 1; }
}

hadolint_() { need hadolint && hadolint --failure-threshold style deploy/Dockerfile; }
compose_() { need docker-compose && docker-compose -f docker-compose.yml --project-directory . config -q; }
# kubernetes-validate passes a kind it has no schema for with a warning:
# every kind in deploy/k8s is a built-in one, so a warning fails here.
k8s_() {
  need kubernetes-validate || return 1
  kubernetes-validate -k "$K8S_VERSION" --strict deploy/k8s/*.yaml deploy/k8s/examples/*.yaml \
    && ! grep -q WARN "$OUT"
}
keda_() {
  [ -f "$KEDA_CRD" ] || { echo "KEDA CRD not found at $KEDA_CRD (set RELAY_KEDA_CRD)"; return 1; }
  python3 tests/deploy/check_scaledobject.py "$KEDA_CRD" deploy/keda/*.yaml
}
promtool_() { need "$PROMTOOL" && "$PROMTOOL" "$@"; }

check "Dockerfile passes hadolint" hadolint_
check "docker-compose.yml is valid (docker-compose config -q)" compose_
check "compose, k8s, keda, prometheus and grafana in step with configs, tests and code" \
  python3 tests/deploy/check_in_step.py
check "prometheus.yml is valid (promtool check config)" \
  promtool_ check config deploy/prometheus/prometheus.yml
check "alerts.yml is valid (promtool check rules)" \
  promtool_ check rules deploy/prometheus/alerts.yml
check "every alert fires and stays quiet where it should (promtool test rules)" \
  promtool_ test rules deploy/prometheus/alerts_test.yml
check "dashboard panel ids unique, panel and alert metrics exposed (check_dashboard.py)" \
  python3 tests/deploy/check_dashboard.py --metrics tests/deploy/metrics.txt \
    --rules deploy/prometheus/alerts.yml deploy/grafana/dashboards/relay.json
check "Kubernetes manifests valid against $K8S_VERSION, strict (kubernetes-validate)" k8s_
check "KEDA ScaledObjects valid against KEDA's CRD, Kafka scaler keys documented" keda_

echo "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
