#!/usr/bin/env bash
# Scenario 0018: the engine's hard cases against every platform's
# simulator, on one real Kafka broker (tests/integration/conformance.py
# holds the table of platforms and the cases). For each platform, on a
# fresh topic and consumer group per case, with short timings:
#  - timeout: an answer slower than deliver.http_timeout_ms; every record
#    arrives, none is dead-lettered, only the timed-out request's record
#    may arrive twice;
#  - order: 3 persons x 4 records, person 0's first answered 503 twice;
#    every record once, each person's in order;
#  - outage: every request 503 for ~4 s, then the platform is back;
#    nothing dead-lettered, every record once, relay_platform_state 1
#    during the outage and 0 after.
#  - redirect: the same with every request answered 302 (a misconfigured
#    endpoint pauses the work; it dead-letters nothing).
# A platform whose simulator or adapter is not in the tree yet is skipped.
# CONFORMANCE_ONLY=braze,webhook runs some platforms only.
source "$(dirname "$0")/lib.sh"
PLATFORMS=(mparticle braze webhook cmcdp antavo mappengage eagleeye digitalaudience)
topics=()
for p in "${PLATFORMS[@]}"; do
  topics+=("out.$p.timeout:3" "out.$p.order:3" "out.$p.outage:3" "out.$p.redirect:3" "dlq.$p:1")
done
broker "${topics[@]}"

if python3 "$SRC/tests/integration/conformance.py" --bootstrap "$BS" --src "$SRC" \
     --bin "$BIN" --work "$WORK" --only "${CONFORMANCE_ONLY:-}"; then
  ok "every platform passed the timeout, order, outage and redirect cases (or was skipped)"
else
  fail "a platform failed a case (the not ok lines above)"
fi
done_checks
