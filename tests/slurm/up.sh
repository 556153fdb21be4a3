#!/usr/bin/env bash
# tests/slurm/up.sh STATE_DIR — start a private single-node Slurm cluster on localhost for the
# Slurm integration test (crates/stasis-cli/tests/slurm.rs).
#
# Packages (Debian bookworm, Slurm 22.05, MUNGE 0.5.15):
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
# (these pull in libmunge2, slurm-wlm-basic-plugins, libhwloc15 and liblua5.1-0). Their
# maintainer scripts try to start munge/slurmctld/slurmd through invoke-rc.d; on our machines
# /usr/sbin/policy-rc.d forbids that and there is no systemd, so nothing system-wide runs (and
# system slurm daemons would not start anyway: there is no /etc/slurm/slurm.conf). Nothing here
# uses the system's /etc/munge, /etc/slurm, /run/munge or /var/spool/slurm*, nor its ports, so
# a system munged or Slurm that does run is left alone and does not interfere.
#
# Everything lives under STATE_DIR (created if missing, must be empty of a running cluster):
#   etc/slurm.conf   the config (clients find it through SLURM_CONF)
#   env              `export SLURM_CONF=...` for `source`
#   munge/           a private key, munged's socket, pid, log and seed
#   ctld/ slurmd/    slurmctld's StateSaveLocation, slurmd's SlurmdSpoolDir
#   log/             slurmctld.log, slurmd.log, munged.log and the daemons' stdout/stderr
#   run/             pidfiles (down.sh stops exactly these)
# The ports are free ones picked at random, so two clusters (or a system Slurm) do not collide.
#
# Prints `SLURM_CONF=STATE_DIR/etc/slurm.conf` as its last stdout line once `sinfo` shows the
# node idle; exits non-zero with the daemons' log tails if that does not happen within
# UP_TIMEOUT seconds (default 60). On failure it stops what it started (down.sh).
#
# Timing choices (all so that a test's preempt/requeue cycle takes seconds, not minutes):
#   AuthInfo cred_expire=5   a requeued job may not start before cred_expire seconds have
#                            passed (default 120); 5 is the smallest value Slurm accepts
#   sched_interval / bf_interval = 1   the periodic scheduler passes that start such a job
#   KillWait=5               SIGTERM -> SIGKILL grace on cancel/requeue/time limit (default 30)
#   MinJobAge=60             finished job records stay visible to scontrol for a minute
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
S=$(cd "$1" && pwd)
timeout_s=${UP_TIMEOUT:-60}
PATH=$PATH:/usr/sbin:/sbin # the daemons and munged live there

for b in munged mungekey slurmctld slurmd sinfo scontrol sbatch squeue scancel; do
  command -v "$b" >/dev/null || {
    echo "up.sh: '$b' not found: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge" >&2
    exit 1
  }
done
for p in "$S"/run/*.pid; do
  [ -e "$p" ] || continue
  if kill -0 "$(cat "$p")" 2>/dev/null; then
    echo "up.sh: $S already has a running daemon ($p): run down.sh first" >&2
    exit 1
  fi
done

mkdir -p "$S"/{etc,munge,ctld,slurmd,log,run,tmp}
# munged refuses a key or socket directory that others can write to and a key others can read;
# the socket's directory must be searchable by all (clients run as any user).
chmod 700 "$S/ctld" "$S/slurmd"
chmod 755 "$S" "$S/etc" "$S/log" "$S/run" "$S/munge"

fail() {
  echo "up.sh: $*" >&2
  for f in "$S"/log/*.log "$S"/log/*.out; do
    [ -s "$f" ] || continue
    echo "---- tail $f" >&2
    tail -n 20 "$f" >&2
  done
  "$here/down.sh" "$S" >&2 || true
  exit 1
}

# A TCP port nobody listens on (connecting is refused at once) and nobody binds: good enough for
# a private test cluster.
pick_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "up.sh: no free port" >&2
  exit 1
}
ctld_port=$(pick_port)
slurmd_port=$(pick_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(pick_port); done

node=$(hostname -s)
cpus=$(nproc)
# RealMemory in MiB, slightly under what the kernel reports so the node never drains for "low
# RealMemory"; jobs ask for nothing, and MemLimitEnforce needs cgroups we do not use anyway.
mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

# --- munge: a private daemon with its own key and socket.
sock=$S/munge/munge.socket
rm -f "$S/munge/munge.key"
mungekey --create --keyfile="$S/munge/munge.key" --bits=1024 2>"$S/log/mungekey.err" \
  || dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$S/munge/munge.key"
: > "$S/log/munged.log"
chmod 600 "$S/log/munged.log"
# munged daemonizes itself and writes its pidfile; --force because it runs as root and because
# its key/log paths are not the ones it was built for. --num-threads 2 is plenty here.
munged --force --socket="$sock" --key-file="$S/munge/munge.key" \
  --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" \
  --seed-file="$S/munge/munged.seed" --num-threads=2 \
  </dev/null >"$S/log/munged.out" 2>&1 || fail "munged did not start"
for _ in $(seq 50); do
  [ -S "$sock" ] && munge -S "$sock" -n </dev/null 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && break
  sleep 0.1
done
munge -S "$sock" -n </dev/null | unmunge -S "$sock" >/dev/null 2>&1 || fail "munged does not answer on $sock"

# --- slurm.conf
cat > "$S/etc/slurm.conf" <<EOF
# Generated by tests/slurm/up.sh: a private single-node cluster, everything under $S.
ClusterName=stasistest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=5
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/slurmd
SlurmctldPidFile=$S/run/slurmctld.daemon.pid
SlurmdPidFile=$S/run/slurmd.daemon.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=debug
MailProg=/bin/true
PlugStackConfig=$S/etc/plugstack.conf
TmpFS=$S/tmp
# No cgroups: these machines have a v1/v2 hybrid we must not depend on.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
ReturnToService=2
MinJobAge=60
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
BatchStartTimeout=10
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
: > "$S/etc/plugstack.conf"
export SLURM_CONF=$S/etc/slurm.conf
printf 'export SLURM_CONF=%q\n' "$SLURM_CONF" > "$S/env"

# --- daemons, in the foreground (-D) of a background session of their own, so that we know
# their pids, their stderr lands in log/, and they outlive this script but not down.sh.
start() { # NAME ARGS...
  local name=$1; shift
  setsid "$@" </dev/null >"$S/log/$name.out" 2>&1 &
  echo $! > "$S/run/$name.pid"
}
start slurmctld slurmctld -D -c -f "$SLURM_CONF" # -c: no jobs from an earlier run of STATE_DIR
# slurmd needs slurmctld listening, or it retries registration only after a while.
deadline=$((SECONDS + timeout_s))
until scontrol ping 2>/dev/null | grep -q UP; do
  kill -0 "$(cat "$S/run/slurmctld.pid")" 2>/dev/null || fail "slurmctld exited"
  [ $SECONDS -lt $deadline ] || fail "slurmctld did not answer within ${timeout_s}s"
  sleep 0.2
done
start slurmd slurmd -D -f "$SLURM_CONF" -N "$node"

state=
until [ "$state" = idle ]; do
  kill -0 "$(cat "$S/run/slurmctld.pid")" 2>/dev/null || fail "slurmctld exited"
  kill -0 "$(cat "$S/run/slurmd.pid")" 2>/dev/null || fail "slurmd exited"
  [ $SECONDS -lt $deadline ] || fail "node $node not idle within ${timeout_s}s (state: '${state:-?}')"
  sleep 0.2
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-')
done
echo "SLURM_CONF=$SLURM_CONF"
