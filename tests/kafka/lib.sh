# shellcheck shell=bash
# Sourced by create-topics.sh and committed-offsets.sh: runs one of the
# single-file Java tools in this directory (CreateTopics.java,
# CommittedOffsets.java) against the broker jars in WORKDIR/libs.
#
# The sources are compiled once into WORKDIR/tools-classes (recompiled when a
# .java file changes, stamp = sha256 of the sources). A compiled tool with a
# C1-only JIT starts in ~1.2 s, against ~2.7 s for `java File.java`.

KAFKA_TOOLS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# run_tool CLASS ARGS...   (execs java; stdout/stderr are the tool's)
run_tool() {
  local cls=$1; shift
  local repo workdir libs classes hash
  repo=$(cd "$KAFKA_TOOLS_HERE/../.." && pwd)
  workdir=${RELAY_KAFKA_DIR:-$repo/build/kafka}
  libs=$workdir/libs
  if [[ ! -f $libs/.pom-sha256 ]]; then
    echo "kafka/$cls: no broker jars in $libs; run tests/kafka/start.sh first (or set RELAY_KAFKA_DIR)" >&2
    exit 1
  fi
  classes=$workdir/tools-classes
  hash=$(cat "$KAFKA_TOOLS_HERE"/*.java "$libs/.pom-sha256" | sha256sum | cut -d' ' -f1)
  if [[ ! -f $classes/.src-sha256 || $(cat "$classes/.src-sha256") != "$hash" ]]; then
    (
      flock -w 120 8 || { echo "kafka/$cls: timeout waiting for $workdir/.tools.lock" >&2; exit 1; }
      [[ -f $classes/.src-sha256 && $(cat "$classes/.src-sha256") == "$hash" ]] && exit 0
      rm -rf "$classes.tmp.$$"
      mkdir -p "$classes.tmp.$$"
      javac -nowarn -cp "$libs/*" -d "$classes.tmp.$$" "$KAFKA_TOOLS_HERE"/*.java >&2 || {
        rm -rf "$classes.tmp.$$"; echo "kafka/$cls: javac failed" >&2; exit 1; }
      echo "$hash" > "$classes.tmp.$$/.src-sha256"
      rm -rf "$classes"
      mv "$classes.tmp.$$" "$classes"
    ) 8>"$workdir/.tools.lock" || exit 1
  fi
  exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss1m \
    -Dlog4j2.configurationFile="$KAFKA_TOOLS_HERE/log4j2-tools.properties" \
    -cp "$classes:$libs/*" "$cls" "$@"
}
