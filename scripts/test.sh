#!/usr/bin/env bash
# Builds relay and runs every test: the cmocka unit tests, the simulator's
# own tests, the fuzz targets over their seeds plus bounded mutations, and
# the numbered integration scenarios, each against a real Apache Kafka
# broker (KRaft, started fresh by the scenario from the official jars); then
# the same suite again with everything built under AddressSanitizer and
# UndefinedBehaviorSanitizer, where any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh
RELAY_BUILD_DIR=build-asan bash scripts/build.sh -DRELAY_SANITIZE=address,undefined \
  -DCMAKE_BUILD_TYPE=Debug

# The schema registry app (built by Maven on first use) is shared by both
# runs; each scenario still starts it fresh and empty.
export RELAY_REGISTRY_DIR="$PWD/build/registry"

echo "== tests (build/)"
ctest --test-dir build --output-on-failure -j2

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
# The longest fault scenarios (label fault-long: chaos, the 2-minute
# outage, throttling and max.poll.interval.ms, which mostly wait) and the
# delivery, memory, concurrency, hot-path and ingest benchmarks run only in the plain
# pass: under the sanitizers they would take long and prove nothing the
# plain pass and the sanitized unit tests of the engine (test_pipeline,
# test_deliver) and the codec (test_codec, fuzz_codec) do not. So does
# the adapter conformance run (0018: timeouts, order under retries, an
# outage and a redirect for each of eight platforms, about two and a half
# minutes): its engine
# paths are test_deliver's, and each adapter's own scenario still runs
# here. The deploy/ validation (label deploy) runs no relay code: once is
# enough.
ctest --test-dir build-asan --output-on-failure -j2 -LE 'fault-long|deploy' \
  -E '^(bench/(deliver|deliver_rss|hotpath|concurrency|ingest)|integration/0018-adapter-conformance)$'
