#!/usr/bin/env bash
# tests/slurm/down.sh STATE_DIR — stop the private cluster that up.sh started in STATE_DIR:
# cancel its jobs, stop slurmd, slurmctld and munged by their pidfiles (SIGTERM, then SIGKILL
# after 10 s), and kill any slurmstepd left over from its jobs (found by the fds they hold into
# STATE_DIR: they log to STATE_DIR/log/slurmd.log). Removes nothing; the caller deletes
# STATE_DIR. Safe to run twice, or on a half-started cluster.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
S=$(cd "$1" && pwd)
export SLURM_CONF=$S/etc/slurm.conf
PATH=$PATH:/usr/sbin:/sbin

alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Jobs first, while slurmctld and slurmd still run, so their steps end the ordinary way.
pid_of() { [ -s "$S/run/$1.pid" ] && cat "$S/run/$1.pid"; }
ctld=$(pid_of slurmctld || true)
if [ -n "$ctld" ] && alive "$ctld" && [ -f "$SLURM_CONF" ]; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

stop() { # NAME: SIGTERM, wait up to 10 s, SIGKILL
  local pid
  pid=$(pid_of "$1") || return 0
  alive "$pid" || { rm -f "$S/run/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    echo "down.sh: $1 ($pid) ignored SIGTERM, killing it" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$S/run/$1.pid"
}
stop slurmd
stop slurmctld

# Step daemons (and whatever still holds files of this cluster open) that survived their slurmd.
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [ "$pid" = $$ ] && continue
  case $(readlink "$d/exe" 2>/dev/null) in
    */slurmstepd) ;;
    *) continue ;;
  esac
  if ls -l "$d/fd" 2>/dev/null | grep -qF -- "-> $S/"; then
    echo "down.sh: killing leftover slurmstepd $pid" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
done

# munged last: the daemons above use it until they are gone.
stop munged
exit 0
