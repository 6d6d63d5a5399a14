"""The GIL is released while Rust works, concurrent calls agree, and 1,000 calls do not grow
the process."""

import os
import threading
import time

import numpy as np

from gradcam import compat


def test_a_second_thread_runs_during_a_long_explain(lite0, photo):
    images = [photo] * 8
    window = {}

    def work():
        window["start"] = time.perf_counter()
        lite0.explain(images, batch_size=len(images))  # one native call
        window["end"] = time.perf_counter()

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    start, end = window["start"], window["end"]
    inside = [t for t in ticks if start < t < end]
    # Holding the GIL, the call would let this thread run for one switch interval (5 ms) at most.
    assert end - start > 0.05
    assert len(inside) >= 10 and inside[-1] - inside[0] > 0.5 * (end - start)


def test_concurrent_explains_agree_with_serial_ones(lite0, photo):
    expected = lite0.explain(photo, method="gradcam++")[0].map
    results = [None] * 4

    def work(i):
        results[i] = lite0.explain(photo, method="gradcam++")[0].map

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_no_memory_growth_over_1000_calls(lite0, photo):
    small = photo[::10, ::10].copy()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    cam = compat.GradCAM(lite0, ["head"])

    def call():
        r = lite0.explain(small)[0]
        _ = r.overlay
        cam(x)

    for _ in range(100):
        call()
    before = _rss_mib()
    for _ in range(1000):
        call()
    growth = _rss_mib() - before
    # A leak of one map (200 KB) per call would be 200 MiB.
    assert growth < 64, f"RSS grew by {growth:.1f} MiB over 1,000 calls"
