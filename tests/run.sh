#!/bin/bash
# run.sh - the whole test suite (make test): unit tests, MPI tests at 1, 2 and 3 ranks, the CLI
# bad-input tests and end-to-end training runs. Sums every suite's "N passed, N failed" into a
# final line of the same form; exits non-zero when any check failed or any suite did not finish.
# Suites run DT_TEST_JOBS at a time (default 3): many wait more than they compute (process and
# MPI start-up, watchdog time-outs, Slurm job turnaround), so a third suite fills the 2 cores'
# idle time. Each suite writes into its own log, printed whole when the suite ends (so in the
# order they end), followed by "(NAME: N s)". DT_TEST_JOBS=1 runs them one after another, in
# the order listed. Every suite has its own temporary folder; none writes into the tree. The
# time limits are hang guards, 2 to 3 times those of the suites run alone (suites that share the
# cores take longer: test_threads passed 600 s beside two others on the loaded VM).
# usage: bash tests/run.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/mpi-env.sh
B=${1:-build}
JOBS=${DT_TEST_JOBS:-3}
case $JOBS in '' | *[!0-9]* | 0)
    echo "run.sh: DT_TEST_JOBS = '$JOBS': expected an integer >= 1" >&2
    exit 1 ;;
esac
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-tests.XXXXXX") || exit 1
total_pass=0
total_fail=0
broken=0
declare -A NAME T0 LOG # by pid of the running suite
running=0 # how many run
n_started=0

# stop the suites still running (on an interrupt), then remove the logs
stop_all() {
    local p
    if [ $running -gt 0 ]; then
        for p in "${!NAME[@]}"; do kill "$p" 2>/dev/null; done
        wait
    fi
    rm -rf "$LOGS"
}
trap stop_all EXIT
trap 'echo "run.sh: interrupted"; exit 130' INT TERM

# report PID RC: echoes the ended suite's output and adds up its counts
report() {
    local pid=$1 rc=$2 name=${NAME[$1]} log=${LOG[$1]} counts
    cat "$log"
    counts=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 |
             sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')
    if [ -z "$counts" ]; then
        echo "FAIL $name: exited $rc without a summary line"
        broken=$((broken + 1))
    else
        set -- $counts
        total_pass=$((total_pass + $1))
        total_fail=$((total_fail + $2))
        if [ "$rc" -ne 0 ] && [ "$2" -eq 0 ]; then
            echo "FAIL $name: exit status $rc"
            broken=$((broken + 1))
        fi
        echo "   ($name: $(($(date +%s) - T0[$pid])) s)"
    fi
    unset "NAME[$pid]" "T0[$pid]" "LOG[$pid]"
    running=$((running - 1))
}

# reap: waits for any running suite to end and reports it
reap() {
    local pid rc
    wait -n -p pid "${!NAME[@]}"
    rc=$?
    report "$pid" "$rc"
}

# suite NAME CMD...: starts one suite once fewer than JOBS run
suite() {
    local name=$1 log
    shift
    while [ $running -ge "$JOBS" ]; do reap; done
    n_started=$((n_started + 1))
    log=$LOGS/$n_started.log
    # its own Open MPI session tree: jobs that share one race on its directories when they start
    # and end side by side (open-mpi/ompi#8510: "A call to mkdir was unable to create the
    # desired directory"; a singleton can hang on it, #3818)
    mkdir -p "$LOGS/ompi.$n_started"
    (export OMPI_MCA_orte_tmpdir_base="$LOGS/ompi.$n_started" && exec "$@") > "$log" 2>&1 &
    NAME[$!]=$name
    T0[$!]=$(date +%s)
    LOG[$!]=$log
    running=$((running + 1))
}

# c_tests: the C test programs, found by name (the sources, so a stale binary of a removed or
# renamed test in the build tree is not run): tests/test_mpi_*.c run under mpirun at 1, 2 and 3 ranks (3: an
# uneven split), every other tests/test_*.c as a single process.
c_tests() {
    local src prog t np
    for src in tests/test_*.c; do
        prog=$(basename "$src" .c)
        t=$B/tests/$prog
        if ! [ -x "$t" ]; then
            echo "FAIL $prog: $t is not built (make all)"
            broken=$((broken + 1))
            continue
        fi
        case "$prog" in
        test_mpi_*)
            for np in 1 2 3; do
                suite "$prog np=$np" timeout -k 5 900 mpirun -np $np $DT_MPIRUN_FLAGS "$t"
            done ;;
        *) suite "$prog" timeout -k 5 900 "$t" ;;
        esac
    done
}

# First the fuzz suite (under the sanitizer build, which make test builds) for a fixed time,
# beside test_watchdog only (which mostly waits out its time-outs): its budget buys about the
# cases it buys alone. FUZZ_BUDGET (seconds, default 45).
FB=build-san
[ -x "$FB/dtrain" ] || { FB=$B; echo "note: build-san/dtrain missing (make san-tools): fuzzing $B/dtrain"; }
suite fuzz timeout -k 5 1200 sh tests/fuzz.sh "$FB" "${FUZZ_BUDGET:-45}"
suite test_watchdog env BUILD="$B" timeout -k 5 900 sh tests/test_watchdog.sh
while [ $running -gt 0 ]; do reap; done
# Then the rest, the longest first, so that the short ones fill in at the end.
suite test_experiments timeout -k 5 2400 bash tests/test_experiments.sh
suite test_resume env BUILD="$B" timeout -k 5 1200 bash tests/test_resume.sh
suite test_threads env BUILD="$B" timeout -k 5 1200 sh tests/test_threads.sh 2
suite test_slurm timeout -k 5 1800 bash tests/test_slurm.sh
suite test_cli env BUILD="$B" timeout -k 5 1200 sh tests/test_cli.sh 2
suite test_tools env BUILD="$B" timeout -k 5 900 sh tests/test_tools.sh 2
suite test_sweep env BUILD="$B" timeout -k 5 900 bash tests/test_sweep.sh
suite test_bf16_train env BUILD="$B" timeout -k 5 1200 sh tests/test_bf16_train.sh
c_tests
suite test_resume_bad env BUILD="$B" timeout -k 5 900 sh tests/test_resume_bad.sh 2
suite test_eval env BUILD="$B" timeout -k 5 900 sh tests/test_eval.sh 2
suite test_badinput env BUILD="$B" timeout -k 5 900 sh tests/test_badinput.sh 2
suite test_isa env BUILD="$B" timeout -k 5 900 sh tests/test_isa.sh 2
suite test_plot env BUILD="$B" timeout -k 5 900 sh tests/test_plot.sh 2
suite test_bench_build timeout -k 5 600 sh tests/test_bench_build.sh
suite test_comm env BUILD="$B" timeout -k 5 1200 sh tests/test_comm.sh
suite test_restart env BUILD="$B" timeout -k 5 900 bash tests/test_restart.sh
suite test_metrics env BUILD="$B" timeout -k 5 900 sh tests/test_metrics.sh
suite test_swa.sh env BUILD="$B" timeout -k 5 900 bash tests/test_swa.sh
suite test_e2e env BUILD="$B" timeout -k 5 1200 sh tests/test_e2e.sh
suite test_multihost timeout -k 5 900 bash tests/test_multihost.sh
suite test_torch_load env BUILD="$B" timeout -k 5 900 sh tests/test_torch_load.sh
suite test_ckpt_full env BUILD="$B" timeout -k 5 900 sh tests/test_ckpt_full.sh 2
suite test_timeline env BUILD="$B" timeout -k 5 900 sh tests/test_timeline.sh
while [ $running -gt 0 ]; do reap; done

echo
[ $broken -gt 0 ] && echo "$broken suite(s) did not finish cleanly"
echo "$total_pass passed, $((total_fail + broken)) failed"
[ $total_fail -eq 0 ] && [ $broken -eq 0 ]
