#!/usr/bin/env bash
# Start a throwaway one-node SLURM cluster (munged, slurmctld, slurmd) on this machine, for
# tests/test_slurm.py or a manual try of the `slurm` profile. Needs root and Debian's slurm-wlm.
#
#   tests/slurm/start_cluster.sh STATE_DIR     state, spool, logs and pid files go there
#   tests/slurm/stop_cluster.sh STATE_DIR      stops exactly the daemons this script started
#
# Exit status 3: refused (not root, slurm missing, another SLURM already configured or running);
# the reason is the last line on stderr.
set -euo pipefail

refuse() { echo "$*" >&2; exit 3; }
[ $# -eq 1 ] || refuse "usage: $0 STATE_DIR"
[ "$(id -u)" -eq 0 ] || refuse "not root: cannot configure /etc/slurm or start munged/slurmctld/slurmd"
for bin in munged slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$bin" >/dev/null || refuse "$bin not found (apt-get install slurm-wlm)"
done

state=$(realpath -m "$1")
conf=/etc/slurm/slurm.conf
marker="# throwaway test cluster written by multiarg tests/slurm/start_cluster.sh"
# Never clobber a real cluster's configuration or fight running daemons.
if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
    refuse "$conf exists and was not written by this script; not touching a real SLURM setup"
fi
# A test killed before its teardown leaves its daemons running: stop them via their state folder.
if [ -L "$conf" ] && [ -e "$conf" ]; then
    bash "$(dirname "$0")/stop_cluster.sh" "$(dirname "$(readlink "$conf")")"
fi
for daemon in slurmctld slurmd; do
    if pgrep -x "$daemon" >/dev/null; then refuse "a $daemon is already running; stop it first"; fi
done

mkdir -p "$state"/{ctld,spool,log}
: >"$state/started"

# Memory and CPUs as the node reports them. Rules reserve up to 8 GB (16 GB on a retry) while the
# test's jobs use far less, so declare at least 17 GB; config_overrides keeps slurmd from draining
# the node when the declared memory exceeds what it finds.
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024) - 1024}' /proc/meminfo)
[ "$mem_mb" -ge 17000 ] || mem_mb=17000
node=$(hostname -s)

cat >"$state/slurm.conf" <<EOF
$marker
ClusterName=multiarg-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
# No cgroups or systemd in a container: track processes via /proc, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
# No slurmdbd: sacct cannot work, so the profile asks squeue, which sees finished jobs for MinJobAge s.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
# Refuse impossible requests at sbatch time instead of pending forever.
EnforcePartLimits=ALL
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
# slurm.conf must be at the compiled-in path: the plugin strips SLURM_* (so SLURM_CONF) before srun.
mkdir -p /etc/slurm
ln -sfn "$state/slurm.conf" "$conf"

# munged: reuse a working one, else start our own (as the munge user, socket dir owned by munge).
if ! timeout 10 sh -c 'munge -n | unmunge' >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged --force
    echo munged >>"$state/started"
    timeout 10 sh -c 'until munge -n | unmunge >/dev/null 2>&1; do sleep 0.2; done' \
        || refuse "munged did not come up"
fi

# Both daemonise; their pid files are in $state. Record before waiting so stop_cluster.sh finds them.
slurmctld -c
echo slurmctld >>"$state/started"
slurmd -c
echo slurmd >>"$state/started"

# The node turns idle a few seconds after slurmd registers.
for _ in $(seq 120); do
    if [ "$(timeout 5 sinfo -h -N -o %t 2>/dev/null)" = idle ]; then
        timeout 5 sinfo -N -o "%N %t %c %m %P"
        exit 0
    fi
    sleep 0.5
done
timeout 5 sinfo -N -l >&2 || true
tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
echo "node did not become idle within 60 s" >&2
exit 1
