#!/usr/bin/env bash
# Start a real Confluent-compatible schema registry (Apicurio Registry 2.4.2,
# in-memory storage, no authentication) on 127.0.0.1 for the integration tests.
#
#   tests/registry/start.sh [WORKDIR]
#
# WORKDIR defaults to ${RELAY_REGISTRY_DIR:-<repo>/build/registry}. On success
# the only line on stdout is `url=http://127.0.0.1:PORT/apis/ccompat/v7`, the
# base URL of the Confluent-compatible API; the same URL (without the prefix)
# is written to WORKDIR/url and the JVM's pid to WORKDIR/pid. Progress and
# errors go to stderr. Every start is a fresh, empty registry (the H2 database
# lives in the JVM's memory); a registry from an earlier start in the same
# WORKDIR is stopped first.
#
# The first start builds the app from Maven Central (see pom.xml) into
# WORKDIR/app; later starts reuse it until pom.xml or src/ change.
#
# Environment:
#   RELAY_REGISTRY_PORT           HTTP port (default 18081, another free port if taken)
#     An explicitly set port that is taken is an error; 0 means "any free port".
#   RELAY_REGISTRY_START_TIMEOUT  seconds to wait for the started JVM to answer
#                                 (default 180; a Maven build comes on top of it:
#                                 ~70 s with nothing cached, ~25 s with ~/.m2 filled)
#   RELAY_REGISTRY_COMPATIBILITY  global compatibility level set once the
#                                 registry answers (default BACKWARD, Confluent's
#                                 default; empty: leave Apicurio's default, no rule)
#   RELAY_REGISTRY_JAVA_OPTS      extra JVM options (word-split)
#   RELAY_REGISTRY_MVN_OPTS       extra Maven options for the build (word-split),
#                                 e.g. -Dmaven.repo.local=DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORKDIR=${1:-${RELAY_REGISTRY_DIR:-$REPO/build/registry}}
START_TIMEOUT=${RELAY_REGISTRY_START_TIMEOUT:-180}
COMPAT=${RELAY_REGISTRY_COMPATIBILITY-BACKWARD}
API_PATH=/apis/ccompat/v7

log() { printf 'registry/start: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in java python3 flock setsid sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "RELAY_REGISTRY_START_TIMEOUT=$START_TIMEOUT: not a number of seconds"

mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
APP=$WORKDIR/app
PROPS=$HERE/registry.properties
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)

# One start.sh per WORKDIR at a time. fd 9 is closed for every child below,
# or the registry would hold the lock for its whole life.
exec 9>"$WORKDIR/.start.lock"
flock -w 300 9 || die "another start.sh holds $WORKDIR/.start.lock"

# --- 1. A registry from an earlier start in this WORKDIR: stop it. ----------
"$HERE/stop.sh" "$WORKDIR" 9>&- || die "could not stop the earlier registry in $WORKDIR"
rm -f "$WORKDIR/url"
t_stopped=$(ms)

# --- 2. The app (Maven Central + Quarkus build), built only when missing. ---
# app/.inputs-sha256 holds the hash of everything the build reads (pom.xml and
# src/); a change means a fresh build in build.tmp, then an atomic swap.
inputs_hash=$(cd "$HERE" && find pom.xml src -type f -print0 | LC_ALL=C sort -z |
              xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
stamp=''
if [[ -f $APP/.inputs-sha256 ]]; then read -r stamp < "$APP/.inputs-sha256" || true; fi
if [[ $stamp != "$inputs_hash" || ! -f $APP/quarkus-run.jar ]]; then
  command -v mvn >/dev/null 2>&1 || die "'mvn' not found in PATH (needed once to build the registry)"
  log "building Apicurio Registry into $APP (mvn package; first time: downloads ~200 MB from Maven Central)"
  BUILD=$WORKDIR/build.tmp
  rm -rf "$BUILD" "$APP.tmp"
  mkdir -p "$BUILD"
  cp "$HERE/pom.xml" "$BUILD/"
  cp -r "$HERE/src" "$BUILD/"
  # quarkus.package.type must be a system property: the app's own
  # application.properties says %prod.quarkus.package.type=legacy-jar, which
  # beats a POM property.
  # shellcheck disable=SC2086
  if ! (cd "$BUILD" && mvn -B -Dstyle.color=never -DskipTests \
          -Dquarkus.package.type=fast-jar ${RELAY_REGISTRY_MVN_OPTS:-} package) \
          > "$WORKDIR/mvn.log" 2>&1 9>&-; then
    grep -E '^\[(ERROR|WARNING)\]' "$WORKDIR/mvn.log" | head -n 40 >&2 || true
    rm -rf "$BUILD"
    die "mvn failed to build the registry (full output: $WORKDIR/mvn.log)"
  fi
  [[ -f $BUILD/target/quarkus-app/quarkus-run.jar ]] ||
    die "mvn produced no target/quarkus-app/quarkus-run.jar (see $WORKDIR/mvn.log)"
  mv "$BUILD/target/quarkus-app" "$APP.tmp"
  echo "$inputs_hash" > "$APP.tmp/.inputs-sha256"
  rm -rf "$APP" "$BUILD"
  mv "$APP.tmp" "$APP"
  log "built $APP ($(du -sh "$APP" | cut -f1))"
fi
t_built=$(ms)

# --- 3. Port. ---------------------------------------------------------------
# The wanted port is kept when it can be bound (with SO_REUSEADDR, like
# Vert.x); otherwise, unless it was set explicitly, the kernel picks one.
PORT=$(python3 - "${RELAY_REGISTRY_PORT:-18081}" "${RELAY_REGISTRY_PORT:+1}" <<'EOF'
import socket, sys
def try_bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
want, fixed = int(sys.argv[1]), sys.argv[2]
port = try_bind(want)
if port is None:
    if fixed:
        sys.exit(f"registry/start: ERROR: RELAY_REGISTRY_PORT={want}: port 127.0.0.1:{want} is in use")
    port = try_bind(0)
print(port)
EOF
) || die "could not pick a port"
[[ -n ${PORT:-} ]] || die "could not pick a port"
URL=http://127.0.0.1:$PORT$API_PATH

# --- 4. Start the registry. -------------------------------------------------
# setsid: own session, so a Ctrl-C aimed at whoever ran start.sh does not reach
# the registry; stop.sh is the way to stop it. As the script runs without job
# control, setsid does not fork and $! is the JVM's pid. The JVM runs in
# WORKDIR (Quarkus would read a config/ or .env there; there is none).
# -Drelay.registry.workdir lets stop.sh recognise its JVM.
# shellcheck disable=SC2086
(cd "$WORKDIR" && exec nohup setsid java -Xms64m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 \
  -Djava.awt.headless=true ${RELAY_REGISTRY_JAVA_OPTS:-} \
  -Drelay.registry.workdir="$WORKDIR" \
  -Dquarkus.config.locations="$PROPS" \
  -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
  -jar "$APP/quarkus-run.jar" \
  < /dev/null > "$WORKDIR/registry.log" 2>&1 9>&-) &
pid=$!
deadline=$((SECONDS + START_TIMEOUT))
t_java=$(ms)
echo "$pid" > "$WORKDIR/pid"
log "registry pid $pid on 127.0.0.1:$PORT, log $WORKDIR/registry.log"

fail() {
  log "ERROR: $*"
  log "---- last 60 lines of $WORKDIR/registry.log ----"
  tail -n 60 "$WORKDIR/registry.log" >&2 || true
  log "----"
  "$HERE/stop.sh" "$WORKDIR" 9>&- || true
  exit 1
}
check() {
  kill -0 "$pid" 2>/dev/null || fail "the registry (pid $pid) exited during startup"
  ((SECONDS < deadline)) || fail "registry not ready after ${START_TIMEOUT}s ($1)"
}

# http METHOD URL [JSON]: prints "STATUS BODY" (status 0: no answer).
http() {
  python3 - "$@" 9>&- <<'EOF'
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
ct = "application/vnd.schemaregistry.v1+json"
req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ct, "Accept": ct})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status, r.read().decode(errors="replace").strip())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(errors="replace").strip())
except Exception as e:
    print(0, e)
EOF
}

# 4a. The Confluent API answers GET /subjects with an empty list.
until [[ $(http GET "$URL/subjects") == "200 []" ]]; do
  check "GET $URL/subjects did not answer 200 []"
  sleep 0.25
done
t_up=$(ms)

# 4b. Confluent's default global compatibility (Apicurio has no global rule).
if [[ -n $COMPAT ]]; then
  want="{\"compatibility\":\"$COMPAT\"}"
  got=$(http PUT "$URL/config" "$want")
  [[ $got == "200 $want" ]] || fail "PUT $URL/config $want answered: $got"
fi

echo "$URL" > "$WORKDIR/url"
secs() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }
log "ready in $(secs $((t_up - t0)))s: stop old $(secs $((t_stopped - t0)))s," \
    "build $(secs $((t_built - t_stopped)))s, JVM up $(secs $((t_up - t_java)))s" \
    "${COMPAT:+(global compatibility $COMPAT)}"
echo "url=$URL"
