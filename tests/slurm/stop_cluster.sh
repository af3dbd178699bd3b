#!/usr/bin/env bash
# Stop what tests/slurm/start_cluster.sh STATE_DIR started (and only that), and remove its
# /etc/slurm/slurm.conf link. Safe to run twice or after a failed start.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
state=$(realpath -m "$1")
started="$state/started"

was_started() { [ -f "$started" ] && grep -qx "$1" "$started"; }

# Cancel leftover jobs first so slurmd's job steps end with them.
if was_started slurmctld; then
    timeout 10 scancel --full --user "$(id -un)" 2>/dev/null
    for _ in $(seq 20); do
        [ -z "$(timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
fi

# TERM, wait up to 10 s, then KILL — by the pid each daemon wrote, never by name.
stop_pid() {
    local name=$1 pid=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    echo "$name ($pid) ignored SIGTERM; killing" >&2
    kill -KILL "$pid" 2>/dev/null
}
for daemon in slurmd slurmctld; do
    was_started "$daemon" && stop_pid "$daemon" "$(cat "$state/$daemon.pid" 2>/dev/null)"
done
was_started munged && stop_pid munged "$(cat /run/munge/munged.pid 2>/dev/null)"

conf=/etc/slurm/slurm.conf
if [ -L "$conf" ] && [ "$(readlink "$conf")" = "$state/slurm.conf" ]; then rm -f "$conf"; fi
rm -f "$started"
exit 0
