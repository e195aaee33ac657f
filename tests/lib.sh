# lib.sh - shared set-up of the shell test suites, sourced from the repository root after
# setting T (the suite's name): `T=test_cli; . tests/lib.sh`. POSIX sh (sourced by sh and bash).
# Gives:
#   - the MPI environment (scripts/mpi-env.sh: DT_MPIRUN_FLAGS, root permission, 1 BLAS thread);
#   - NP (first argument, default 2), DT (./dtrain), TMP (a temporary folder removed at exit; a
#     suite that sets its own EXIT trap removes it there);
#   - pass [MSG] / fail MSG: the counters ("  ok: MSG" / "FAIL $T: MSG" on stderr);
#   - summary: the line "$T: N passed, N failed" that tests/run.sh adds up; its status is the
#     suite's (0 when nothing failed), so a suite ends with `summary`;
#   - skip_all REASON: "SKIP: $T: REASON", the summary line, exit 0 (nothing counted);
#   - die MSG: one failure, the summary line, exit 1 (a check the rest cannot do without);
#   - run_dtrain SECONDS NP ARGS...: `dtrain ARGS` on NP ranks under a hard time limit;
#   - timeout_dump SECONDS CMD...: timeout(1), printing the stacks of CMD's dtrain processes
#     before it kills them (stacks_of PID);
#   - expect_dtrain_error; par_begin / par_end: the expect_dtrain_error calls between them run
#     up to DT_TEST_PAR (default 4) at a time (each mostly waits on MPI start-up), their results
#     counted and printed in the order of the calls.
. scripts/mpi-env.sh
NP=${1:-2}
DT=./dtrain
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-$T.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
pass() {
    passed=$((passed + 1))
    if [ $# -gt 0 ]; then echo "  ok: $*"; fi
}
fail() { failed=$((failed + 1)); echo "FAIL $T: $*" >&2; }
summary() {
    par_end
    echo "$T: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
skip_all() {
    echo "SKIP: $T: $*"
    summary
    exit 0
}
die() {
    fail "$@"
    summary
    exit 1
}

# stacks_of PID: the stacks of every dtrain process under PID (gdb where installed, else the
# kernel's wait channel of each thread), on stderr: what a time-out killed was doing
stacks_of() {
    ps -eo pid=,ppid=,comm= | awk -v root="$1" '
        { par[$1] = $2; name[$1] = $3 }
        END { for (p in par) if (name[p] == "dtrain") { q = p
                  while (q in par && q != root && q > 1) q = par[q]
                  if (q == root) print p } }' | while read -r _sp; do
        echo "stacks_of: dtrain pid $_sp: $(tr '\0' ' ' < "/proc/$_sp/cmdline" 2> /dev/null)" >&2
        if command -v gdb > /dev/null; then
            timeout 30 gdb -p "$_sp" -batch -ex 'thread apply all bt' 2>&1 |
                grep -a '^#\|^Thread' >&2
        else
            for _st in /proc/"$_sp"/task/*; do
                echo "  thread ${_st##*/}: $(cat "$_st/wchan" 2> /dev/null) $(cut -d' ' -f3 "$_st/stat")" >&2
            done
        fi
    done
}

# timeout_dump SECONDS CMD...: `timeout -k 5 SECONDS CMD`; when the time is nearly up (10 s
# before, 3 s under 30 s) with CMD still running, first the stacks of its dtrain processes
# (stacks_of), so that a hang seen once, on a CI machine, says where it was
timeout_dump() {
    _td_secs=$1
    shift
    timeout -k 5 "$_td_secs" "$@" &
    _td_pid=$!
    # gdb takes a few seconds a process: 10 s before the kill (3 s under 30 s)
    _td_at=$((_td_secs > 30 ? _td_secs - 10 : (_td_secs > 6 ? _td_secs - 3 : _td_secs)))
    # the watcher polls (5 a second) rather than sleeping once: killing a sleeping subshell
    # makes the shell print "Terminated" into the caller's output
    (
        _td_t=0
        while [ $_td_t -lt $((_td_at * 5)) ] && kill -0 "$_td_pid" 2> /dev/null; do
            sleep 0.2
            _td_t=$((_td_t + 1))
        done
        if kill -0 "$_td_pid" 2> /dev/null; then
            echo "timeout_dump: still running after $_td_at s: $*" >&2
            stacks_of "$_td_pid"
        fi
    ) < /dev/null &
    _td_watch=$!
    wait "$_td_pid"
    _td_rc=$?
    wait "$_td_watch"
    return "$_td_rc"
}

# run_dtrain SECONDS NP ARGS...: mpirun -np NP ./dtrain ARGS, killed after SECONDS (a rank stuck
# in a collective must not hang the suite; timeout_dump prints its stacks first); its status is
# dtrain's (124/137 on time-out).
run_dtrain() {
    _rd_secs=$1 _rd_np=$2
    shift 2
    timeout_dump "$_rd_secs" mpirun -np "$_rd_np" $DT_MPIRUN_FLAGS $DT "$@"
    _rd_rc=$?
    # a run the time-out killed says so in its output (a hang, not an error of dtrain's)
    [ "$_rd_rc" != 124 ] || echo "run_dtrain: killed after $_rd_secs s: dtrain $* on $_rd_np rank(s)" >&2
    return "$_rd_rc"
}

# expect_dtrain_error NAME PATTERN ARGS...: `dtrain ARGS` on NP ranks exits non-zero (no hang)
# within 30 s, with exactly one "dtrain: error" line, matching PATTERN, and no crash noise.
# Between par_begin and par_end it runs in the background (files the call names must stay as they
# are until par_end); its output and counts are taken in at par_end or when a slot is needed.
expect_dtrain_error() {
    if [ "$_par_on" = 0 ]; then
        _expect_dtrain_error "$TMP" "$@"
        return
    fi
    [ $((_par_next - _par_done)) -ge "$_par_max" ] && _par_take
    mkdir -p "$TMP/par/$_par_next/ompi"
    (
        # its own Open MPI session tree (tests/run.sh's suite() says why)
        export OMPI_MCA_orte_tmpdir_base="$TMP/par/$_par_next/ompi"
        passed=0 failed=0
        _expect_dtrain_error "$TMP/par/$_par_next" "$@"
        echo "$passed $failed" > "$TMP/par/$_par_next/counts"
    ) > "$TMP/par/$_par_next/log" 2>&1 &
    eval "_par_pid_$_par_next=\$!"
    _par_next=$((_par_next + 1))
}

# _expect_dtrain_error DIR NAME PATTERN ARGS...: the check, with dtrain's output in DIR/out, DIR/err
_expect_dtrain_error() {
    _ed_dir=$1 name=$2 pat=$3
    shift 3
    start=$(date +%s)
    run_dtrain 60 "$NP" "$@" > "$_ed_dir/out" 2> "$_ed_dir/err"
    rc=$?
    secs=$(($(date +%s) - start))
    n=$(grep -c 'dtrain: error' "$_ed_dir/err")
    if [ $rc -eq 0 ]; then
        fail "$name: exit status 0, expected non-zero"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name: timed out (a rank hung)"
    elif [ "$n" -ne 1 ]; then
        fail "$name: $n 'dtrain: error' lines, expected exactly 1:"; cat "$_ed_dir/err" >&2
    elif ! grep 'dtrain: error' "$_ed_dir/err" | grep -q -- "$pat"; then
        fail "$name: message does not match '$pat':"; cat "$_ed_dir/err" >&2
    elif grep -q -i -E 'core dumped|MPI_ABORT|Segmentation' "$_ed_dir/err"; then
        fail "$name: crash noise:"; cat "$_ed_dir/err" >&2
    elif [ $secs -gt 30 ]; then
        fail "$name: took ${secs}s"
    else
        pass
    fi
}

_par_on=0 _par_max=${DT_TEST_PAR:-4} _par_next=0 _par_done=0
# par_begin: expect_dtrain_error calls from here on run in the background, DT_TEST_PAR at a time
par_begin() { _par_on=1; }
# par_end: waits for every background check, prints its output and adds up its counts, in order
par_end() {
    while [ "$_par_done" -lt "$_par_next" ]; do _par_take; done
    _par_on=0
}
# _par_take: the oldest background check: waits for it, prints its output, adds its counts (a
# check that left no counts, killed with the suite, is one failure)
_par_take() {
    eval "wait \$_par_pid_$_par_done"
    _pt=$TMP/par/$_par_done
    cat "$_pt/log"
    if [ -s "$_pt/counts" ]; then
        read -r _pt_p _pt_f < "$_pt/counts"
        passed=$((passed + _pt_p)) failed=$((failed + _pt_f))
    else
        fail "background check $_par_done ended without its counts"
    fi
    rm -rf "$_pt"
    _par_done=$((_par_done + 1))
}

# rank_pid PID RANK: the pid of the dtrain process of MPI rank RANK started below PID (PID itself
# or a child of it: dtrain-run / timeout -> mpirun -> dtrain); nothing when there is none (yet).
rank_pid() {
    local m p
    [ -n "$1" ] || return 0
    for m in $(pgrep -P "$1") "$1"; do
        for p in $(pgrep -P "$m" dtrain); do
            if grep -qz "^OMPI_COMM_WORLD_RANK=$2\$" "/proc/$p/environ" 2>/dev/null; then
                echo "$p"
                return
            fi
        done
    done
}

# csv_col FILE NAME: the named column, one value per line
csv_col() {
    awk -F, -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; if (!k) exit 1; next } { print $k }' "$1"
}
