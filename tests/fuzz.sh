#!/bin/sh
# fuzz.sh - seeded fuzzing of dtrain's inputs (issue 16): mutated model files, config files,
# IDX, CIFAR-10 and HDF5 data files and checkpoints (tests/tool_fuzzgen.c), each run through the
# real dtrain with tiny limits. Every case must exit 0, or 1 with a "dtrain: error" message: a
# signal, a timeout, another exit status or a sanitizer report is a failure, kept for reproduction.
#
# usage: sh tests/fuzz.sh [BUILD_DIR] [BUDGET_S] [MAX_CASES]
#   BUILD_DIR  the dtrain under test is BUILD_DIR/dtrain (make test: build-san, the sanitizer build)
#   BUDGET_S   stop starting cases after this many seconds (0: no time limit; default 60)
#   MAX_CASES  stop after this many cases (0: no limit; default 0)
# environment:
#   FUZZ_SEED=N         first case seed (default 1); case k uses seed N + k: a run is reproducible
#   FUZZ_CATEGORIES     default "model config idx cifar hdf5 ckpt reseal"; reseal: checkpoints
#                       rewritten with valid checksums around impossible values (world_size = 0,
#                       ...), which only the loader's semantic validation (state.c) can refuse
#   FUZZ_TIMEOUT=S      per case (default 60; a case normally takes 1 to 3 s)
#   FUZZ_KEEP=DIR       where failing cases are kept (default BUILD_DIR/fuzz-failures)
#   FUZZ_VERBOSE=1      one line per case
# A model case that times out AFTER dtrain accepted the model and loaded the data ("data ..." on
# stdout) is a valid but expensive model (within the size limits), reported as "slow" and not
# counted; every other timeout is a hang.
# Prints one line per failure (category, seed, mutation, the command to reproduce it), then the
# totals and the summary line "fuzz: N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${1:-build-san}
BUDGET=${2:-60}
MAX=${3:-0}
SEED0=${FUZZ_SEED:-1}
CATS=${FUZZ_CATEGORIES:-model config idx cifar hdf5 ckpt reseal}
CASE_T=${FUZZ_TIMEOUT:-60}
KEEP=${FUZZ_KEEP:-$ROOT/$B/fuzz-failures}
DT=$ROOT/$B/dtrain
[ -x "$DT" ] || { echo "fuzz: $DT missing (make SAN=address,undefined all, or give a build folder)" >&2; exit 1; }
GEN=$ROOT/$B/tests/tool_fuzzgen
[ -x "$GEN" ] || GEN=$ROOT/build/tests/tool_fuzzgen
MK=$ROOT/$B/tests/tool_mkdata
[ -x "$MK" ] || MK=$ROOT/build/tests/tool_mkdata
[ -x "$GEN" ] && [ -x "$MK" ] || { echo "fuzz: tool_fuzzgen / tool_mkdata missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "fuzz: data/mnist missing (make data)" >&2; exit 1; }
. scripts/mpi-env.sh
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-fuzz.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
S=$TMP/seeds
mkdir -p "$S" "$TMP/run"
# the binaries under test, frozen: a rebuild during a long run must not change them mid-way
cp "$DT" "$TMP/dtrain" && cp "$GEN" "$TMP/tool_fuzzgen" || exit 1
DT0=$DT
DT=$TMP/dtrain GEN=$TMP/tool_fuzzgen

# --- seeds: small valid inputs of every kind ---
# IDX: the first 64 training and test images of MNIST, counts patched to 64
mkdir -p "$S/idx/mnist"
for f in train t10k; do
    head -c $((16 + 64 * 784)) data/mnist/$f-images-idx3-ubyte > "$S/idx/mnist/$f-images-idx3-ubyte"
    head -c $((8 + 64)) data/mnist/$f-labels-idx1-ubyte > "$S/idx/mnist/$f-labels-idx1-ubyte"
    for g in images-idx3 labels-idx1; do
        printf '\000\000\000\100' | dd of="$S/idx/mnist/$f-$g-ubyte" bs=1 seek=4 conv=notrunc status=none
    done
done
"$MK" cifar "$S/cif" 16 16 > /dev/null || { echo "fuzz: tool_mkdata cifar failed" >&2; exit 1; }
"$MK" hdf5 "$S/tr.h5" 48 1 28 28 nchw u8 > /dev/null && "$MK" hdf5 "$S/te.h5" 16 1 28 28 nhwc f32 > /dev/null ||
    { echo "fuzz: tool_mkdata hdf5 failed" >&2; exit 1; }
LIM="--epochs 1 --set data.limit_train=48 --set data.limit_test=16 --batch-size 16 --set train.progress=never"
# a config file: the resolved configuration a run prints; and a checkpoint of that run
(cd "$TMP/run" && timeout -k 5 300 "$DT" train --data-dir "$S/idx" $LIM --ckpt-dir "$S/ck" --set log.header=full > "$S/seedrun.out" 2>&1) ||
    { echo "fuzz: the seed run failed:" >&2; tail -n 20 "$S/seedrun.out" >&2; exit 1; }
sed -n '/^# resolved configuration/,/^# end of configuration/p' "$S/seedrun.out" > "$S/config.ini"
CKPT=$(ls "$S"/ck/ckpt-step*.h5 2> /dev/null | tail -n 1)
[ -s "$S/config.ini" ] && [ -n "$CKPT" ] || { echo "fuzz: the seed run left no config or checkpoint" >&2; exit 1; }
printf '[optim]\nlr = 0.05\nmomentum = 0.9\n[sched]\nkind = cosine\n[train]\nbatch_size = 8\n' > "$S/small.ini"

CATS=$(echo $CATS)
NCAT=$(echo "$CATS" | wc -w)
passed=0 failed=0 crashes=0 hangs=0 sanitizer=0 nomsg=0 cases=0 slow=0
start=$(date +%s)
mkdir -p "$KEEP"

# run_case CAT SEED DESC NP ARGS...: runs dtrain ARGS in a scratch folder and classifies the outcome
run_case() {
    cat=$1 seed=$2 desc=$3 np=$4
    shift 4
    rm -rf "$TMP/case" && mkdir -p "$TMP/case"
    if [ "$np" -gt 1 ]; then
        (cd "$TMP/case" && timeout -k 5 "$CASE_T" mpirun -np "$np" $DT_MPIRUN_FLAGS "$DT" "$@") > "$TMP/out" 2> "$TMP/err"
    else
        (cd "$TMP/case" && timeout -k 5 "$CASE_T" "$DT" "$@") > "$TMP/out" 2> "$TMP/err"
    fi
    rc=$?
    why=
    if grep -q -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$TMP/err"; then
        why=sanitizer; sanitizer=$((sanitizer + 1))
    elif { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && [ "$cat" = model ] && grep -q '^data ' "$TMP/out"; then
        # a valid model that is merely expensive (conv out = 65536 is within the limits): it was
        # parsed, built and given its data, then training outlasted the case. Not a hang.
        slow=$((slow + 1))
        echo "slow fuzz $cat seed $seed: a valid model, training outlasted ${CASE_T} s [$desc]"
        return
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        why="timeout (${CASE_T} s)"; hangs=$((hangs + 1))
    elif [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
        why="exit status $rc"; crashes=$((crashes + 1))
    elif grep -q -i -E 'core dumped|MPI_ABORT|Segmentation|signal [0-9]|assertion failed' "$TMP/err"; then
        why="crash noise"; crashes=$((crashes + 1))
    elif [ $rc -eq 1 ] && [ "$(grep -c 'dtrain: error' "$TMP/err")" -ne 1 ]; then
        why="exit 1 without exactly one 'dtrain: error' line"; nomsg=$((nomsg + 1))
    fi
    cases=$((cases + 1))
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        [ "${FUZZ_VERBOSE:-0}" = 1 ] && echo "ok $cat $seed rc=$rc $desc $(grep 'dtrain: error' "$TMP/err" | head -n 1 | cut -c1-160)"
        return
    fi
    failed=$((failed + 1))
    k="$KEEP/$cat-$seed"
    rm -rf "$k" && mkdir -p "$k" && cp -r "$TMP/in" "$k/" 2> /dev/null
    cp "$TMP/err" "$k/stderr"
    [ -d "$KEEP/seeds" ] || cp -r "$S" "$KEEP/seeds"
    echo "FAIL fuzz $cat seed $seed: $why [$desc]"
    echo "     input kept in $k; reproduce: (cd $k && $DT0 $*)" | sed -e "s|$TMP/in|$k/in|g" -e "s|$S|$KEEP/seeds|g"
    grep -E 'dtrain: error|ERROR|runtime error|assertion|signal' "$TMP/err" | head -n 3 | sed 's/^/     /'
}

i=0
while :; do
    [ "$MAX" -gt 0 ] && [ $cases -ge "$MAX" ] && break
    [ "$BUDGET" -gt 0 ] && [ $(($(date +%s) - start)) -ge "$BUDGET" ] && break
    seed=$((SEED0 + i))
    # the category of case i: round robin over the chosen ones
    j=$((i % NCAT + 1))
    cat=$(echo "$CATS" | cut -d' ' -f$j)
    i=$((i + 1))
    np=1
    [ $((seed % 8)) -eq 0 ] && np=2
    rm -rf "$TMP/in" && mkdir -p "$TMP/in"
    IN=$TMP/in
    case $cat in
    model)
        set -- mlp lenet5 cnn resnet20
        shift $((seed % 4))
        m=$1
        desc=$("$GEN" text "$seed" "models/$m.cfg" "$IN/$m.cfg") || continue
        run_case model "$seed" "$desc" $np train --model "$IN/$m.cfg" --data-dir "$S/idx" $LIM ;;
    config)
        src=$S/config.ini
        [ $((seed % 3)) -eq 0 ] && src=$S/small.ini
        desc=$("$GEN" text "$seed" "$src" "$IN/c.ini") || continue
        run_case config "$seed" "$desc" $np train -c "$IN/c.ini" --data-dir "$S/idx" $LIM --model mlp --ckpt-dir none ;;
    idx)
        cp -r "$S/idx/mnist" "$IN/mnist"
        set -- train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
        shift $((seed % 4))
        desc="$1 $("$GEN" bin "$seed" "$S/idx/mnist/$1" "$IN/mnist/$1")" || continue
        run_case idx "$seed" "$desc" $np train --data-dir "$IN" $LIM ;;
    cifar)
        cp -r "$S/cif/cifar10" "$IN/cifar10"
        set -- data_batch_1.bin data_batch_3.bin test_batch.bin
        shift $((seed % 3))
        desc="$1 $("$GEN" bin "$seed" "$S/cif/cifar10/$1" "$IN/cifar10/$1")" || continue
        run_case cifar "$seed" "$desc" $np train --data cifar10 --data-dir "$IN" --model lenet5 $LIM ;;
    hdf5)
        cp "$S/tr.h5" "$S/te.h5" "$IN/"
        f=tr.h5
        [ $((seed % 2)) -eq 0 ] && f=te.h5
        desc="$f $("$GEN" bin "$seed" "$S/$f" "$IN/$f")" || continue
        run_case hdf5 "$seed" "$desc" $np train --data hdf5 --set data.h5_train="$IN/tr.h5" \
            --set data.h5_test="$IN/te.h5" $LIM ;;
    ckpt)
        desc=$("$GEN" bin "$seed" "$CKPT" "$IN/ck.h5") || continue
        case $((seed % 3)) in
        0) run_case ckpt "$seed" "$desc" 1 inspect "$IN/ck.h5" ;;
        1) run_case ckpt "$seed" "$desc" $np eval "$IN/ck.h5" --data-dir "$S/idx" --set data.limit_test=16 ;;
        *) run_case ckpt "$seed" "$desc" $np train --data-dir "$S/idx" $LIM --epochs 2 --resume "$IN/ck.h5" ;;
        esac ;;
    reseal)
        desc=$("$GEN" reseal "$seed" "$CKPT" "$IN/ck.h5" 2> "$TMP/generr") || continue
        case $((seed % 3)) in
        0) run_case reseal "$seed" "$desc" 1 inspect "$IN/ck.h5" ;;
        1) run_case reseal "$seed" "$desc" $np eval "$IN/ck.h5" --data-dir "$S/idx" --set data.limit_test=16 ;;
        *) run_case reseal "$seed" "$desc" $np train --data-dir "$S/idx" $LIM --epochs 2 --resume "$IN/ck.h5" ;;
        esac ;;
    *)
        echo "fuzz: unknown category '$cat': expected model config idx cifar hdf5 ckpt reseal" >&2
        exit 1 ;;
    esac
done
secs=$(($(date +%s) - start))
[ $failed -eq 0 ] && rmdir "$KEEP" 2> /dev/null
echo "fuzz ($B, categories: $CATS, seeds $SEED0..$((SEED0 + i - 1))): $cases cases in $secs s:" \
     "$crashes crashes, $hangs hangs, $sanitizer sanitizer reports, $nomsg without one message," \
     "$slow valid but slow models (not counted)"
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
