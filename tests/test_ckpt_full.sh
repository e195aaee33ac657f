#!/bin/sh
# test_ckpt_full.sh - a checkpoint directory that fills up, for real: ckpt.dir on a small tmpfs
# (mount -t tmpfs -o size=N) with room for 0, 1 and 2 checkpoints, exactly 1, and half of one.
# Each case checks: the exit status per ckpt.on_error (continue: 0, stop: 1; a failed
# pre-emption checkpoint: 1 saying nothing was saved), exactly one 'dtrain: error' / 'dtrain:
# warning' line per failed checkpoint naming 'No space left on device', no signal or crash noise
# (HDF5's raw error stack included), no temporary file left, every older checkpoint verifies
# (dtrain inspect), ckpt_failures=N in the final line and the same params_crc as a run with room.
# Needs root (or CAP_SYS_ADMIN) to mount: elsewhere it says SKIP and still prints its summary.
# usage: sh tests/test_ckpt_full.sh [NP]   (DTRAIN=build-san/dtrain runs a sanitized binary)
T=test_ckpt_full
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
[ -n "${DTRAIN:-}" ] && DT=$DTRAIN
MNT=$TMP/mnt
trap 'umount "$MNT" 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$MNT"

summary() { echo "$T: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! mount -t tmpfs -o size=64k tmpfs "$MNT" 2> "$TMP/mount.err"; then
    echo "SKIP $T: cannot mount a tmpfs here ($(head -n 1 "$TMP/mount.err")): run as root to test a full disk"
    summary
fi
umount "$MNT"

# a tiny model: one checkpoint is ~70 KB, so a few fit in a few hundred KB
cat > "$TMP/tiny.cfg" <<'EOF'
[net]
input = 1x28x28
classes = 10

[flatten]

[linear]
name = fc
out = 10
EOF
EPOCHS=4
BASE="--model $TMP/tiny.cfg --data mnist --epochs $EPOCHS --set data.limit_train=1024
      --set data.limit_test=256 --set train.progress=never"

# train OUT_DIR ARGS...: stdout in $TMP/out, stderr in $TMP/err, status in $rc
train() {
    d=$1
    shift
    timeout_dump 120 mpirun -np "$NP" $DT_MPIRUN_FLAGS $DT train $BASE --ckpt-dir "$d" "$@" \
        > "$TMP/out" 2> "$TMP/err"
    rc=$?
}

# the reference: a directory with room
train "$TMP/ref"
crc_ref=$(grep -o 'params_crc=[0-9a-f]*' "$TMP/out")
steps=$(grep -o ' steps=[0-9]*' "$TMP/out" | cut -d= -f2)
size=$(wc -c < "$TMP/ref/ckpt-step$(ls "$TMP/ref" | sed -n 's/^ckpt-step\([0-9]*\)\.h5$/\1/p' | tail -n 1).h5")
if [ $rc -eq 0 ] && [ -n "$crc_ref" ] && [ -n "$steps" ] && grep -q 'ckpt_failures=0' "$TMP/out" && [ "$size" -gt 0 ]; then
    pass
else
    fail "reference run: exit $rc, no params_crc / ckpt_failures=0:"; cat "$TMP/out" "$TMP/err" >&2
    summary
fi
page=4096
P=$(( (size + page - 1) / page * page )) # what one checkpoint takes on a tmpfs
echo "$T: one checkpoint is $size bytes ($P on tmpfs)"

# full_case NAME KIB ON_ERROR SAVED FAILED RC [ARGS...]: a run with ckpt.dir on a KIB KiB tmpfs,
# expecting SAVED checkpoints kept, FAILED failed ones and exit status RC
full_case() {
    name=$1 kib=$2 mode=$3 want_saved=$4 want_failed=$5 want_rc=$6
    shift 6
    if ! mount -t tmpfs -o size=${kib}k tmpfs "$MNT"; then
        fail "$name: mount size=${kib}k failed"
        return
    fi
    train "$MNT" --set ckpt.on_error="$mode" "$@"
    nmsg=$(grep -c -E '^dtrain: (error|warning)' "$TMP/err")
    nenospc=$(grep -E '^dtrain: (error|warning)' "$TMP/err" | grep -c 'No space left on device')
    ntmp=$(ls -A "$MNT" | grep -c '\.tmp\.')
    saved=$(ls "$MNT" | grep -c '^ckpt-step[0-9]*\.h5$')
    bad=0
    for f in "$MNT"/ckpt-step*.h5; do
        [ -e "$f" ] || continue
        $DT inspect "$f" > "$TMP/insp" 2>&1 && grep -q verified "$TMP/insp" || bad=$((bad + 1))
    done
    ok=1
    if [ $rc -ne "$want_rc" ]; then
        fail "$name: exit status $rc, expected $want_rc"; ok=0
    fi
    if grep -q -i -E 'Segmentation|core dumped|MPI_ABORT|exited on signal|HDF5-DIAG|#000:|AddressSanitizer|runtime error' "$TMP/err"; then
        fail "$name: crash or raw HDF5 noise"; ok=0
    fi
    if [ "$nmsg" -ne "$want_failed" ] || [ "$nenospc" -ne "$want_failed" ]; then
        fail "$name: $nmsg error/warning lines ($nenospc naming ENOSPC), expected $want_failed"; ok=0
    fi
    if [ "$ntmp" -ne 0 ]; then
        fail "$name: $ntmp temporary file(s) left: $(ls -A "$MNT" | tr '\n' ' ')"; ok=0
    fi
    if [ "$saved" -ne "$want_saved" ] || [ $bad -ne 0 ]; then
        fail "$name: $saved checkpoints ($bad do not verify), expected $want_saved"; ok=0
    fi
    if [ "$mode" = continue ] && [ "$want_rc" -eq 0 ]; then
        if ! grep -q "^final: .*$crc_ref.* ckpt_failures=$want_failed\$" "$TMP/out"; then
            fail "$name: final line lacks $crc_ref / ckpt_failures=$want_failed"; ok=0
        fi
    fi
    if [ $ok -eq 1 ]; then
        pass
    else
        echo "--- $name: stdout, stderr" >&2; cat "$TMP/out" "$TMP/err" >&2
    fi
    umount "$MNT"
}

kib() { echo $(( ($1 + 1023) / 1024 )); }
full_case "room for none"        "$(kib $((P / 2)))"       continue 0 $EPOCHS 0
full_case "room for exactly one" "$(kib $P)"               continue 1 $((EPOCHS - 1)) 0
full_case "room for one"         "$(kib $((P + P / 2)))"   continue 1 $((EPOCHS - 1)) 0
full_case "room for two"         "$(kib $((2 * P + P / 2)))" continue 2 $((EPOCHS - 2)) 0
full_case "stop, room for one"   "$(kib $((P + P / 2)))"   stop     1 1 1
# a pre-emption (simulated: train.stop_at_step, in epoch 2) whose checkpoint does not fit: exit 1
full_case "pre-emption, room for one" "$(kib $((P + P / 2)))" continue 1 1 1 \
    --set train.stop_at_step=$((steps / EPOCHS + 2))
if grep -q 'nothing was saved' "$TMP/err"; then pass; else fail "pre-emption: no 'nothing was saved'"; fi

summary
