#!/bin/sh
# run.sh - the whole test suite (make test): unit tests, MPI tests at 1, 2 and 3 ranks, the CLI
# bad-input tests and end-to-end training runs. Sums every suite's "N passed, N failed" into a
# final line of the same form; exits non-zero when any check failed or any suite did not finish.
# usage: sh tests/run.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/mpi-env.sh
B=${1:-build}
LOG=$(mktemp "${TMPDIR:-/tmp}/dtrain-tests.XXXXXX")
trap 'rm -f "$LOG"' EXIT
total_pass=0
total_fail=0
broken=0

# suite NAME CMD...: runs one suite, echoes its output, adds up its counts
suite() {
    name=$1
    shift
    t0=$(date +%s)
    "$@" > "$LOG" 2>&1
    rc=$?
    cat "$LOG"
    counts=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOG" | tail -n 1 |
             sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')
    if [ -z "$counts" ]; then
        echo "FAIL $name: exited $rc without a summary line"
        broken=$((broken + 1))
        return
    fi
    set -- $counts
    total_pass=$((total_pass + $1))
    total_fail=$((total_fail + $2))
    if [ "$rc" -ne 0 ] && [ "$2" -eq 0 ]; then
        echo "FAIL $name: exit status $rc"
        broken=$((broken + 1))
    fi
    echo "   ($name: $(($(date +%s) - t0)) s)"
}

# The C test programs, found by name (the sources, so a stale binary of a removed or renamed test
# in the build tree is not run): tests/test_mpi_*.c run under mpirun at 1, 2 and 3 ranks (3: an
# uneven split), every other tests/test_*.c as a single process. (prog, not name: suite sets name.)
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
            suite "$prog np=$np" timeout -k 5 300 mpirun -np $np $DT_MPIRUN_FLAGS "$t"
        done ;;
    *) suite "$prog" timeout -k 5 300 "$t" ;;
    esac
done
suite test_cli env BUILD="$B" timeout -k 5 600 sh tests/test_cli.sh 2
suite test_badinput env BUILD="$B" timeout -k 5 300 sh tests/test_badinput.sh 2
suite test_isa env BUILD="$B" timeout -k 5 300 sh tests/test_isa.sh 2
suite test_threads env BUILD="$B" timeout -k 5 600 sh tests/test_threads.sh 2
# fuzzing under the sanitizer build (make test builds it), a fixed time budget
FB=build-san
[ -x "$FB/dtrain" ] || { FB=$B; echo "note: build-san/dtrain missing (make san-tools): fuzzing $B/dtrain"; }
suite fuzz timeout -k 5 600 sh tests/fuzz.sh "$FB" "${FUZZ_BUDGET:-60}"
suite test_tools env BUILD="$B" timeout -k 5 300 sh tests/test_tools.sh 2
suite test_sweep env BUILD="$B" timeout -k 5 300 bash tests/test_sweep.sh
suite test_experiments timeout -k 5 1500 bash tests/test_experiments.sh
suite test_eval env BUILD="$B" timeout -k 5 300 sh tests/test_eval.sh 2
suite test_plot env BUILD="$B" timeout -k 5 300 sh tests/test_plot.sh 2
suite test_swa.sh env BUILD="$B" timeout -k 5 300 bash tests/test_swa.sh
suite test_metrics env BUILD="$B" timeout -k 5 300 sh tests/test_metrics.sh
suite test_torch_load env BUILD="$B" timeout -k 5 300 sh tests/test_torch_load.sh
suite test_e2e env BUILD="$B" timeout -k 5 600 sh tests/test_e2e.sh
suite test_bf16_train env BUILD="$B" timeout -k 5 600 sh tests/test_bf16_train.sh
suite test_resume env BUILD="$B" timeout -k 5 600 bash tests/test_resume.sh
suite test_ckpt_full env BUILD="$B" timeout -k 5 300 sh tests/test_ckpt_full.sh 2
suite test_resume_bad env BUILD="$B" timeout -k 5 300 sh tests/test_resume_bad.sh 2
suite test_watchdog env BUILD="$B" timeout -k 5 300 sh tests/test_watchdog.sh
suite test_comm env BUILD="$B" timeout -k 5 600 sh tests/test_comm.sh
suite test_timeline env BUILD="$B" timeout -k 5 300 sh tests/test_timeline.sh
suite test_restart env BUILD="$B" timeout -k 5 300 bash tests/test_restart.sh
suite test_multihost timeout -k 5 300 bash tests/test_multihost.sh
suite test_slurm timeout -k 5 900 bash tests/test_slurm.sh

echo
[ $broken -gt 0 ] && echo "$broken suite(s) did not finish cleanly"
echo "$total_pass passed, $((total_fail + broken)) failed"
[ $total_fail -eq 0 ] && [ $broken -eq 0 ]
