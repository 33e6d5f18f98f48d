#!/usr/bin/env bash
# Builds relay and runs every test: the cmocka unit tests, the simulator's
# own tests, and the numbered integration scenarios against a real Apache
# Kafka broker (KRaft, started here from the official jars); then the same
# suite again with the workers built under AddressSanitizer and
# UndefinedBehaviorSanitizer, where any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

KAFKA_DIR=${RELAY_KAFKA_DIR:-$PWD/build/kafka}
trap 'tests/kafka/stop.sh "$KAFKA_DIR" || true' EXIT

bash scripts/build.sh
RELAY_BUILD_DIR=build-asan bash scripts/build.sh -DRELAY_SANITIZE=address,undefined \
  -DCMAKE_BUILD_TYPE=Debug

start_broker() {
  RELAY_TEST_BOOTSTRAP=$(tests/kafka/start.sh "$KAFKA_DIR" | sed -n 's/^bootstrap=//p')
  export RELAY_TEST_BOOTSTRAP
}

echo "== tests (build/)"
start_broker
ctest --test-dir build --output-on-failure -j2

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
start_broker # a fresh broker: the scenarios start from empty topics
ctest --test-dir build-asan --output-on-failure -j2
