#!/usr/bin/env bash
# Create topics on the test broker (replication factor 1).
#
#   tests/kafka/create-topics.sh BOOTSTRAP TOPIC[:PARTITIONS] ...
#
# PARTITIONS defaults to 1. Existing topics with the same partition count are
# fine; an existing topic with a different count is an error. Returns when all
# topics are in the metadata with a leader for every partition (30 s bound).
# stdout: "TOPIC PARTITIONS created|exists" per topic. Exit 0 ok, 1 error, 2 usage.
# Uses the jars in ${RELAY_KAFKA_DIR:-<repo>/build/kafka}/libs (start.sh fetches them).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 BOOTSTRAP TOPIC[:PARTITIONS] ..." >&2
  exit 2
fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run_tool CreateTopics "$@"
