#!/usr/bin/env bash
# Stop the broker that tests/kafka/start.sh started.
#
#   tests/kafka/stop.sh [WORKDIR]
#
# WORKDIR defaults to ${RELAY_KAFKA_DIR:-<repo>/build/kafka}. SIGTERM, wait up to
# RELAY_KAFKA_STOP_TIMEOUT (default 20) seconds, then SIGKILL. Removes
# WORKDIR/broker.pid and WORKDIR/bootstrap. Idempotent: exits 0 when no broker
# is running. Only the pid in WORKDIR/broker.pid is signalled, and only if that
# process is a kafka.Kafka running WORKDIR/server.properties (no pid reuse
# accidents). Nothing is printed on stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORKDIR=${1:-${RELAY_KAFKA_DIR:-$REPO/build/kafka}}
STOP_TIMEOUT=${RELAY_KAFKA_STOP_TIMEOUT:-20}

log() { printf 'kafka/stop: %s\n' "$*" >&2; }

[[ -d $WORKDIR ]] || exit 0
WORKDIR=$(cd "$WORKDIR" && pwd)
PIDFILE=$WORKDIR/broker.pid
[[ -f $PIDFILE ]] || exit 0
pid=$(tr -dc '0-9' < "$PIDFILE")

# True while $pid is our broker (a zombie has an empty cmdline: counts as gone).
ours() {
  [[ -n $pid ]] || return 1
  local cmd
  { cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline"); } 2>/dev/null || return 1
  [[ $cmd == *" kafka.Kafka $WORKDIR/server.properties"* ]]
}

# shellcheck source=../lib/stop.sh
source "$HERE/../lib/stop.sh"
stop_ours broker || exit 1
rm -f "$PIDFILE" "$WORKDIR/bootstrap"
