#!/usr/bin/env bash
# Fault 0109: graceful SIGTERM under load, a SIGHUP reload, and a replica
# taking over from one killed with -9.
#  1. SIGTERM while deliver is in a request that outlasts the grace
#     (worker.shutdown_grace_ms 3 s, the platform answering in 6 s): the
#     request is aborted, the worker commits what is done, leaves the
#     group and exits 0 within the grace; a new deliver finishes the rest.
#  2. SIGTERM while the platform answers quickly: the batch in hand is
#     finished before exiting (nothing of it left for the next owner).
#  3. SIGHUP to transform while events flow: reloaded, nothing lost.
#  4. Two deliver replicas share the partitions; one
#     is killed with -9 and the other takes all of them over; the takeover
#     time is printed.
# Promise: nothing lost, nothing dead-lettered; duplicates only from the
# aborted requests and what the killed replica had in flight (its batch in
# hand and the batches whose commits were unanswered).
source "$(dirname "$0")/lib.sh"
broker
start_fault_sim
GROUP_FAST=(-X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=1000
            -X kafka.statistics.interval.ms=1000)
start_transform "${GROUP_FAST[@]}"
DELIVER_LOG=deliver-1 start_deliver "${GROUP_FAST[@]}" -X worker.shutdown_grace_ms=3000 \
  -X deliver.http_timeout_ms=10000
D1=$DELIVER_PID

# 1. A request that outlasts the grace: the platform answers in 6 s from
# the start, and SIGTERM comes once a request is under way.
D1_URL=$(admin_url deliver-1.log)
sim_fault '{"name":"slow","delay_ms":6000,"times":-1}'
gen first 3000
produce_file first
in_flight() { local n; n=$(metric "$D1_URL" relay_http_requests_in_flight)
             [ "$n" != none ] && [ "$n" -ge 1 ]; }
wait_for 60 in_flight || fail "deliver never had a request under way"
sleep 0.5
t0=$SECONDS
kill -TERM "$D1"
rc=0; wait "$D1" || rc=$?
forget_pid "$D1"
took=$((SECONDS - t0))
check "deliver exited 0 on SIGTERM (exit $rc)" test "$rc" -eq 0
check "within the 3 s grace, give or take a second (took ${took} s)" test "$took" -le 4
check "it aborted the requests in flight when the grace ran out" \
  grep -Eq "aborted [0-9]+ request\(s\) of [0-9]+ record" "$WORK/deliver-1.log"
check "it left the group (handed its partitions back)" \
  grep -q "handing back 3 partition(s)" "$WORK/deliver-1.log"
ABORTED=$(grep -Eo 'aborted [0-9]+ request\(s\) of [0-9]+' "$WORK/deliver-1.log" |
          awk '{s += $NF} END {print s + 0}')
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null

# 2. SIGTERM with a quick platform: the batch in hand is finished.
DELIVER_LOG=deliver-2 start_deliver "${GROUP_FAST[@]}" -X worker.shutdown_grace_ms=20000
D2=$DELIVER_PID
D2_URL=$(admin_url deliver-2.log)
sim_fault '{"name":"steady","delay_ms":200,"times":-1}'
busy() { [ "$(metric "$D2_URL" relay_delivered_total)" != none ] &&
         [ "$(metric "$D2_URL" relay_delivered_total)" -gt 0 ]; }
wait_for 60 busy || fail "the second deliver delivered nothing"
t0=$SECONDS
kill -TERM "$D2"
rc=0; wait "$D2" || rc=$?
forget_pid "$D2"
check "the second deliver exited 0 on SIGTERM (exit $rc, $((SECONDS - t0)) s)" test "$rc" -eq 0
check "and finished its batch in hand: nothing aborted" \
  bash -c "! grep -Eq 'aborted [0-9]+ request' '$WORK/deliver-2.log'"
check "nothing of its batch was left unfinished for the next owner" \
  bash -c "! grep -q 'left for their next owner' '$WORK/deliver-2.log'"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null

# 3 and 4. Two replicas; a SIGHUP to transform; kill -9 one replica.
# Their batch is relay-deliver's default with the shipped config (100
# records a request, 4 requests at once, less an eighth), said here
# because the duplicates' bound below is counted in batches.
BATCH=350
DELIVER_LOG=deliver-a start_deliver "${GROUP_FAST[@]}" -X deliver.batch_size=$BATCH
DA=$DELIVER_PID; DA_URL=$(admin_url deliver-a.log)
DELIVER_LOG=deliver-b start_deliver "${GROUP_FAST[@]}" -X deliver.batch_size=$BATCH
DB=$DELIVER_PID; DB_URL=$(admin_url deliver-b.log)
shared() { local a b; a=$(metric "$DA_URL" relay_assigned_partitions)
           b=$(metric "$DB_URL" relay_assigned_partitions)
           [ "$a" != none ] && [ "$b" != none ] && [ "$a" -ge 1 ] && [ "$b" -ge 1 ] &&
           [ $((a + b)) -eq 3 ]; }
wait_for 60 shared || fail "the two replicas never shared the 3 partitions ($(metric "$DA_URL" relay_assigned_partitions) and $(metric "$DB_URL" relay_assigned_partitions))"
ok "the replicas share the partitions: $(metric "$DA_URL" relay_assigned_partitions) and $(metric "$DB_URL" relay_assigned_partitions)"
gen second 6000
produce_file second
kill -HUP "$TRANSFORM_PID"
check "transform reloaded on SIGHUP" wait_for 20 grep -q "reloaded" "$WORK/transform.log"
half() { [ "$(delivered_count)" -ge 6000 ]; }
wait_for 60 half || fail "the second wave never started arriving"
sim_fault '{"name":"steady","delay_ms":100,"times":-1}'
kill9 "$DA"
t0=$(date +%s.%N)
takeover() { [ "$(metric "$DB_URL" relay_assigned_partitions)" = 3 ]; }
wait_for 60 takeover || fail "the surviving replica never took all 3 partitions"
ok "the surviving replica took over all 3 partitions in $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s (session.timeout.ms 6000)"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null

wait_delivered 120 60 || true   # the loss check says what is missing
# Duplicates: the aborted requests, plus what the killed replica re-delivers:
# its batch in hand and at most worker.commits_in_flight (2) batches whose
# commit Kafka had not answered yet, of $BATCH records each. (Before that
# bound, a busy broker answered commits 4 batches late and 400 came twice.
# The bound once counted 100 records a batch, from when deliver sent one
# request at a time; a run with batches of 350 re-delivered 607.)
# Batches in flight (worker.batches_in_flight) add nothing here: deliver
# seals a batch once its requests are answered, and a sealed batch waits
# only for its dead letters' acks; there are none, so it is stored and
# committed in the loop turn that seals it, before the next request, and
# no sealed batch is held when the kill comes. (A worker whose outputs go
# to Kafka may re-deliver up to batches_in_flight - 1 more.)
check_loss drain-and-takeover --max-dlq 0 --max-dups $((ABORTED + 3 * BATCH))
check "deliver committed out.mparticle to the end" \
  wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle
done_checks
