#!/usr/bin/env python3
"""How an idle machine slows a durable write: fsync of a small append, p50,
back to back and after 2, 5, 10, 20 and 50 ms with nothing done (issue 24,
BENCHMARKS.md "a fourth sitting"). Run from anywhere: python3 bench/probes/idle_fsync.py
It writes in a temporary directory under the repository's target/."""
import os
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.makedirs(f"{ROOT}/target", exist_ok=True)
d = tempfile.mkdtemp(dir=f"{ROOT}/target")
fd = os.open(f"{d}/f", os.O_WRONLY | os.O_CREAT)
for gap in [0, 0.002, 0.005, 0.01, 0.02, 0.05]:
    xs = []
    for i in range(100):
        if gap:
            time.sleep(gap)
        os.write(fd, b"x" * 100)
        t = time.perf_counter()
        os.fsync(fd)
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    print(f"idle {gap*1000:4.1f} ms before: fsync p50 {xs[50]:.3f} ms, p90 {xs[90]:.3f} ms")
os.close(fd)
