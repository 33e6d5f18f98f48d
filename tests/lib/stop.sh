# shellcheck shell=bash
# Sourced by tests/kafka/stop.sh and tests/registry/stop.sh: stop the
# process $pid while the caller's `ours` says it is still the one they
# started (so a reused pid is never signalled): SIGTERM, up to
# STOP_TIMEOUT seconds, then SIGKILL. Logs with the caller's log().
# Returns 1 if it survived SIGKILL.
stop_ours() { # stop_ours WHAT
  ours || return 0
  local start=$SECONDS
  kill -TERM "$pid" 2>/dev/null || true
  while ours && ((SECONDS - start < STOP_TIMEOUT)); do sleep 0.2; done
  if ours; then
    log "pid $pid still running after ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do ours || break; sleep 0.1; done
  fi
  if ours; then
    log "ERROR: pid $pid survived SIGKILL"
    return 1
  fi
  log "stopped $1 pid $pid in $((SECONDS - start))s"
}
