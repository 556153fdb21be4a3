#!/bin/bash
# run-plain.sh: build every C workload and run every workload in PLAIN mode
# (no stasis): start it, wait for its pidfile, send SIGUSR2, expect exit 0 and
# no FAIL line. Also proves the checks can fail: with WL_SABOTAGE=1 each C
# workload corrupts one piece of its state after writing the pidfile and must
# exit non-zero with the expected FAIL line; with a short WL_TIMEOUT_SEC and
# no SIGUSR2 the timeouts must fire (exit 2, "FAIL timeout").
#
# Usage: tests/workloads/run-plain.sh      (prints "N passed, N failed";
#                                           exit status 0 iff none failed)
# Env: CC (default gcc), KEEP=1 keeps the temp dir with binaries and logs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/stasis-wl-run.XXXXXX")
[[ ${KEEP:-0} == 1 ]] && echo "# work dir: $work" || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/tmp"
export TMPDIR=$work/tmp # the workloads' temp files go here; checked at the end
pass=0
fail=0

ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() { # name reason [log]
	echo "FAIL $1: $2"
	[[ -n ${3:-} && -f $3 ]] && sed 's/^/    | /' "$3" | tail -n 40
	fail=$((fail + 1))
}

# ---- build: gcc -O1 -g -Wall -Wextra -Werror [// build: flags] ----
for src in "$here"/*.c; do
	name=$(basename "$src" .c)
	read -ra flags <<<"$(sed -n 's|^// build:||p' "$src" | head -n 1)"
	if ${CC:-gcc} -O1 -g -Wall -Wextra -Werror "${flags[@]}" -o "$work/bin/$name" "$src" \
		>"$work/build-$name.log" 2>&1; then
		ok "build $name${flags[*]:+ (${flags[*]})}"
	else
		bad "build $name" "compiler failed" "$work/build-$name.log"
	fi
done

# start LABEL BIN [ARGS...]: run `BIN PIDFILE ARGS...` in the background with
# the environment additions in ENVS (env(1) execs BIN: $! is its pid).
# Sets $pid (0 if no pidfile within 10 s), $pf and $log.
ENVS=()
start() {
	local label=$1
	shift
	pf=$work/$label.pid
	log=$work/$label.log
	rm -f "$pf"
	env "${ENVS[@]}" "$1" "$pf" "${@:2}" >"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -s $pf ]] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! -s $pf ]]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=0
	elif [[ $(<"$pf") != "$pid" ]]; then
		echo "pidfile says $(<"$pf"), pid is $pid" >>"$log"
	fi
}

# finish: wait for $pid at most 70 s; sets $rc (124 if it hung).
finish() {
	for ((i = 0; i < 700; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		rc=124
	else
		wait "$pid"
		rc=$?
	fi
}

# run_usr2 LABEL [ENV=VAL...] -- BIN [ARGS...]: the plain-mode protocol.
run_usr2() {
	local label=$1
	shift
	ENVS=()
	while [[ $1 != -- ]]; do
		ENVS+=("$1")
		shift
	done
	shift
	start "$label" "$@"
	ENVS=()
	if ((pid == 0)); then
		rc=-1
		return
	fi
	sleep 0.3
	kill -USR2 "$pid" 2>/dev/null
	finish
}

# expect_pass LABEL BIN [ARGS]: exit 0, no FAIL line, pidfile == pid.
expect_pass() {
	local label=$1
	shift
	run_usr2 "$label" -- "$@"
	if ((rc == -1)); then bad "$label" "no pidfile within 10 s" "$log"
	elif grep -q '^pidfile says' "$log"; then bad "$label" "wrong pidfile" "$log"
	elif ((rc != 0)); then bad "$label" "exit $rc" "$log"
	elif grep -q '^FAIL' "$log"; then bad "$label" "FAIL line with exit 0" "$log"
	elif ! grep -q '^ok ' "$log"; then bad "$label" "no ok line" "$log"
	else ok "$label ($(grep -c '^ok ' "$log") checks)"
	fi
}

# expect_sabotage LABEL CHECK BIN [ARGS]: with WL_SABOTAGE=1 the workload
# must exit 1 and print "FAIL CHECK".
expect_sabotage() {
	local label=$1 check=$2
	shift 2
	run_usr2 "$label" WL_SABOTAGE=1 -- "$@"
	if ((rc == -1)); then bad "$label" "no pidfile within 10 s" "$log"
	elif ((rc != 1)); then bad "$label" "exit $rc, expected 1" "$log"
	elif ! grep -q "^FAIL $check:" "$log"; then bad "$label" "no 'FAIL $check' line" "$log"
	else ok "$label (detected: $(grep -c '^FAIL' "$log") FAIL lines, incl. $check)"
	fi
}

# expect_timeout LABEL BIN [ARGS]: never signalled, WL_TIMEOUT_SEC=0.5:
# must print "FAIL timeout" and exit 2.
expect_timeout() {
	local label=$1
	shift
	ENVS=(WL_TIMEOUT_SEC=0.5)
	start "$label" "$@"
	ENVS=()
	if ((pid == 0)); then
		bad "$label" "no pidfile" "$log"
		return
	fi
	finish
	if ((rc == 2)) && grep -q '^FAIL timeout$' "$log"; then ok "$label"
	else bad "$label" "exit $rc, expected 2 with 'FAIL timeout'" "$log"
	fi
}

# counter: ticks 0..N-1 consecutive, then "done N"
check_ticks() { # log -> prints an error or nothing
	awk '
		/^tick / { if ($2 != n) { printf "tick %d where %d expected\n", $2, n; bad = 1; exit }
			   n++; next }
		/^done / { done = 1; if ($2 != n) { printf "done %d after %d ticks\n", $2, n; bad = 1; exit } next }
		{ printf "unexpected line: %s\n", $0; bad = 1; exit }
		END { if (!bad && !done) print "no done line"; else if (!bad && n < 5) print "only " n " ticks" }
	' "$1"
}

B=$work/bin
if [[ -x $B/counter ]]; then
	run_usr2 counter -- "$B/counter"
	err=$(check_ticks "$log")
	if ((rc != 0)); then bad counter "exit $rc" "$log"
	elif [[ -n $err ]]; then bad counter "$err" "$log"
	else ok "counter ($(grep -c '^tick' "$log") ticks, consecutive)"
	fi
	readelf -lW "$B/counter" | grep -q INTERP && bad "counter is static" "has PT_INTERP" ||
		ok "counter is static (no PT_INTERP)"
	run_usr2 counter-sabotage WL_SABOTAGE=1 -- "$B/counter"
	err=$(check_ticks "$log")
	if [[ -n $err ]]; then ok "counter-sabotage (continuity check detected: $err)"
	else bad counter-sabotage "the continuity check did not notice the skipped tick" "$log"
	fi
	expect_timeout counter-timeout "$B/counter"
fi

for w in memory cpu signals process files; do
	[[ -x $B/$w ]] && expect_pass "$w" "$B/$w"
done
for mode in sleep read poll sigsuspend futex; do
	[[ -x $B/blocking ]] && expect_pass "blocking-$mode" "$B/blocking" "$mode"
done

# sabotage: the checks really fail when the state is broken
[[ -x $B/memory ]] && expect_sabotage memory-sabotage anon-16m "$B/memory"
[[ -x $B/files ]] && expect_sabotage files-sabotage a-offset "$B/files"
[[ -x $B/signals ]] && expect_sabotage signals-sabotage pending "$B/signals"
[[ -x $B/process ]] && expect_sabotage process-sabotage umask "$B/process"
[[ -x $B/cpu ]] && expect_sabotage cpu-sabotage gpr "$B/cpu"
declare -A sab_check=([sleep]=sleep-interrupted [read]=read-restarted
	[poll]=poll-ready [sigsuspend]=sigsuspend-mask-restored [futex]=futex-restarted)
for mode in sleep read poll sigsuspend futex; do
	[[ -x $B/blocking ]] &&
		expect_sabotage "blocking-$mode-sabotage" "${sab_check[$mode]}" "$B/blocking" "$mode"
done

# timeouts: nobody sends SIGUSR2
[[ -x $B/memory ]] && expect_timeout memory-timeout "$B/memory"
[[ -x $B/cpu ]] && expect_timeout cpu-timeout "$B/cpu"
[[ -x $B/blocking ]] && expect_timeout blocking-read-timeout "$B/blocking" read

# python: runs to completion, no signal
start python_compute "$here/python_compute.py"
if ((pid == 0)); then bad python_compute "no pidfile" "$log"
else
	finish
	steps=$(grep -c '^step ' "$log")
	if ((rc != 0)); then bad python_compute "exit $rc" "$log"
	elif grep -q '^pidfile says' "$log"; then bad python_compute "wrong pidfile" "$log"
	elif ((steps != 20)) || ! grep -q '^result [0-9a-f]\{80\}$' "$log"; then
		bad python_compute "$steps step lines, result line missing?" "$log"
	else ok "python_compute ($(grep '^result' "$log" | cut -c1-23)...)"
	fi
fi

# bash: "line 1".."line 300", "end", exit 0
for s in bash_loop bash_builtin_loop; do
	start "$s" "$here/$s.sh"
	if ((pid == 0)); then
		bad "$s" "no pidfile" "$log"
		continue
	fi
	finish
	if ((rc != 0)); then bad "$s" "exit $rc" "$log"
	elif grep -q '^pidfile says' "$log"; then bad "$s" "wrong pidfile" "$log"
	elif ! diff -q <(for ((i = 1; i <= 300; i++)); do echo "line $i"; done; echo end) \
		"$log" >/dev/null; then bad "$s" "output is not line 1..300 + end" "$log"
	else ok "$s (300 lines + end)"
	fi
done

# every workload cleaned up after itself
left=$(ls -A "$TMPDIR")
[[ -z $left ]] && ok "temp files cleaned up" || bad "temp files cleaned up" "left: $left"

echo "$pass passed, $fail failed"
((fail == 0))
