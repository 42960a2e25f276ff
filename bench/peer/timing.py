"""The peer scripts' timing: median of timed runs after untimed warm-up runs, one line each.

Shared by peer_vgg16.py and peer_graph_models.py (both import it from this folder):

    >>> calls = []
    >>> times = timeit(lambda: calls.append(1), repeats=3, warmup=2)
    >>> len(calls), len(times), all(t >= 0 for t in times)
    (5, 3, True)
    >>> report("noop", [4.0, 1.0, 2.0])
    peer: noop 2.00 ms (min 1.00 max 4.00)
    2.0
    >>> report("noop", [1.0], " 3.0 GMAC/s")
    peer: noop 1.00 ms (min 1.00 max 1.00) 3.0 GMAC/s
    1.0

Run the examples above with `python3 -m doctest bench/peer/timing.py`.
"""
import statistics
import time


def timeit(fn, repeats, warmup):
    """Return per-run wall times in ms (after `warmup` untimed runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def report(name, times, extra=""):
    """Print `peer: <name> <median> ms (min <min> max <max>)<extra>` and return the median."""
    med = statistics.median(times)
    print(f"peer: {name} {med:.2f} ms (min {min(times):.2f} max {max(times):.2f}){extra}",
          flush=True)
    return med
