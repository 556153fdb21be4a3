#!/usr/bin/env python3
# python_pool.py: a python3 multiprocessing pool (a parent, three worker processes with
# threads, pipes and a POSIX semaphore mapped from a deleted /dev/shm file). Writes PIDFILE
# once the pool runs, prints "result N" at the end. The harness compares N with an
# uninterrupted run after dump/kill/restore mid-computation.
# Usage: python_pool.py PIDFILE
import multiprocessing as mp
import os
import sys
import time


def work(i):
    s = 0
    for k in range(300000):
        s = (s * 31 + k * i) % 1000003
    time.sleep(0.05)
    return s


if __name__ == "__main__":
    pf = sys.argv[1]
    with mp.Pool(3) as pool:
        with open(pf + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(pf + ".tmp", pf)
        res = pool.map(work, range(60), chunksize=1)
    print("result", sum(res) % 1000003, flush=True)
