#!/usr/bin/env bash
# Installs everything relay needs to build, run the demo and run every test
# on a fresh Debian 12 machine: the C toolchain and libraries from Debian,
# kcat, a Java 17 JDK (the broker's admin tools are compiled once) and Maven
# for the test broker, nginx and wrk for the delivery benchmark (nginx
# runs in the foreground from a temporary directory; its system service is
# not used), fastavro from PyPI for the independent Avro checks, and the
# tools that validate deploy/ (scripts/install-deploy-tools.sh). Safe to
# run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

pkgs=(build-essential cmake pkg-config
      librdkafka-dev libavro-dev libjansson-dev libconfig-dev
      libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev libssl-dev
      kcat curl python3 python3-pip
      openjdk-17-jdk-headless maven util-linux
      nginx wrk)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Where installing nginx started its system service (port 80), stop it:
  # the benchmark runs its own nginx on a free loopback port.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

# fastavro and Confluent's Python client (its Avro serializer and schema
# registry client): the independent Avro encoders and decoders of the
# tests; kafka-python for its port of the Java client's murmur2 (scenario
# 0009). Debian's python3 is externally managed; a pyenv or venv python
# takes a plain pip install.
py_pkgs=(fastavro==1.13.1 "confluent-kafka[avro,schemaregistry]==2.6.1" kafka-python==3.0.12)
if ! python3 -c 'import fastavro, confluent_kafka.schema_registry.avro, kafka.partitioner.default' \
     2>/dev/null; then
  python3 -m pip install -q "${py_pkgs[@]}" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "${py_pkgs[@]}"
fi
bash "$(dirname "$0")/install-deploy-tools.sh"
echo "install-deps: done" >&2
