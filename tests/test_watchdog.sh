#!/bin/sh
# test_watchdog.sh - no rank waits forever, no rank dies without a word:
#  - dist.timeout: one rank stopped with SIGSTOP in the middle of training (2 ranks, the one
#    blocking-sized gradient allreduce, through shared memory (auto) and MPI; 3 ranks, gradient
#    buckets; 2 and 3 ranks, buckets through shared memory, whose waits on flags the watchdog
#    watches as it does MPI waits): the job exits 1 within
#    timeout + 15 s, with exactly one "dtrain: error" line naming the stopped rank and the step
#    and phase it has not reached;
#  - a rank held (by gdb, where installed) right where it enters the end-of-epoch sums, after the
#    others passed every earlier collective: they wait in a watched wait, not inside a blocking
#    MPI call, so the job still ends naming it (the hang of a rank stopped at an epoch's end);
#  - the same small timeout on runs that finish (2 and 3 ranks, with evaluation and checkpoints
#    on the way): no false alarm, same params_crc as with the watchdog off;
#  - a SIGUSR1 / SIGTERM right after start (before MPI_Init, data loading, the model) is recorded,
#    not fatal: the run stops at step 0 with one line saying so, exit 0.
# usage: sh tests/test_watchdog.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_watchdog
. tests/lib.sh
[ -x "$DT" ] || { echo "$T: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "$T: data/mnist missing (make data)" >&2; exit 1; }

SMALL="--model mlp --set data.limit_train=6000 --set data.limit_test=500 --set train.progress=never"

# stall_case NAME NP VICTIM ARGS...: SIGSTOP rank VICTIM once training runs; expect exit 1, one
# message naming it, within dist.timeout (3) + 15 s
stall_case() {
    name=$1 np=$2 victim=$3
    shift 3
    timeout -k 5 60 mpirun -np "$np" $DT_MPIRUN_FLAGS $DT train $SMALL --epochs 50 \
        --set dist.timeout=3 "$@" > "$TMP/out" 2> "$TMP/err" &
    tpid=$!
    for _ in $(seq 300); do grep -q '^epoch 1/' "$TMP/out" && break; sleep 0.1; done
    vpid=$(rank_pid "$tpid" "$victim")
    if [ -z "$vpid" ]; then
        fail "$name: no rank $victim process"
        kill "$tpid" 2>/dev/null
        wait "$tpid"
        return
    fi
    kill -STOP "$vpid"
    t0=$(date +%s)
    wait "$tpid"
    rc=$?
    secs=$(($(date +%s) - t0))
    kill -CONT "$vpid" 2>/dev/null
    kill -KILL "$vpid" 2>/dev/null
    n=$(grep -c 'dtrain: error' "$TMP/err")
    if [ $rc -ne 1 ]; then
        fail "$name: exit status $rc, expected 1"; cat "$TMP/err" >&2
    elif [ "$n" -ne 1 ]; then
        fail "$name: $n 'dtrain: error' lines, expected 1:"; cat "$TMP/err" >&2
    elif ! grep -q "dtrain: error: rank $victim has not \(reached\|completed\) step [0-9]* (.*) after [0-9]* s; last seen at step [0-9]* (.*); aborting" "$TMP/err"; then
        fail "$name: the message does not name rank $victim:"; cat "$TMP/err" >&2
    elif [ $secs -gt 18 ]; then
        fail "$name: took ${secs}s after the stop, expected <= 18"
    else
        pass
        echo "  $name: exit 1 after ${secs}s: $(grep 'dtrain: error' "$TMP/err")"
    fi
}

stall_case "2 ranks, rank 1 stopped" 2 1
stall_case "2 ranks, rank 1 stopped (mpi allreduce)" 2 1 --set train.allreduce=mpi
stall_case "2 ranks, rank 0 stopped (shm allreduce, gradient buckets)" 2 0 \
    --set train.allreduce=shm --set train.bucket_mb=0.25
stall_case "3 ranks, rank 1 stopped (shm allreduce, gradient buckets)" 3 1 \
    --set train.allreduce=shm --set train.bucket_mb=0.25
stall_case "3 ranks, rank 2 stopped (gradient buckets)" 3 2 --set train.bucket_mb=0.25
stall_case "2 ranks, rank 0 stopped" 2 0

# held_case: rank 2 held by gdb at its first dt_dist_sum of training (the end of epoch 1: no
# log.dir, so no step-row sums before it); dist.timeout 20 leaves gdb the seconds it needs to attach
held_case() {
    name="3 ranks, rank 2 held at the end-of-epoch sums"
    if ! command -v gdb > /dev/null; then
        echo "  skip: $name (no gdb)"
        return
    fi
    timeout -k 5 60 mpirun -np 3 $DT_MPIRUN_FLAGS $DT train $SMALL --epochs 50 \
        --set dist.timeout=20 --set train.bucket_mb=0.25 > "$TMP/out" 2> "$TMP/err" &
    tpid=$!
    vpid=''
    for _ in $(seq 200); do vpid=$(rank_pid "$tpid" 2); [ -n "$vpid" ] && break; sleep 0.05; done
    [ -n "$vpid" ] || { fail "$name: no rank 2 process"; kill "$tpid"; wait "$tpid"; return; }
    timeout 70 gdb -p "$vpid" -batch -ex 'break dt_dist_sum' -ex continue -ex 'shell sleep 65' \
        > "$TMP/gdb" 2>&1 &
    gpid=$!
    wait "$tpid"
    rc=$?
    kill "$gpid" 2>/dev/null
    wait "$gpid" 2>/dev/null
    if ! grep -aq 'hit Breakpoint 1, dt_dist_sum' "$TMP/gdb"; then
        echo "  skip: $name (gdb could not hold the rank: $(grep -a -m1 -i 'error\|denied' "$TMP/gdb"))"
    elif [ $rc -ne 1 ]; then
        fail "$name: exit status $rc, expected 1"; cat "$TMP/err" >&2
    elif [ "$(grep -c 'dtrain: error' "$TMP/err")" -ne 1 ] ||
         ! grep -q 'dtrain: error: rank 2 has not reached step [0-9]* (end of epoch)' "$TMP/err"; then
        fail "$name: the message does not name rank 2 at the end of epoch:"; cat "$TMP/err" >&2
    else
        pass
        echo "  $name: $(grep 'dtrain: error' "$TMP/err")"
    fi
}
held_case

# no false alarm: a 1 s limit, evaluation every epoch and checkpoints every 20 steps; the same
# parameters as with the watchdog off
for np in 2 3; do
    ok=1
    for to in 0 1; do
        timeout -k 5 120 mpirun -np $np $DT_MPIRUN_FLAGS $DT train $SMALL --epochs 2 \
            --ckpt-dir "$TMP/ck$np$to" --set ckpt.every_steps=20 \
            --set dist.timeout=$to > "$TMP/out" 2> "$TMP/err"
        rc=$?
        crc=$(sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$TMP/out")
        [ $rc -eq 0 ] && [ -n "$crc" ] || { ok=0; fail "np=$np timeout=$to: exit $rc"; cat "$TMP/err" >&2; }
        [ "$to" = 0 ] && want=$crc
    done
    [ $ok = 1 ] && { [ "$crc" = "$want" ] && pass || fail "np=$np: params_crc $crc with the watchdog, $want without"; }
done

# a signal right after start: recorded by handlers installed before anything else
for sig in USR1:10 TERM:15; do
    num=${sig#*:} sig=${sig%:*}
    timeout -k 5 60 mpirun -np 2 $DT_MPIRUN_FLAGS $DT train $SMALL --epochs 1 > "$TMP/out" 2> "$TMP/err" &
    tpid=$!
    vpid=''
    for _ in $(seq 2000); do vpid=$(rank_pid "$tpid" 1); [ -n "$vpid" ] && break; done
    # the moment main() has installed the handlers (before MPI_Init): the signal's bit in SigCgt
    bit=$((1 << (num - 1)))
    for _ in $(seq 2000); do
        mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$vpid/status" 2>/dev/null)
        [ -n "$mask" ] && [ $((0x$mask & bit)) -ne 0 ] && break
    done
    [ -n "$vpid" ] && kill -"$sig" "$vpid"
    wait "$tpid"
    rc=$?
    if [ -z "$vpid" ]; then
        fail "early SIG$sig: rank 1 not found"
    elif [ $rc -eq 0 ] && grep -q "stopped at step 0 by SIG$sig (pre-emption signal) before training: nothing to save" "$TMP/out" &&
       ! grep -q 'dtrain: error' "$TMP/err"; then
        pass
    else
        fail "early SIG$sig: exit $rc"; cat "$TMP/out" "$TMP/err" | tail -n 5 >&2
    fi
done

echo "$T: $passed passed, $failed failed"
[ $failed -eq 0 ]
