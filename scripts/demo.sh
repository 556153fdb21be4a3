#!/usr/bin/env bash
# Build stasis and show it on the bundled example job: start the job, dump it, kill it,
# restore it, and watch it continue to the same final result as an uninterrupted run.
# Needs root (restoring a process with its original PID uses clone3 set_tid).
set -euo pipefail
cd "$(dirname "$0")/.."
# The job gets only stdin/stdout/stderr: fds a caller leaked into this shell are not its own.
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
cargo build --release --quiet
S=$PWD/target/release/stasis
work=$(mktemp -d /tmp/stasis-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/sample-job" examples/sample-job.c

echo "== uninterrupted run (for comparison)"
expected=$("$work/sample-job" 20 | tail -n 1)
echo "$expected"

echo "== start the job"
"$work/sample-job" 20 &
job=$!
sleep 0.8
echo "== stasis dump --pid $job --dir $work/image --kill"
"$S" dump --pid "$job" --dir "$work/image" --kill
wait "$job" 2>/dev/null || true
echo "== the job is gone; the image:"
"$S" show "$work/image" > "$work/show.txt"
head -n 3 "$work/show.txt"
echo "== stasis restore --dir $work/image"
got=$("$S" restore --dir "$work/image" | tee /dev/stderr | tail -n 1)
if [ "$got" = "$expected" ]; then
  echo "== restored job finished with the same result: $got"
else
  echo "== MISMATCH: expected '$expected', got '$got'" >&2
  exit 1
fi
