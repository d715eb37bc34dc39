"""Benchmark: grid evaluation speed and memory of the vectorised model vs a per-point loop.

Evaluates 1,000,000 grid points (50 batch x 50 seq_len x 25 budgets x 16 gammas; every gamma
tried by --gamma auto counts as a point) with `sweep.predict`, and the same model point by point
in a plain Python loop over a sample, in the same process.  Prints points/s, peak memory and the
ratio.  Target: >= 10,000,000 points/s (every gamma tried counts) and < 1 GiB on a 2-core
machine, with the default engine's 80% intervals.  What limits it (cProfile, 2026-12-02): Eq. 1
over the full 4-D arrays of the 16 gammas and the gamma search (take_along_axis, argmax), the
interval derivatives, the step times, and the DataFrame columns.  The regime columns are built
from integer codes: before, np.unique over 62,500-element object arrays took a third of the time
(8.9 M -> 16.6 M points/s on this machine).

Run: python benchmarks/bench_grid.py
"""

from __future__ import annotations

import resource
import time
import tracemalloc

import numpy as np

from magicdec_model.perfmodel.scenario import resolve
from magicdec_model.perfmodel.speculative import expected_tokens, sd_latency
from magicdec_model.perfmodel.sweep import Query, predict

BATCH = np.unique(np.geomspace(1, 1024, 50).round().astype(int))
BATCH = np.concatenate([BATCH, np.arange(1025, 1025 + 50 - len(BATCH))])
SEQ = np.geomspace(1000, 128000, 50).round().astype(int)
BUDGET = np.linspace(128, 4096, 25).round().astype(int)
GAMMAS = 16
QUERY = Query(model="llama-3.1-8b", hardware="a100-80gb-sxm", gpus=[8], batch=BATCH.tolist(),
              seq_len=SEQ.tolist(), kv_budget=BUDGET.tolist(), gamma="auto", acceptance=0.8)


def vectorised() -> tuple[float, int]:
    """Seconds and points of one whole-grid evaluation (untraced: tracemalloc slows numpy)."""
    t0 = time.perf_counter()
    df = predict(QUERY)
    dt = time.perf_counter() - t0
    assert len(df) == len(BATCH) * len(SEQ) * len(BUDGET)
    return dt, len(df) * GAMMAS


def traced_peak() -> int:
    """Peak traced bytes of one whole-grid evaluation (a separate, traced run)."""
    tracemalloc.start()
    predict(QUERY)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def per_point_loop(sample: int = 1500, seed: int = 0) -> float:
    """Seconds per point of the same model (same scenario, steps and engine) one point at a time."""
    scn = resolve(QUERY)[0]
    t_loop = scn.engine.sd_iteration_s
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(sample):
        b = int(rng.choice(BATCH))
        s = int(rng.choice(SEQ))
        k = int(rng.choice(BUDGET))
        g = int(rng.integers(1, GAMMAS + 1))
        t_t = float(scn.step_time("target", b, s, k, g).time)
        t_d = float(scn.step_time("draft", b, s, k, g).time)
        t_v = float(scn.step_time("verify", b, s, k, g).time)
        omega = float(expected_tokens(0.8, g))
        _ = t_t / sd_latency(t_d, t_v, omega, g, t_loop)
    return (time.perf_counter() - t0) / sample


def main() -> None:
    vectorised()  # warm-up (imports, caches)
    runs = [vectorised() for _ in range(5)]
    dt = min(r[0] for r in runs)
    points = runs[0][1]
    peak = traced_peak()
    loop_s = per_point_loop()
    rate = points / dt
    print(f"grid points:          {points:,} ({len(BATCH)}x{len(SEQ)}x{len(BUDGET)}x{GAMMAS})")
    print(f"vectorised:           {dt:.3f} s  = {rate:,.0f} points/s")
    print(f"per-point loop:       {loop_s * 1e6:.0f} us/point = {1 / loop_s:,.0f} points/s")
    print(f"speed ratio:          {rate * loop_s:,.0f}x")
    print(f"peak traced memory:   {peak / 2**20:.0f} MiB during the grid")
    print(f"process max RSS:      {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    ok = rate >= 1e7 and peak < 2**30
    print(f"target (>= 1e7 points/s, < 1 GiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
