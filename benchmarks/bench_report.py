"""Benchmark: writing the design-space report for a 64 x 64 grid with three draft strategies.

Target (issue 3): under 5 s on a 2-core machine.  Reported next to a baseline measured in the
same process: the model evaluation alone (`predict` for the three strategies), so the ratio says
what the figures and the HTML cost on top of the numbers.

Run: python benchmarks/bench_report.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from magicdec_model.perfmodel.report import build_report, write_report
from magicdec_model.perfmodel.strategy import Strategy, predict_strategies
from magicdec_model.perfmodel.sweep import Query

QUERY = Query(model="llama-2-7b-32k", batch=list(range(1, 65)),
              seq_len=[int(v) for v in np.geomspace(1000, 128000, 64).round()], gpus=[8])
STRATEGIES = [Strategy("self", "streamingllm", 512), Strategy("self", "snapkv", 256),
              Strategy("tinyllama-1.1b", "streamingllm", 512)]


def best_of(func, repeat: int = 3) -> float:
    """Fastest of ``repeat`` runs of ``func`` (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"

        def report() -> None:
            write_report(out, build_report(QUERY, STRATEGIES))

        report()  # warm-up: imports, plotly.js read once
        t_model = best_of(lambda: predict_strategies(QUERY, STRATEGIES))
        t_report = best_of(report)
        size = out.stat().st_size
    print("grid:                 64 batch x 64 seq_len x 3 strategies")
    print(f"model only (baseline): {t_model:.3f} s")
    print(f"report written:        {t_report:.3f} s  ({t_report / t_model:.1f}x the model alone)")
    print(f"HTML size:             {size / 2**20:.1f} MiB")
    print(f"target (< 5 s):        {'met' if t_report < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
