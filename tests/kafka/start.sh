#!/usr/bin/env bash
# Start a real single-node Apache Kafka broker (KRaft, broker+controller in one
# JVM) on 127.0.0.1 for the integration tests.
#
#   tests/kafka/start.sh [WORKDIR]
#
# WORKDIR defaults to ${RELAY_KAFKA_DIR:-<repo>/build/kafka}. On success the only
# line on stdout is `bootstrap=127.0.0.1:PORT`; the same address (without the
# prefix) is written to WORKDIR/bootstrap. Progress and errors go to stderr.
# Every start wipes WORKDIR/data, so each start is a fresh, empty cluster
# (unless RELAY_KAFKA_KEEP_DATA=1: a restart of the same cluster).
#
# Environment:
#   RELAY_KAFKA_PORT             broker port (default 19092, another free port if taken)
#   RELAY_KAFKA_CONTROLLER_PORT  controller port (default 19093, likewise)
#     An explicitly set port that is taken is an error; 0 means "any free port".
#   RELAY_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   RELAY_KAFKA_JAVA_OPTS        extra JVM options for the broker (word-split)
#   RELAY_KAFKA_KEEP_DATA        1: keep WORKDIR/data and the ports of the last
#     start (WORKDIR/ports), so the same cluster comes back on the same
#     address with its topics, records and committed offsets (a broker
#     restart); without earlier data it is an ordinary fresh start
#   RELAY_KAFKA_AUTO_CREATE      auto.create.topics.enable (default true)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORKDIR=${1:-${RELAY_KAFKA_DIR:-$REPO/build/kafka}}
START_TIMEOUT=${RELAY_KAFKA_START_TIMEOUT:-90}
KEEP_DATA=${RELAY_KAFKA_KEEP_DATA:-0}
AUTO_CREATE=${RELAY_KAFKA_AUTO_CREATE:-true}
[[ $AUTO_CREATE == true || $AUTO_CREATE == false ]] ||
  { printf 'kafka/start: ERROR: RELAY_KAFKA_AUTO_CREATE must be true or false\n' >&2; exit 2; }

log() { printf 'kafka/start: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in java kcat python3 flock setsid; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
LIBS=$WORKDIR/libs
POM=$HERE/pom.xml
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)

# One start.sh per WORKDIR at a time. fd 9 is closed for the broker below, or
# the broker would hold the lock for its whole life.
exec 9>"$WORKDIR/.start.lock"
flock -w 300 9 || die "another start.sh holds $WORKDIR/.start.lock"

# --- 1. A broker from an earlier start in this WORKDIR: stop it. -------------
"$HERE/stop.sh" "$WORKDIR" 9>&- || die "could not stop the earlier broker in $WORKDIR"
rm -f "$WORKDIR/bootstrap"
t_stopped=$(ms)

# --- 2. Broker jars (Maven Central), fetched only when missing. -------------
# libs/.pom-sha256 holds "<sha256 of pom.xml> <jar count>"; a changed pom or a
# different jar count means a fresh fetch into libs.tmp, then an atomic swap.
jar_count() { find "$1" -maxdepth 1 -name '*.jar' 2>/dev/null | wc -l; }
pom_hash=$(sha256sum "$POM" | cut -d' ' -f1)
stamp_hash='' stamp_count=0
if [[ -f $LIBS/.pom-sha256 ]]; then
  read -r stamp_hash stamp_count < "$LIBS/.pom-sha256" || true
fi
if [[ $stamp_hash != "$pom_hash" || $stamp_count -lt 1 || $(jar_count "$LIBS") -ne $stamp_count ]]; then
  command -v mvn >/dev/null 2>&1 || die "'mvn' not found in PATH (needed once to fetch the Kafka jars)"
  log "fetching Kafka jars into $LIBS (mvn dependency:copy-dependencies)"
  rm -rf "$LIBS.tmp"
  mkdir -p "$LIBS.tmp"
  # One Maven at a time on this machine: brokers of other WORKDIRs (the
  # test groups of ctest -j2) may fetch at the same moment, into the same
  # ~/.m2, which two Mavens do not share safely.
  exec 8>"${TMPDIR:-/tmp}/relay-kafka-mvn.lock"
  flock -w 600 8 || die "another start.sh held the Maven lock for 10 minutes"
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
         -DoutputDirectory="$LIBS.tmp" -DincludeScope=runtime > "$WORKDIR/mvn.log" 2>&1 9>&- 8>&-; then
    tail -n 40 "$WORKDIR/mvn.log" >&2
    rm -rf "$LIBS.tmp"
    die "mvn failed to fetch the Kafka jars (full output: $WORKDIR/mvn.log)"
  fi
  n=$(jar_count "$LIBS.tmp")
  [[ $n -gt 0 ]] || die "mvn fetched no jars"
  echo "$pom_hash $n" > "$LIBS.tmp/.pom-sha256"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  exec 8>&-
  log "fetched $n jars"
fi

# --- 3. Ports. --------------------------------------------------------------
# A restart with kept data comes back on the ports of the last start (the
# KRaft voter set recorded in the data names the controller's address).
KEEPING=0
if [[ $KEEP_DATA == 1 && -f $WORKDIR/data/meta.properties && -f $WORKDIR/ports ]]; then
  KEEPING=1
  read -r old_port old_cport < "$WORKDIR/ports"
  # "any free port" (0, as the test groups of ctest -j2 ask) is the old one.
  [[ ${RELAY_KAFKA_PORT:-0} != 0 ]] || RELAY_KAFKA_PORT=$old_port
  [[ ${RELAY_KAFKA_CONTROLLER_PORT:-0} != 0 ]] || RELAY_KAFKA_CONTROLLER_PORT=$old_cport
fi
# Prints "BROKER_PORT CONTROLLER_PORT". A wanted port is kept when it can be
# bound (with SO_REUSEADDR, like the JVM's listeners); otherwise, unless it was
# set explicitly, the kernel picks a free one (bind to port 0).
read -r PORT CPORT < <(python3 - "${RELAY_KAFKA_PORT:-19092}" "${RELAY_KAFKA_PORT:+1}" \
    "${RELAY_KAFKA_CONTROLLER_PORT:-19093}" "${RELAY_KAFKA_CONTROLLER_PORT:+1}" <<'EOF'
import socket, sys
held, out = [], []
def try_bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    held.append(s)          # keep it bound so the two ports differ
    return s.getsockname()[1]
for want, fixed, name in ((sys.argv[1], sys.argv[2], "RELAY_KAFKA_PORT"),
                          (sys.argv[3], sys.argv[4], "RELAY_KAFKA_CONTROLLER_PORT")):
    port = try_bind(int(want))
    if port is None:
        if fixed:
            sys.exit(f"kafka/start: ERROR: {name}={want}: port 127.0.0.1:{want} is in use")
        port = try_bind(0)
    out.append(str(port))
print(" ".join(out))
EOF
) || die "could not pick ports"
[[ -n ${PORT:-} && -n ${CPORT:-} ]] || die "could not pick ports"
BOOT=127.0.0.1:$PORT

# --- 4. Config (generated on every start). -----------------------------------
cat > "$WORKDIR/server.properties" <<EOF
# Generated by tests/kafka/start.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$WORKDIR/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=$AUTO_CREATE
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.retention.check.interval.ms=300000
EOF

cat > "$WORKDIR/log4j2.properties" <<'EOF'
# Generated by tests/kafka/start.sh; rewritten on every start.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
EOF

LOG4J=-Dlog4j2.configurationFile=$WORKDIR/log4j2.properties

# --- 5. Fresh storage (kept on a restart with RELAY_KAFKA_KEEP_DATA=1). ------
# Cluster id: 16 random bytes, base64url without padding (what Kafka's
# Uuid.randomUuid() prints; it never starts with '-'). Saves a JVM start.
CLUSTER_ID=$(python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-") and u != "AAAAAAAAAAAAAAAAAAAAAA" and u != "AAAAAAAAAAAAAAAAAAAAAQ":
        print(u); break')
t_fmt=$(ms)
if [[ $KEEPING == 1 ]]; then
  log "keeping $WORKDIR/data (restart of the same cluster)"
else
  rm -rf "$WORKDIR/data"
  if ! java "$LOG4J" -cp "$LIBS/*" kafka.tools.StorageTool format \
         -t "$CLUSTER_ID" -c "$WORKDIR/server.properties" --standalone \
         > "$WORKDIR/format.log" 2>&1 9>&-; then
    cat "$WORKDIR/format.log" >&2
    die "kafka-storage format failed"
  fi
fi
echo "$PORT $CPORT" > "$WORKDIR/ports"

# --- 6. Start the broker. ---------------------------------------------------
# setsid: own session, so a Ctrl-C aimed at whoever ran start.sh does not reach
# the broker; stop.sh is the way to stop it. As the script runs without job
# control, setsid does not fork and $! is the JVM's pid.
# shellcheck disable=SC2086
nohup setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
  ${RELAY_KAFKA_JAVA_OPTS:-} "$LOG4J" -cp "$LIBS/*" \
  kafka.Kafka "$WORKDIR/server.properties" \
  < /dev/null > "$WORKDIR/broker.log" 2>&1 9>&- &
pid=$!
t_java=$(ms)
echo "$pid" > "$WORKDIR/broker.pid"
log "broker pid $pid, listening on $BOOT (controller 127.0.0.1:$CPORT), log $WORKDIR/broker.log"

fail() {
  log "ERROR: $*"
  log "---- last 60 lines of $WORKDIR/broker.log ----"
  tail -n 60 "$WORKDIR/broker.log" >&2 || true
  log "----"
  "$HERE/stop.sh" "$WORKDIR" 9>&- || true
  exit 1
}
deadline=$((SECONDS + START_TIMEOUT))
check() {
  kill -0 "$pid" 2>/dev/null || fail "the broker (pid $pid) exited during startup"
  ((SECONDS < deadline)) || fail "broker not ready after ${START_TIMEOUT}s ($1)"
}

# 6a. Metadata answers.
until kcat -L -b "$BOOT" -m 2 > /dev/null 2>&1 9>&-; do
  check "no metadata from kcat -L"
  sleep 0.25
done
t_meta=$(ms)
# Without auto-creation the readiness topic must be created first.
if [[ $AUTO_CREATE == false ]]; then
  RELAY_KAFKA_DIR=$WORKDIR "$HERE/create-topics.sh" "$BOOT" __relay_ready:1 >/dev/null 9>&- ||
    fail "could not create __relay_ready"
fi

# 6b. An idempotent produce works, and a consumer group reads it back. The
# first idempotent produce after a start can hit "Coordinator load in
# progress" (librdkafka retries it), and the first group join creates and
# loads __consumer_offsets (~1 s); doing both here keeps that out of the tests.
# Per-attempt token: the group resumes from its committed offset, so the last
# line it reads must be this attempt's token.
ready_log=$WORKDIR/ready.log
: > "$ready_log"
attempt=0
while :; do
  attempt=$((attempt + 1))
  token="ready-$$-$attempt"
  t=$((deadline - SECONDS)); ((t > 20)) && t=20; ((t < 2)) && t=2   # stay near the bound
  if echo "$token" | timeout "$t" kcat -P -b "$BOOT" -t __relay_ready -p 0 \
        -X enable.idempotence=true -X message.timeout.ms=$((t * 1000 - 500)) >> "$ready_log" 2>&1 9>&- &&
     got=$(timeout "$t" kcat -b "$BOOT" -G __relay_ready -X auto.offset.reset=earliest \
        -e -q -f '%s\n' __relay_ready 2>> "$ready_log" 9>&- | tail -n 1) &&
     [[ $got == "$token" ]]; then
    break
  fi
  check "idempotent produce + group read of __relay_ready did not work; see $ready_log"
  sleep 0.5
done
t_ready=$(ms)

echo "$BOOT" > "$WORKDIR/bootstrap"
secs() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }
log "ready in $(secs $((t_ready - t0)))s: stop old $(secs $((t_stopped - t0)))s," \
    "jars+config $(secs $((t_fmt - t_stopped)))s, format $(secs $((t_java - t_fmt)))s," \
    "broker up $(secs $((t_meta - t_java)))s, idempotent produce + group read $(secs $((t_ready - t_meta)))s"
echo "bootstrap=$BOOT"
