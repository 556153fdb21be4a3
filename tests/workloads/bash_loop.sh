#!/bin/bash
# bash_loop.sh: a real bash script survives dump/restore mid-loop: the
# interpreter's variables (the loop counter), its position in the script and
# its output fd must come back; the harness checks "line 1" .. "line 300"
# appear exactly once each, in order, followed by "end".
#
# Note: every `sleep 0.02` is a child process, so at dump time bash usually
# has a child (or is in wait4() for one): this needs process-tree support.
# Process trees are not part of the first milestone; bash_builtin_loop.sh is
# the same test without any child process.
#
# Usage: bash_loop.sh PIDFILE   (no SIGUSR2: runs to completion, exits 0)
set -u
pidfile=${1:?usage: bash_loop.sh PIDFILE}
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
	sleep 0.02
done
echo end
exit 0
