#!/bin/bash
# slurm-local.sh - a throw-away Slurm cluster on this machine, for tests and for trying the
# cluster examples (Debian 12: slurm-wlm 22.05, munge; needs root; no systemd needed).
#
#   bash scripts/slurm-local.sh deps        install slurmctld slurmd slurm-client munge libpmix-dev
#                                           when missing (quiet); exit 3 with a reason if impossible
#   bash scripts/slurm-local.sh up DIR [N]  start munged (only if `munge -n | unmunge` fails), one
#                                           slurmctld and N emulated nodes c[1-N] (default 2, each
#                                           CPUS_PER_NODE=2 CPUs) with every file under DIR; waits
#                                           until the nodes are idle. Then: . DIR/env (SLURM_CONF).
#   bash scripts/slurm-local.sh down DIR    cancel the cluster's jobs and stop ONLY the daemons
#                                           `up` started (DIR/started), their slurmstepds and tasks
#
# What the cluster looks like, and why:
# partition `debug` = c[1-N], all on this host (multiple-slurmd: NodeHostname = this host, one
# port per node), TmpFS=DIR/tmp/<node> (per-node PMIx directory), a TaskProlog exporting a per-node,
# per-step OMPI_MCA_btl_vader_backing_directory (ranks on "different nodes" would otherwise share
# one shared-memory segment name) and Open MPI's run-as-root permission, jobcomp/filetxt in
# DIR/log/jobcomp.txt (there is no slurmdbd, so no sacct: read `scontrol show job` or that file).
# AuthInfo=cred_expire=10 and short scheduler intervals: a requeued job may start again after
# cred_expire seconds (default 120), and is then picked up within about 2 s.
set -u

PKGS="slurmctld slurmd slurm-client munge libpmix-dev"
CPUS_PER_NODE=${CPUS_PER_NODE:-2}

die() {
    echo "slurm-local: error: $*" >&2
    exit 1
}

have_pkgs() {
    for c in slurmctld slurmd sbatch squeue scontrol munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || return 1
    done
    # srun --mpi=pmix dlopens libpmix.so (the -dev symlink)
    for f in /usr/lib/*/libpmix.so /usr/lib/libpmix.so; do
        [ -e "$f" ] && return 0
    done
    return 1
}

cmd_deps() {
    have_pkgs && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "slurm-local: missing packages ($PKGS) and not root: cannot install them" >&2
        exit 3
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "slurm-local: missing packages ($PKGS) and no apt-get" >&2; exit 3; }
    log=$(mktemp)
    # shellcheck disable=SC2086
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 $PKGS >"$log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$log" 2>&1
        # shellcheck disable=SC2086
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 $PKGS >>"$log" 2>&1; then
            echo "slurm-local: apt-get install $PKGS failed:" >&2
            tail -n 5 "$log" >&2
            rm -f "$log"
            exit 3
        fi
    fi
    rm -f "$log"
    have_pkgs || { echo "slurm-local: installed $PKGS but the commands are still missing" >&2; exit 3; }
}

# alive PID: the process exists and is not a zombie (killed daemons linger as zombies until
# their parent reaps them, so `kill -0` is not enough)
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop PID GRACE_TENTHS: SIGTERM, then SIGKILL if still alive after the grace period
stop_pid() {
    alive "$1" || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while alive "$1" && [ $i -lt "$2" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    i=0
    while alive "$1" && [ $i -lt 20 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    return 0
}

# free_port START: the first TCP port >= START that nothing listens on
free_port() {
    p=$1
    while ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; do
        p=$((p + 1))
    done
    echo "$p"
}

cmd_up() {
    dir=$1
    nodes=${2:-2}
    [ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as any user)"
    have_pkgs || die "Slurm/munge packages missing: run '$0 deps'"
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd)
    : >"$dir/started"
    mkdir -p "$dir/state" "$dir/log" "$dir/run" "$dir/vader"
    chmod 0755 "$dir"
    for k in $(seq 1 "$nodes"); do mkdir -p "$dir/spool/c$k" "$dir/tmp/c$k"; done
    chmod 1777 "$dir/tmp"/c* "$dir/vader"

    # munge: reuse a working one, else start one as user munge and remember its pid
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        if [ ! -s /etc/munge/munge.key ]; then
            mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 ||
                die "no /etc/munge/munge.key and mungekey --create failed"
            chown munge:munge /etc/munge/munge.key
            chmod 0400 /etc/munge/munge.key
        fi
        install -d -o munge -g munge -m 0755 /run/munge
        install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge 2>/dev/null
        runuser -u munge -- /usr/sbin/munged >"$dir/log/munged.out" 2>&1 ||
            die "munged did not start: $(cat "$dir/log/munged.out")"
        i=0
        until munge -n 2>/dev/null | unmunge >/dev/null 2>&1; do
            i=$((i + 1))
            [ $i -lt 50 ] || die "munged started but munge -n | unmunge still fails"
            sleep 0.1
        done
        [ -s /run/munge/munged.pid ] && echo "munged $(cat /run/munge/munged.pid)" >>"$dir/started"
    fi

    host=$(hostname -s)
    cport=$(free_port 16817)
    nport=$(free_port $((cport + 1)))
    last=$((nport + nodes - 1))
    p=$nport
    while [ $p -le $last ]; do
        if [ "$(free_port $p)" != $p ]; then nport=$(free_port $((p + 1))); last=$((nport + nodes - 1)); p=$nport; continue; fi
        p=$((p + 1))
    done
    mem=$(awk '/MemTotal/ { m = int($2 / 1024 / 2 / '"$nodes"'); print (m < 500 ? 500 : m) }' /proc/meminfo)

    cat >"$dir/taskprolog.sh" <<EOF
#!/bin/sh
# Runs before every task of a job step; "export K=V" lines go into the task's environment.
d=$dir/vader/\${SLURMD_NODENAME:-node}/\${SLURM_JOB_ID:-0}.\${SLURM_STEP_ID:-0}
mkdir -p "\$d" 2>/dev/null
echo "export OMPI_MCA_btl_vader_backing_directory=\$d"
echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
# every emulated node is this host: TCP between "nodes" goes over loopback (an external
# interface's address was seen to refuse connects under load: EAGAIN, then a crash in Open MPI)
echo "export OMPI_MCA_btl_tcp_if_include=127.0.0.0/8"
echo "export OMPI_MCA_oob_tcp_if_include=127.0.0.0/8"
EOF
    chmod 0755 "$dir/taskprolog.sh"

    cat >"$dir/slurm.conf" <<EOF
# written by scripts/slurm-local.sh: a local test cluster, every file under $dir
ClusterName=dtrainlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$cport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds (default 120) before it may start again
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=${SLURM_TASK_PLUGIN:-task/affinity}
TaskProlog=$dir/taskprolog.sh
TmpFS=$dir/tmp/%n
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
KillWait=5
InactiveLimit=0
JobRequeue=1
NodeName=c[1-$nodes] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$nport-$last] CPUs=$CPUS_PER_NODE RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
    export SLURM_CONF=$dir/slurm.conf

    slurmctld -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 || die "slurmctld did not start: $(tail -n 3 "$dir/log/slurmctld.log" 2>/dev/null)"
    i=0
    while [ ! -s "$dir/run/slurmctld.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    [ -s "$dir/run/slurmctld.pid" ] || die "slurmctld wrote no pid file"
    echo "slurmctld $(cat "$dir/run/slurmctld.pid")" >>"$dir/started"
    for k in $(seq 1 "$nodes"); do
        slurmd -f "$SLURM_CONF" -N "c$k" >"$dir/log/slurmd-c$k.out" 2>&1 || die "slurmd c$k did not start: $(tail -n 3 "$dir/log/slurmd-c$k.log" 2>/dev/null)"
        i=0
        while [ ! -s "$dir/run/slurmd-c$k.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        [ -s "$dir/run/slurmd-c$k.pid" ] || die "slurmd c$k wrote no pid file"
        echo "slurmd $(cat "$dir/run/slurmd-c$k.pid")" >>"$dir/started"
    done
    i=0
    until [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle')" -ge "$nodes" ]; do
        i=$((i + 1))
        [ $i -lt 200 ] || die "nodes not idle after 20 s: $(sinfo -h -N -o '%N %T' 2>&1 | tr '\n' ' ')"
        sleep 0.1
    done
}

# pids of the slurmstepds of this cluster (their log fd points into DIR) and all their descendants
our_steps() {
    dir=$1
    steps=
    for s in /proc/[0-9]*; do
        [ "$(cat "$s/comm" 2>/dev/null)" = slurmstepd ] || continue
        for fd in "$s"/fd/*; do
            case $(readlink "$fd" 2>/dev/null) in
            "$dir"/*) steps="$steps ${s#/proc/}"; break ;;
            esac
        done
    done
    [ -n "$steps" ] || return 0
    # descendants, breadth first, from the ppid table
    all=$steps
    front=$steps
    while [ -n "$front" ]; do
        next=
        for p in $front; do
            kids=$(awk -v p="$p" '{ sub(/^.*\) /, ""); split($0, f, " "); if (f[2] == p) print FILENAME }' /proc/[0-9]*/stat 2>/dev/null |
                   sed 's#/proc/\([0-9]*\)/stat#\1#')
            next="$next $kids"
        done
        front=$(echo $next)
        all="$all $front"
    done
    echo $all
}

cmd_down() {
    dir=$(cd "$1" 2>/dev/null && pwd) || return 0
    [ -f "$dir/started" ] || return 0
    export SLURM_CONF=$dir/slurm.conf
    # cancel this cluster's jobs first: their slurmstepds then end on their own
    if grep -q '^slurmctld ' "$dir/started"; then
        jobs=$(timeout 5 squeue -h -o %A 2>/dev/null | sort -u)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            timeout 5 scancel $jobs 2>/dev/null
            i=0
            while [ -n "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && [ $i -lt 80 ]; do
                sleep 0.1
                i=$((i + 1))
            done
        fi
    fi
    while read -r what pid; do
        case $what in slurmd) stop_pid "$pid" 30 ;; esac
    done <"$dir/started"
    # slurmstepd ignores SIGTERM: SIGKILL what is left of ours, with the tasks it ran
    left=$(our_steps "$dir")
    if [ -n "$left" ]; then
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null
        sleep 0.5
        for p in $left; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    fi
    while read -r what pid; do
        case $what in slurmctld) stop_pid "$pid" 30 ;; esac
    done <"$dir/started"
    while read -r what pid; do
        case $what in munged) stop_pid "$pid" 30 ;; esac
    done <"$dir/started"
    : >"$dir/started"
}

case ${1:-} in
deps) cmd_deps ;;
up)
    [ $# -ge 2 ] || die "usage: $0 up DIR [NODES]"
    cmd_up "$2" "${3:-2}" ;;
down)
    [ $# -ge 2 ] || die "usage: $0 down DIR"
    cmd_down "$2" ;;
*)
    echo "usage: $0 deps | up DIR [NODES] | down DIR" >&2
    exit 2 ;;
esac
