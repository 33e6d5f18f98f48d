#!/usr/bin/env bash
# Print a consumer group's committed offsets, read from the broker.
#
#   tests/kafka/committed-offsets.sh BOOTSTRAP GROUP
#
# stdout: "TOPIC PARTITION COMMITTED_OFFSET LOG_END_OFFSET" per partition with a
# commit, sorted, no header; nothing for a group without commits.
# Exit 0 ok, 1 error, 2 usage. See CommittedOffsets.java.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 BOOTSTRAP GROUP" >&2
  exit 2
fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run_tool CommittedOffsets "$@"
