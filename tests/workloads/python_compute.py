#!/usr/bin/env python3
"""python_compute.py: a real, unmodified interpreter survives dump/restore
mid-computation.

Why it matters: CPython is a program nobody here wrote: a big dynamically
linked binary with many shared libraries, a large heap, and state spread over
its interpreter. If its registers, heap, stack or fds are off by anything,
the result is wrong or it crashes.

Protocol (different from the C workloads: SIGUSR2 is NOT used):
  python_compute.py PIDFILE [ROUNDS]
  writes its PID to PIDFILE atomically (PIDFILE.tmp + rename) BEFORE
  computing, prints "step K" every 100000 rounds (flushed), then
  "result HEX" and exits 0. The harness dumps/restores it somewhere in the
  middle and compares the output with an uninterrupted run: same steps, same
  result.

The work: ROUNDS (default 2,000,000) iterations of
  h = sha256(h + acc as 8 bytes); acc = LCG(acc) ^ h[0]
(hashlib in C plus interpreter work each round: about 4 s on a small
2-vCPU VM; pass a smaller ROUNDS for quick runs).
"""
import hashlib
import os
import sys


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: python_compute.py PIDFILE [ROUNDS]\n")
        return 3
    pidfile = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000

    tmp = pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, pidfile)

    mask = (1 << 64) - 1
    h = b"stasis-python-compute"
    acc = 1
    sha256 = hashlib.sha256
    for i in range(1, rounds + 1):
        h = sha256(h + acc.to_bytes(8, "little")).digest()
        acc = ((acc * 6364136223846793005 + 1442695040888963407) & mask) ^ h[0]
        if i % 100_000 == 0:
            print("step %d" % i, flush=True)
    print("result %s%016x" % (h.hex(), acc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
