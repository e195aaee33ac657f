#!/bin/sh
# test_resume_bad.sh - checkpoints that verify (correct checksums) but hold impossible values, or
# do not fit the run, give ONE error naming the file and the item, a non-zero exit on every rank,
# no hang and no crash; --resume auto skips an invalid newest checkpoint (naming why) and resumes
# from the previous one. Checkpoints are edited and resealed with build/tests/tool_ckedit.
# Also: ckpt.every_steps writes no checkpoint at step 0.
# usage: sh tests/test_resume_bad.sh [NP]
cd "$(dirname "$0")/.." || exit 1
T=test_resume_bad
. tests/lib.sh
BUILD=${BUILD:-build}
EDIT=$BUILD/tests/tool_ckedit
RUN="--model mlp --epochs 2 --set data.limit_test=500 --set train.progress=never"

# a checkpoint at step 15 (epoch 1, 1920 of 2560 samples done), one every 5 steps
timeout_dump 120 mpirun -np "$NP" $DT_MPIRUN_FLAGS $DT train $RUN --set data.limit_train=2560 \
    --ckpt-dir "$TMP/ck" --set ckpt.every_steps=5 --set train.stop_at_step=15 > "$TMP/out" 2>&1 ||
    fail "setup run: exit $?"
GOOD=$TMP/ck/ckpt-step00000015.h5
[ -f "$GOOD" ] && pass || fail "setup run wrote no $GOOD"
if [ -e "$TMP/ck/ckpt-step00000000.h5" ] || grep -q 'step 0,' "$TMP/out"; then
    fail "ckpt.every_steps wrote a checkpoint at step 0"
else
    pass
fi
W1=$($DT inspect "$GOOD" | awk '$1 ~ /^model\// { print $1; exit }')

# the refused checkpoints are tried 4 at a time (each mostly waits on MPI start-up), until the
# step-15 file is edited in place below: lib.sh's par_begin
par_begin
# bad NAME ITEM INDEX VALUE PATTERN: GOOD with ITEM[INDEX] = VALUE, resealed, must be refused
bad() {
    if ! "$EDIT" "$GOOD" "$TMP/$1.h5" set "$2" "$3" "$4"; then
        fail "$1: tool_ckedit failed"
        return
    fi
    expect_dtrain_error "$1" "$TMP/$1.h5: $5" train $RUN --set data.limit_train=2560 \
        --resume "$TMP/$1.h5"
}
bad world0 train/world_size 0 0 "train/world_size = 0: expected an integer >= 1"
bad batch0 train/batch_size 0 0 "train/batch_size = 0: expected an integer >= 1"
bad world_neg train/world_size 0 -2 "train/world_size = -2: expected an integer >= 1"
bad batch_neg train/batch_size 0 -16 "train/batch_size = -16: expected an integer >= 1"
bad step_neg train/step 0 -1 "train/step = -1: expected an integer >= 0"
bad epoch_neg train/epoch 0 -3 "train/epoch = -3: expected an integer >= 0"
bad pos_neg train/epoch_pos 0 -128 "train/epoch_pos = -128: expected an integer >= 0"
bad opt_step_neg optim/step 0 -5 "optim/step = -5: expected an integer >= 0"
bad opt_step_huge optim/step 0 9223372036854775807 "optim/step = 9223372036854775807: expected at most 2^53"
bad weight_nan "$W1" 17 nan "$W1\[17\] = nan: expected finite values"
bad weight_inf "$W1" 0 inf "$W1\[0\] = inf: expected finite values"
bad step_zero train/step 0 0 "train/step = 0 with train/epoch"
bad step_epoch train/epoch 0 1 "train/step = 15 after 1 finished epochs: expected at least 19"
bad streams rng/streams 1 7 "rng/streams row 0"
bad world_big train/world_size 0 3 "rng/streams has 2 rows"
bad pos_beyond train/epoch_pos 0 100000 "train/epoch_pos = 100000: beyond"

# dtrain inspect runs the same validation as a resume, as one loop over the state table: a valid
# checkpoint lists every item of the file in the table; a refused one is one error naming the file
# and the item, exit 1 on every rank
if $DT inspect "$GOOD" > "$TMP/insp" 2>&1 && grep -q "^state: valid" "$TMP/insp" &&
    ! grep -q "items the table does not know" "$TMP/insp" &&
    [ "$(grep -c '^  [a-z]*/' "$TMP/insp")" -ge 20 ] &&
    grep -q "^  train/step  *int64  *()  *shared  *15$" "$TMP/insp"; then
    pass
else
    fail "inspect of a valid checkpoint"; cat "$TMP/insp" >&2
fi
expect_dtrain_error inspect_world0 "$TMP/world0.h5: train/world_size = 0: expected an integer >= 1" \
    inspect "$TMP/world0.h5"
expect_dtrain_error inspect_nan "$TMP/weight_nan.h5: $W1\[17\] = nan: expected finite values" \
    inspect "$TMP/weight_nan.h5"
expect_dtrain_error inspect_streams "$TMP/streams.h5: rng/streams row 0" inspect "$TMP/streams.h5"

# an item missing, an unparseable configuration attribute
"$EDIT" "$GOOD" "$TMP/drop.h5" drop optim/step || fail "drop: tool_ckedit failed"
expect_dtrain_error drop_item "$TMP/drop.h5: no item 'optim/step'" train $RUN \
    --set data.limit_train=2560 --resume "$TMP/drop.h5"
expect_dtrain_error inspect_drop "$TMP/drop.h5: no item 'optim/step'" inspect "$TMP/drop.h5"
if $DT inspect "$TMP/drop.h5" 2> /dev/null | grep -q "^  optim/step .*MISSING$"; then pass; else
    fail "inspect lists the missing item as MISSING"; fi
"$EDIT" "$GOOD" "$TMP/cfg.h5" attr config "garbage without equals sign" ||
    fail "attr: tool_ckedit failed"
expect_dtrain_error bad_config "$TMP/cfg.h5: attribute 'config'" train $RUN \
    --set data.limit_train=2560 --resume "$TMP/cfg.h5"

# the run's data is smaller than the checkpoint's (issue 16: was sampler.c:57 assertion)
expect_dtrain_error smaller_data "ckpt-step00000015.h5: train/epoch_pos = 1920: beyond" train $RUN \
    --set data.limit_train=1280 --ckpt-dir "$TMP/ck" --resume auto
# more steps done than this run has (issue 16: was an exit 0 with train_loss=nan)
"$EDIT" "$GOOD" "$TMP/steps.h5" set train/step 0 50 &&
    "$EDIT" "$TMP/steps.h5" "$TMP/steps.h5" set rng/streams 2 50 &&
    "$EDIT" "$TMP/steps.h5" "$TMP/steps.h5" set rng/streams 5 50 || fail "steps: tool_ckedit failed"
expect_dtrain_error more_steps "$TMP/steps.h5: train/step = 50 in epoch 1: beyond this run's 40 steps" \
    train $RUN --set data.limit_train=2560 --resume "$TMP/steps.h5"

par_end
# --resume auto: the newest checkpoint invalid -> skipped, named with the reason; the older used
"$EDIT" "$GOOD" "$GOOD" set train/world_size 0 0 || fail "auto: tool_ckedit failed"
timeout_dump 120 mpirun -np "$NP" $DT_MPIRUN_FLAGS $DT train $RUN --set data.limit_train=2560 \
    --ckpt-dir "$TMP/ck" --set train.stop_at_step=12 --resume auto > "$TMP/out" 2>&1
rc=$?
if [ $rc -eq 0 ] &&
    grep -q "skipped .*ckpt-step00000015.h5: train/world_size = 0: expected an integer >= 1" "$TMP/out" &&
    grep -q "resumed from .*ckpt-step00000010.h5" "$TMP/out"; then
    pass
else
    fail "auto: exit $rc, expected the step-15 file skipped and a resume from step 10:"
    cat "$TMP/out" >&2
fi

echo "$T: $passed passed, $failed failed"
[ $failed -eq 0 ]
