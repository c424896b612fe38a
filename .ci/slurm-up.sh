#!/usr/bin/env bash
# Start a real single-node Slurm on this machine for the sweep tests (issue 12): Debian's slurm-wlm and
# munge, one node (this host), one partition, no accounting, no cgroups. Needs root. Idempotent: when the
# node already answers with this script's configuration, it does nothing.
#
# The daemons are started directly (containers and CI machines have no systemd). Logs go to
# /var/log/slurm/ and /var/log/munge/. Stop everything with: .ci/slurm-up.sh --down
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# Written by nada-tui .ci/slurm-up.sh"
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
start=$(date +%s)

log() { echo "slurm-up: $*" >&2; }
die() {
    log "error: $*"
    for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/munge/munged.log; do
        [[ -f $f ]] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# A daemon is alive when its pid file names a live process with the expected command name.
alive() { # pidfile name
    local pid
    [[ -f $1 ]] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm") == "$2"* ]] || return 1
    # A killed daemon can linger as a zombie (nothing reaps orphans in some containers): not alive.
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

stop() { # pidfile name
    local pid i
    alive "$1" "$2" || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$1" "$2" || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if [[ ${1:-} == --down ]]; then
    stop "$SLURMD_PID" slurmd
    stop "$CTLD_PID" slurmctld
    munged --stop 2>/dev/null || true
    log "stopped"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (installs packages and starts the Slurm daemons)"

# --- packages ---------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends slurm-wlm munge >/tmp/slurm-up-apt.log 2>&1; }
    # A fresh machine may have no package lists, or stale ones: update only when the first try fails.
    if ! apt_install; then
        apt-get -o DPkg::Lock::Timeout=120 update -q >/tmp/slurm-up-apt-update.log 2>&1 || die "apt-get update failed (/tmp/slurm-up-apt-update.log)"
        apt_install || die "apt-get install slurm-wlm munge failed (/tmp/slurm-up-apt.log)"
    fi
fi

# --- configuration ----------------------------------------------------------------------------------
node=$(hostname -s 2>/dev/null || uname -n)
node=${node%%.*}
cpus=$(nproc)
# RealMemory must not exceed what slurmd finds or the node drains; memory is not a scheduled resource
# here (CR_Core), so three quarters of the total is safe and never matters for placement.
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.75}' /proc/meminfo)

if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    # Someone else's Slurm: use it if it answers, never overwrite it.
    if scontrol ping 2>/dev/null | grep -q UP; then
        log "a Slurm configured elsewhere ($CONF) is up: using it"
        exit 0
    fi
    die "$CONF exists and was not written by this script; refusing to replace it"
fi

new_conf=$(cat <<EOF
$MARKER: a single-node Slurm for tests. Rerun the script rather than editing.
ClusterName=nada
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)

changed=0
if [[ ! -f $CONF ]] || [[ $(cat "$CONF") != "$new_conf" ]]; then
    mkdir -p "$CONF_DIR"
    printf '%s\n' "$new_conf" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    changed=1
fi
# Debian's slurmd reads cgroup.conf only for cgroup plugins; none are configured.

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
node_state() { sinfo -h -N -n "$node" -o '%T' 2>/dev/null | head -n1; }

# --- already up? ------------------------------------------------------------------------------------
if [[ $changed == 0 ]] && munge_ok && alive "$CTLD_PID" slurmctld && alive "$SLURMD_PID" slurmd; then
    case $(node_state) in
        idle | mixed | allocated | completing)
            log "already up (node $node: $(node_state))"
            exit 0
            ;;
    esac
fi

# --- munge ------------------------------------------------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating the munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! munge_ok; then
    log "starting munged"
    # A stale socket or pid file from a killed munged makes a new one refuse to start.
    munged --stop >/dev/null 2>&1 || true
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
    runuser -u munge -- munged || die "munged did not start"
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munge does not answer"
fi

# --- slurmctld and slurmd ---------------------------------------------------------------------------
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [[ $changed == 1 ]]; then
    stop "$SLURMD_PID" slurmd
    stop "$CTLD_PID" slurmctld
fi
if ! alive "$CTLD_PID" slurmctld; then
    log "starting slurmctld"
    # -c: start from a clean state. Jobs of an earlier, killed controller would otherwise be requeued
    # and run again against test directories that no longer exist.
    slurmctld -c || die "slurmctld did not start"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer"
if ! alive "$SLURMD_PID" slurmd; then
    log "starting slurmd"
    slurmd || die "slurmd did not start"
fi

# --- wait for the node, then prove that jobs run ----------------------------------------------------
state=""
for _ in $(seq 150); do
    state=$(node_state)
    case $state in
        idle | mixed | allocated) break ;;
        down* | drain* | drained*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
done
[[ $state == idle || $state == mixed || $state == allocated ]] || die "node $node is '$state', not idle"

timeout 60 srun -N1 -t 1 true || die "srun -N1 true failed"
out=$(mktemp -d)
# Poll the job's output rather than `sbatch --wait`, which checks only every ~10 s.
sbatch -o "$out/job.out" -t 1 --wrap 'echo sbatch-ok' >/dev/null || die "sbatch --wrap failed"
for _ in $(seq 300); do grep -qs sbatch-ok "$out/job.out" && break; sleep 0.2; done
grep -qs sbatch-ok "$out/job.out" || die "the sbatch --wrap job did not run within 60 s"
rm -rf "$out"
log "up in $(($(date +%s) - start)) s: node $node, $cpus CPUs, partition debug"
