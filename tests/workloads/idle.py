#!/usr/bin/env python3
# idle.py: a small, idle real program (a CPython interpreter, about 10 MB RSS)
# for scripts/bench: the fixed cost of a dump and a restore.
#
# Usage: idle.py PIDFILE
#   Writes its PID to PIDFILE.tmp and renames it to PIDFILE, then sleeps in a
#   loop. On SIGUSR2 writes "ok" to PIDFILE.result (tmp + rename) and exits 0.
#   Watchdog: exits 2 if no SIGUSR2 arrives within IDLE_TIMEOUT_SEC (default
#   900) seconds, so a leaked copy does not live forever.
import os
import signal
import sys
import time


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    if len(sys.argv) != 2:
        print("usage: idle.py PIDFILE", file=sys.stderr)
        return 3
    pidfile = sys.argv[1]
    done = []
    signal.signal(signal.SIGUSR2, lambda sig, frame: done.append(sig))
    write_atomic(pidfile, "%d\n" % os.getpid())
    timeout = float(os.environ.get("IDLE_TIMEOUT_SEC", "900"))
    start = time.monotonic()
    while not done:
        # short sleeps: the handler runs at the latest 0.1 s after SIGUSR2
        time.sleep(0.1)
        if time.monotonic() - start > timeout:
            return 2
    write_atomic(pidfile + ".result", "ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
