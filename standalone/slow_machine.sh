#!/usr/bin/env bash
# Run a command as on a slower or busier machine: `standalone/slow_machine.sh make test`.
#
# A robot's CPU (the RDK X5: 8x Cortex-A55) is slower than a laptop's and a CI machine is
# often busy; a test that passes only on a fast idle machine says nothing. This gives the
# command and every process it starts 1/SLOW_FACTOR of the machine's CPU time (default 3:
# on 2 cores, 0.67 of a core in all; each of two busy threads then runs 3x slower):
#   - as root, with the cgroup v1 cpu controller (/sys/fs/cgroup/cpu) or cgroup v2
#     (cpu.max): a CPU quota over a short period (10 ms), so the command sees a slower CPU,
#     not long stalls;
#   - otherwise: one busy process per core beside it (the command gets about half).
# It says which one it used. SLOW_FACTOR=1 runs the command as it is.
set -euo pipefail
factor=${SLOW_FACTOR:-3}
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
cores=$(nproc)
period=10000                                                   # microseconds
quota=$(awk -v p=$period -v c="$cores" -v f="$factor" 'BEGIN { printf "%d", p * c / f }')
group=""
cleanup() {
  if [ -n "$group" ] && [ -d "$group" ]; then
    # move what is left (nothing, normally) back to the root group, then remove ours
    if [ -f "$group/tasks" ]; then
      while read -r pid; do echo "$pid" > "$(dirname "$group")/tasks" 2>/dev/null || true
      done < "$group/tasks"
    fi
    rmdir "$group" 2>/dev/null || true
  fi
  [ -z "${busy:-}" ] || kill $busy 2>/dev/null || true
}
trap cleanup EXIT

if [ "$factor" = 1 ]; then
  exec "$@"
fi
name="edge_classifier_slow_$$"
if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  group=/sys/fs/cgroup/cpu/$name
  mkdir "$group"
  echo $period > "$group/cpu.cfs_period_us"
  echo "$quota" > "$group/cpu.cfs_quota_us"
  echo $$ > "$group/tasks"
  echo "[slow] cgroup v1 cpu quota: ${quota} us every ${period} us on $cores core(s) (1/$factor of the CPU)"
elif [ "$(id -u)" = 0 ] && [ -f /sys/fs/cgroup/cgroup.controllers ] && \
     grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
  group=/sys/fs/cgroup/$name
  echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
  mkdir "$group"
  echo "$quota $period" > "$group/cpu.max"
  echo $$ > "$group/cgroup.procs"
  echo "[slow] cgroup v2 cpu.max: $quota $period on $cores core(s) (1/$factor of the CPU)"
else
  busy=""
  for _ in $(seq "$cores"); do
    (trap 'exit 0' TERM; while :; do :; done) &
    busy="$busy $!"
  done
  echo "[slow] no writable cgroup cpu controller (not root?): one busy process per core beside the command"
fi
status=0
"$@" || status=$?
exit $status
