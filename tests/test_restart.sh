#!/bin/bash
# test_restart.sh - launch/dtrain-run --max-restarts (torchrun's restarts), at 2 ranks:
#  - rank 1 killed with SIGKILL in the middle of training (after a checkpoint): dtrain-run says why and restarts with
#    --resume auto; the run finishes with params_crc bitwise equal to an uninterrupted run;
#  - --min-ranks 1 with one rank "left" (DTRAIN_RANKS_CMD): the restart runs on 1 rank with the
#    checkpoint's global batch (--batch-size 128) and finishes all steps;
#  - a job that always fails: R restarts, then "giving up" and its exit status; a job stopped by a
#    signal dtrain-run forwarded is not restarted; bad options are refused.
# usage: bash tests/test_restart.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_restart
. tests/lib.sh
[ -x "$DT" ] || { echo "$T: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "$T: data/mnist missing (make data)" >&2; exit 1; }
export DTRAIN_MPIRUN_ARGS="--oversubscribe"
RUN=launch/dtrain-run
BASE=(train --model cnn --set data.limit_train=2000 --set data.limit_test=200 --set train.progress=never --epochs 2)
# cnn, not mlp: the mlp's 32 steps took 0.4 s, so on a fast machine the SIGKILL below could land
# after the last step (the run then ends twice); cnn leaves seconds between step 10 and the end.
crc() { sed -n 's/^final: .*params_crc=\([0-9a-f]*\).*/\1/p' "$1"; }

timeout -k 5 120 $RUN -np 2 "${BASE[@]}" > "$TMP/ref" 2>&1
WANT=$(crc "$TMP/ref")
[ -n "$WANT" ] || { fail "uninterrupted run: no params_crc"; tail -n 5 "$TMP/ref" >&2; }

# --- SIGKILL of rank 1 after the checkpoint of step 10: restarted, same parameters ---
timeout -k 5 150 $RUN -np 2 --max-restarts 2 "${BASE[@]}" --ckpt-dir "$TMP/ck" \
    --set ckpt.every_steps=5 > "$TMP/out" 2>&1 &
rpid=$!
killed=0
for _ in $(seq 600); do
    if grep -q 'checkpoint .*step 10,' "$TMP/out"; then
        v=$(rank_pid "$(pgrep -P $rpid)" 1)
        [ -n "$v" ] && kill -KILL "$v" && killed=1
        break
    fi
    sleep 0.05
done
wait $rpid
rc=$?
if [ $killed = 1 ] && [ $rc -eq 0 ] && grep -q '^dtrain-run: restart 1/2: the job failed (.*); running it again with --resume auto on 2 ranks' "$TMP/out" &&
   grep -q 'resumed from .*ckpt-step000000[1-3]' "$TMP/out" && [ "$(crc "$TMP/out")" = "$WANT" ]; then
    pass
    echo "  $(grep '^dtrain-run: restart' "$TMP/out")"
else
    fail "SIGKILL + restart (killed=$killed, exit $rc): params_crc '$(crc "$TMP/out")' vs '$WANT'"; grep -E 'dtrain-run|resumed|final|error' "$TMP/out" >&2
fi

# --- --min-ranks: the restart runs on the ranks left, with the same global batch ---
rm -rf "$TMP/ck"
timeout -k 5 120 $RUN -np 2 "${BASE[@]}" --ckpt-dir "$TMP/ck" --set train.stop_at_step=20 > "$TMP/out" 2>&1
# the first attempt loses rank 1 before training; the restart finds one rank left
DTRAIN_RANKS_CMD='echo 1' timeout -k 5 150 $RUN -np 2 --max-restarts 1 --min-ranks 1 "${BASE[@]}" \
    --ckpt-dir "$TMP/ck" --set train.stop_at_step=25 > "$TMP/out" 2>&1 &
rpid=$!
killed=0
# once rank 0 has printed its data line, so rank 1 is past MPI_Init (a rank killed inside MPI_Init
# can leave mpirun waiting for it)
for _ in $(seq 2000); do
    if grep -q '^data ' "$TMP/out"; then
        v=$(rank_pid "$(pgrep -P $rpid)" 1)
        if [ -n "$v" ]; then kill -KILL "$v" && killed=1; break; fi
    fi
    sleep 0.05
done
wait $rpid
rc=$?
if [ $killed = 1 ] && [ $rc -eq 0 ] && grep -q 'restart 1/1: .* on 1 rank$' "$TMP/out" &&
   grep -q 'resumed from .*ckpt-step00000020.h5: .* 1 rank x batch 128 (global 128) (world size changed)' "$TMP/out" &&
   grep -q '^stopped at step 25 ' "$TMP/out"; then
    pass
else
    fail "--min-ranks 1 (killed=$killed, exit $rc)"; grep -E 'dtrain-run|resumed|stopped|final|error' "$TMP/out" >&2
fi

# --- always failing: R restarts, then giving up with the job's status ---
timeout -k 5 120 $RUN -np 2 --max-restarts 2 train --set train.epochs=0 > "$TMP/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c '^dtrain-run: restart [12]/2: the job failed (exit status 1)' "$TMP/out")" = 2 ] &&
   grep -q '^dtrain-run: error: the job failed (exit status 1) and all 2 restarts are used up: giving up' "$TMP/out"; then pass
else fail "always failing: exit $rc"; cat "$TMP/out" >&2; fi

# --- a forwarded pre-emption signal: dtrain checkpoints and exits 0; never a restart ---
rm -rf "$TMP/ck"
timeout -k 5 120 $RUN -np 2 --max-restarts 2 "${BASE[@]}" --epochs 20 --ckpt-dir "$TMP/ck" > "$TMP/out" 2>&1 &
rpid=$!
for _ in $(seq 600); do grep -q '^epoch 1/20' "$TMP/out" && break; sleep 0.05; done
kill -USR1 "$(pgrep -P $rpid)" # dtrain-run, below timeout
wait $rpid
rc=$?
if [ $rc -eq 0 ] && grep -q 'stopped at step .* by SIGUSR1' "$TMP/out" && ! grep -q 'dtrain-run: restart' "$TMP/out"; then pass
else fail "forwarded SIGUSR1: exit $rc"; grep -E 'dtrain-run|stopped|final|error' "$TMP/out" >&2; fi

# --- bad options ---
for bad in "--max-restarts x" "--min-ranks 1" "--max-restarts 1 --min-ranks 3" "--max-restarts 1 -- eval x.h5"; do
    # shellcheck disable=SC2086
    $RUN -np 2 $bad train > "$TMP/out" 2>&1
    [ $? -eq 2 ] && grep -q '^dtrain-run: error: ' "$TMP/out" && pass || { fail "bad options '$bad'"; cat "$TMP/out" >&2; }
done

echo "$T: $passed passed, $failed failed"
[ $failed -eq 0 ]
