#!/usr/bin/env python3
"""fdatasync of a 4 KiB overwrite in a pre-written file: alone, and k files at once
(k threads released together; per round the 1st, 2nd, ... completion since release).
usage: fsync_pair.py DIR [ROUNDS]"""
import os, sys, threading, time, statistics
d = sys.argv[1]; rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 400
SIZE = 4 << 20
def mk(i):
    p = os.path.join(d, f"f{i}")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"\0" * SIZE, 0); os.fsync(fd)
    return fd
fds = [mk(i) for i in range(3)]
buf = os.urandom(4096)
def run(k):
    res = []
    for r in range(rounds):
        off = (r * 4096) % SIZE
        done = [0.0] * k
        bar = threading.Barrier(k + 1)
        def w(i):
            bar.wait()
            os.pwrite(fds[i], buf, off); os.fdatasync(fds[i])
            done[i] = time.perf_counter()
        ts = [threading.Thread(target=w, args=(i,)) for i in range(k)]
        for t in ts: t.start()
        t0 = time.perf_counter(); bar.wait()
        for t in ts: t.join()
        res.append(sorted((x - t0) * 1e6 for x in done))
    cols = list(zip(*res))
    return [statistics.median(c) for c in cols]
for k in (1, 2, 3, 1):
    m = run(k)
    print(f"{k} file(s) at once: p50 of 1st..{k}th completion (us): " + " / ".join(f"{x:.0f}" for x in m))
