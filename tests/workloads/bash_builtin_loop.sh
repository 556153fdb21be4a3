#!/bin/bash
# bash_builtin_loop.sh: like bash_loop.sh, but bash never forks once the
# pidfile exists: it busy-waits 20 ms between lines with builtins only
# ($EPOCHREALTIME, arithmetic), so the dumped process tree is one process.
# Checks: "line 1" .. "line 300" exactly once each, in order, then "end".
# The wait is relative (20 ms after the previous line), so after a restore
# the lines continue at the same pace instead of bursting.
#
# Usage: bash_builtin_loop.sh PIDFILE   (no SIGUSR2: runs to completion)
set -u
pidfile=${1:?usage: bash_builtin_loop.sh PIDFILE}
# Atomic pidfile: write PIDFILE.tmp, rename(2) it with mv. mv must not be
# our child when the pidfile appears (the dump would see a transient child),
# so a grandchild does the rename, after its parent subshell has been reaped;
# it is then an orphan outside our tree. We wait for the file with builtins.
echo "$$" >"$pidfile.tmp" || exit 3
(
	sub=$BASHPID
	(while kill -0 "$sub" 2>/dev/null; do :; done
	 exec mv -f "$pidfile.tmp" "$pidfile") </dev/null >/dev/null &
)
until [[ -s $pidfile ]]; do
	((SECONDS < 10)) || { echo "FAIL setup: pidfile not created" >&2; exit 3; }
done

for ((i = 1; i <= 300; i++)); do
	echo "line $i"
	# microseconds since the epoch; [.,]: the decimal point is the locale's
	start=${EPOCHREALTIME/[.,]/}
	while ((${EPOCHREALTIME/[.,]/} - start < 20000)); do :; done
done
echo end
exit 0
