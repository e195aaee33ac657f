#!/bin/sh
# test_threads.sh - threads per rank (issue 13) from the command line:
#   - every built-in model ends 6 steps at batch 48 (three chunks of 16 images; resnet9: 2 steps
#     on a small synthetic CIFAR-10) with the same params_crc at threads 1, 2 and 3, and at
#     2 ranks x 1 and 2 ranks x 2 threads, in fp32 and bf16 (resnet9 on oneDNN where kernels.conv
#     = auto picks it: its 64+ channel layers on AVX-512);
#   - at 2 threads, avx2, avx2w16 and avx512 (those this CPU runs) end with the same params_crc;
#   - oneDNN's convolutions give the same params_crc at OMP_NUM_THREADS 1, 2 and 3;
#   - threads = auto: the run header shows the CPUs of the affinity mask shared by the ranks
#     (1 rank: nproc; taskset to one CPU: 1; 2 unbound ranks: nproc / 2, at least 1);
#   - more threads than CPUs: exactly one warning line (rank 0), the run still trains;
#   - bind: cores binds 2 threads on 2 CPUs (the header names the CPUs) with the params_crc of
#     none; auto places the threads on the machine's whole mask without binding them (the header
#     says so) and binds a smaller mask; 1 thread per rank is never bound;
#   - DT_POOL_STATS=1: statistics per parallel loop at exit (at 1 thread with a 2-thread prediction)
#     and the same params_crc as without it;
#   - bad values: one message naming the key and what was expected, every rank exits non-zero.
# usage: sh tests/test_threads.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_threads
. tests/lib.sh

[ -x "$DT" ] || { echo "test_threads: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || skip_all "data/mnist missing (make data)"

BASE="--set train.progress=never --epochs 1 --set train.max_steps=6 --batch-size 48
      --set data.limit_train=2000 --set data.limit_test=200"
crc() { grep '^final:' "$1" | grep -o 'params_crc=[0-9a-f]*'; }

# resnet9 takes 3x32x32 only: a small CIFAR-10 set (tests/tool_mkdata.c)
MK=${BUILD:-build}/tests/tool_mkdata
"$MK" cifar "$TMP" 100 50 > /dev/null || die "tool_mkdata cifar failed"
CIFAR="--data cifar10 --set data.dir=$TMP --set train.max_steps=2"

# --- every built-in model: the same bits at threads 1, 2, 3 (1 rank) and 1, 2 (2 ranks) ---
# same_bits PRECISION MODELS...
same_bits() {
    prec=$1
    shift
    for model in "$@"; do
        ref=
        extra=
        [ "$model" = resnet9 ] && extra=$CIFAR
        for cfg in "1 1" "1 2" "1 3" "2 1" "2 2"; do
            set -- $cfg
            run_dtrain 300 "$1" train $BASE $extra --model "$model" --threads "$2" \
                --set train.precision="$prec" > "$TMP/$model.out" 2>&1
            c=$(crc "$TMP/$model.out")
            if [ -z "$c" ]; then
                fail "$model $prec $1 rank(s) x $2 threads: no final line:"
                tail -5 "$TMP/$model.out" >&2
                continue
            fi
            if [ "$1" = 1 ] && [ "$2" = 1 ]; then
                ref=$c
            elif [ "$1" = 2 ] && [ "$2" = 1 ]; then
                ref2=$c
            fi
            want=$ref
            [ "$1" = 2 ] && want=$ref2
            [ "$c" = "$want" ] && pass "$model $prec $1 rank(s) x $2 threads: $c" ||
                fail "$model $prec $1 rank(s) x $2 threads: $c, expected $want"
        done
    done
}
same_bits fp32 mlp lenet5 cnn resnet20 resnet9
# bf16: the bf16 GEMM split into panels, the bf16 convolutions into chunks of 16 images
same_bits bf16 mlp lenet5 cnn resnet20 resnet9

# --- across ISAs at 2 threads ---
# runs ISA: whether this CPU runs ISA (one step of the mlp), asked once per ISA
runs() {
    eval "_r=\${RUNS_$1:-}"
    if [ -z "$_r" ]; then
        $DT train $BASE --set train.max_steps=1 --set kernels.isa="$1" > /dev/null 2>&1 && _r=yes || _r=no
        eval "RUNS_$1=$_r"
    fi
    [ "$_r" = yes ]
}
for model in lenet5 resnet20 mlp; do
    ref=
    for isa in avx2 avx2w16 avx512; do
        runs "$isa" || { echo "  skipped $isa: this CPU cannot run it"; continue; }
        run_dtrain 300 1 train $BASE --model "$model" --threads 2 --set kernels.isa=$isa \
            > "$TMP/isa.out" 2>&1
        c=$(crc "$TMP/isa.out")
        [ -z "$ref" ] && ref=$c && refisa=$isa
        [ -n "$c" ] && [ "$c" = "$ref" ] && pass "$model $isa x 2 threads: $c" ||
            fail "$model $isa x 2 threads: '$c', $refisa gave $ref"
    done
done

# --- oneDNN's convolutions (kernels.conv = onednn, every ISA) on one OpenMP thread whatever
# OMP_NUM_THREADS says: its kernels fix their thread count when they are made, and a weight
# gradient summed by 2 or 3 OpenMP threads has other bits (resnet20's first layer did) ---
ref=
for o in 1 2 3; do
    OMP_NUM_THREADS=$o run_dtrain 300 1 train $BASE --model resnet20 --threads 1 \
        --set kernels.conv=onednn > "$TMP/omp.out" 2>&1
    c=$(crc "$TMP/omp.out")
    [ -z "$ref" ] && ref=$c
    [ -n "$c" ] && [ "$c" = "$ref" ] && pass "kernels.conv = onednn, OMP_NUM_THREADS=$o: $c" ||
        fail "kernels.conv = onednn, OMP_NUM_THREADS=$o: '$c', OMP_NUM_THREADS=1 gave $ref"
done

# --- DT_POOL_STATS=1: per-loop statistics at exit, and the same bits (at 1 thread the kernels then
# split their loops as 2 threads would, and run the parts in order) ---
$DT train $BASE --model lenet5 --threads 1 > "$TMP/nostats.out" 2>&1
ref=$(crc "$TMP/nostats.out")
for t in 1 2; do
    DT_POOL_STATS=1 timeout 300 $DT train $BASE --model lenet5 --threads $t \
        > "$TMP/stats.out" 2> "$TMP/stats.err"
    c=$(crc "$TMP/stats.out")
    sites=$(grep -c '^pool site 0x[0-9a-f]* [0-9]' "$TMP/stats.err")
    [ -n "$ref" ] && [ "$c" = "$ref" ] && pass "DT_POOL_STATS=1, $t thread(s): $c" ||
        fail "DT_POOL_STATS=1, $t thread(s): '$c', without it '$ref'"
    grep -q "^pool stats: threads=$t," "$TMP/stats.err" && [ "$sites" -ge 4 ] &&
        grep -q '^pool stats: [0-9]* regions, [0-9]* split; caller CPU outside split regions' \
            "$TMP/stats.err" && pass "DT_POOL_STATS=1, $t thread(s): $sites call sites" ||
        { fail "DT_POOL_STATS=1, $t thread(s): no statistics ($sites sites)"; cat "$TMP/stats.err" >&2; }
    if [ "$t" = 1 ]; then
        grep -q 'predicted 1x2/1x1 [0-9.]* to [0-9.]*' "$TMP/stats.err" &&
            pass "DT_POOL_STATS=1, 1 thread: a 2-thread prediction" ||
            fail "DT_POOL_STATS=1, 1 thread: no prediction"
    fi
done
[ -z "$(grep '^pool' "$TMP/nostats.out")" ] && pass "no statistics without DT_POOL_STATS" ||
    fail "statistics printed without DT_POOL_STATS"

# --- threads = auto ---
header() { grep -o '^# dtrain [^:]*: [0-9]* ranks* x [0-9]* threads*' "$1" | sed 's/.*: //'; }
# the CPUs of the affinity mask, what threads = auto counts (GNU nproc would honour OMP_NUM_THREADS
# and OMP_THREAD_LIMIT, which dtrain does not read for its pool)
n=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
run_dtrain 120 1 train $BASE > "$TMP/auto1.out" 2>&1
want="1 rank x $n thread"
[ "$n" -gt 1 ] && want="${want}s"
[ "$(header "$TMP/auto1.out")" = "$want" ] && pass "auto, 1 rank: $want" ||
    fail "auto, 1 rank: '$(header "$TMP/auto1.out")', expected '$want'"
if command -v taskset > /dev/null; then
    timeout 120 taskset -c 0 $DT train $BASE > "$TMP/auto0.out" 2>&1
    [ "$(header "$TMP/auto0.out")" = "1 rank x 1 thread" ] && pass "auto, bound to 1 CPU: 1 thread" ||
        fail "auto, taskset -c 0: '$(header "$TMP/auto0.out")'"
fi
half=$((n / 2))
[ "$half" -lt 1 ] && half=1
want="2 ranks x $half thread"
[ "$half" -gt 1 ] && want="${want}s"
run_dtrain 120 2 train $BASE > "$TMP/auto2.out" 2>&1
[ "$(header "$TMP/auto2.out")" = "$want" ] && pass "auto, 2 unbound ranks: $want" ||
    fail "auto, 2 ranks: '$(header "$TMP/auto2.out")', expected '$want'"

# --- oversubscription: one warning line, still trains ---
run_dtrain 120 2 train $BASE --threads $((n + 1)) > "$TMP/over.out" 2> "$TMP/over.err"
w=$(grep -c 'warning: threads:' "$TMP/over.err")
[ "$w" = 1 ] && [ -n "$(crc "$TMP/over.out")" ] && pass "oversubscribed: one warning line" ||
    { fail "oversubscribed: $w warning lines"; cat "$TMP/over.err" >&2; }
# bound to fewer CPUs than the node has (what mpirun's default binding does to a rank): the
# warning says how to give the rank its threads' cores
if command -v taskset > /dev/null && [ "$n" -gt 1 ]; then
    timeout 120 taskset -c 0 $DT train $BASE --threads 2 > "$TMP/bound.out" 2> "$TMP/bound.err"
    grep -q "the ranks may run on 1 of the node's $n CPUs" "$TMP/bound.err" &&
        grep -q "mpirun --map-by slot:PE=2' (or '--bind-to none')" "$TMP/bound.err" &&
        [ -n "$(crc "$TMP/bound.out")" ] && pass "bound to 1 CPU with 2 threads: the binding hint" ||
        { fail "bound to 1 CPU with 2 threads: no binding hint"; cat "$TMP/bound.err" >&2; }
fi

# --- bind: the pool's threads on CPUs of their own (threads.h) ---
if [ "$n" -gt 1 ]; then
    run_dtrain 120 1 train $BASE --threads 2 --set bind=cores > "$TMP/bind.out" 2>&1
    run_dtrain 120 1 train $BASE --threads 2 --set bind=none > "$TMP/nobind.out" 2>&1
    b=$(crc "$TMP/bind.out")
    # with n > 2 CPUs 2 threads do not fill the mask: not bound
    if [ "$n" = 2 ]; then
        grep -q "^# dtrain [^:]*: 1 rank x 2 threads (rank 0's on CPUs [0-9]*,[0-9]*)" "$TMP/bind.out" &&
            pass "bind = cores, 2 threads on 2 CPUs: bound ($(grep -o 'on CPUs [0-9,]*' "$TMP/bind.out"))" ||
            { fail "bind = cores: not bound"; head -3 "$TMP/bind.out" >&2; }
    fi
    ! grep -q "on CPUs" "$TMP/nobind.out" && pass "bind = none: not bound" ||
        fail "bind = none: bound"
    [ -n "$b" ] && [ "$b" = "$(crc "$TMP/nobind.out")" ] && pass "bind = cores and none: the same $b" ||
        fail "bind = cores: '$b', none: '$(crc "$TMP/nobind.out")'"
    # auto: on the whole machine's mask (this run) the threads are placed on CPUs of their own,
    # not bound (test_pool checks their masks); a launcher's smaller mask binds
    ! grep -q "(rank 0's on CPUs" "$TMP/auto1.out" &&
        grep -q "^# dtrain [^:]*: 1 rank x $n threads (rank 0's placed on CPUs [0-9,]*, not bound)" "$TMP/auto1.out" &&
        pass "bind = auto, the machine's whole mask: placed, not bound ($(grep -o 'placed on CPUs [0-9][0-9,]*[0-9]' "$TMP/auto1.out"))" ||
        { fail "bind = auto on the machine's whole mask: bound, or not placed"; head -1 "$TMP/auto1.out" >&2; }
    if command -v taskset > /dev/null && [ "$n" -gt 2 ]; then
        timeout 120 taskset -c 0,1 $DT train $BASE > "$TMP/bind01.out" 2>&1
        grep -q "^# dtrain [^:]*: 1 rank x 2 threads (rank 0's on CPUs 0,1)" "$TMP/bind01.out" &&
            pass "bind = auto, taskset -c 0,1: bound to CPUs 0,1" ||
            { fail "bind = auto, taskset -c 0,1: not bound"; head -3 "$TMP/bind01.out" >&2; }
    fi
    # one thread per rank is never bound
    run_dtrain 120 2 train $BASE --threads 1 --set bind=cores > "$TMP/bind2.out" 2>&1
    ! grep -q "on CPUs" "$TMP/bind2.out" && [ -n "$(crc "$TMP/bind2.out")" ] &&
        pass "bind = cores, 2 ranks x 1 thread: not bound" ||
        fail "bind = cores, 2 ranks x 1 thread: bound, or no final line"
fi

# --- bad values ---
expect_dtrain_error "bind = sideways" "bind = 'sideways': expected one of auto|cores|none" \
    train $BASE --set bind=sideways
expect_dtrain_error "threads = 0" "threads = '0': expected auto or an integer in \[1, 1024\]" \
    train $BASE --threads 0
expect_dtrain_error "threads = lots" "threads = 'lots': expected auto or an integer" \
    train $BASE --threads lots

summary
