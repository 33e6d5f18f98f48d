#!/usr/bin/env bash
# Stop the schema registry that tests/registry/start.sh started.
#
#   tests/registry/stop.sh [WORKDIR]
#
# WORKDIR defaults to ${RELAY_REGISTRY_DIR:-<repo>/build/registry}. SIGTERM,
# wait up to RELAY_REGISTRY_STOP_TIMEOUT (default 20) seconds, then SIGKILL.
# Removes WORKDIR/pid and WORKDIR/url. Idempotent: exits 0 when no registry is
# running. Only the pid in WORKDIR/pid is signalled, and only if that process
# is a java started by start.sh for this WORKDIR (no pid reuse accidents).
# Nothing is printed on stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORKDIR=${1:-${RELAY_REGISTRY_DIR:-$REPO/build/registry}}
STOP_TIMEOUT=${RELAY_REGISTRY_STOP_TIMEOUT:-20}

log() { printf 'registry/stop: %s\n' "$*" >&2; }

[[ -d $WORKDIR ]] || exit 0
WORKDIR=$(cd "$WORKDIR" && pwd)
PIDFILE=$WORKDIR/pid
[[ -f $PIDFILE ]] || { rm -f "$WORKDIR/url"; exit 0; }
pid=$(tr -dc '0-9' < "$PIDFILE")

# True while $pid is our registry (a zombie has an empty cmdline: counts as gone).
ours() {
  [[ -n $pid ]] || return 1
  local cmd
  { cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline"); } 2>/dev/null || return 1
  [[ $cmd == *" -Drelay.registry.workdir=$WORKDIR "* && $cmd == *"/app/quarkus-run.jar"* ]]
}

# shellcheck source=../lib/stop.sh
source "$HERE/../lib/stop.sh"
stop_ours registry || exit 1
rm -f "$PIDFILE" "$WORKDIR/url"
