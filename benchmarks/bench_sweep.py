"""Benchmark: memory and time of `sweep --out` (chunked, streamed) vs the whole grid at once.

In one process: the peak resident memory above the baseline (after imports and a warm-up) of
perfmodel.gridfile.write_grid over 100,000 and then 1,000,000 rows (gamma='auto': 16 gammas
evaluated per row), then of the former way, predict(query) of the whole 1,000,000-row grid and
DataFrame.to_csv.  Targets: the chunked peak does not grow with the grid (1M / 100k ratio close
to 1) and stays under 250 MB; the chunked run is not slower than the whole-grid one.

Run: python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from magicdec_model.perfmodel.gridfile import write_grid
from magicdec_model.perfmodel.sweep import Query, predict


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _query(n_batch: int) -> Query:
    return Query(model="llama-3.1-8b", batch=list(range(1, n_batch + 1)),
                 seq_len=list(range(1000, 1000 + 1000 * 100, 1000)), gamma="auto", acceptance=0.8)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_grid(_query(10), folder / "warm.csv")  # imports, caches
        base = _rss_mb()
        rows = {}
        for n in (1_000, 10_000):  # 100,000 and 1,000,000 rows
            t0 = time.perf_counter()
            res = write_grid(_query(n), folder / f"g{n}.csv")
            rows[n] = (res.rows, time.perf_counter() - t0, _rss_mb() - base)
            print(f"chunked: {res.rows:>9,} rows in {rows[n][1]:5.1f} s, peak +{rows[n][2]:6.0f} MB")
        t0 = time.perf_counter()
        predict(_query(10_000)).to_csv(folder / "whole.csv", index=False)
        whole_s, whole_mb = time.perf_counter() - t0, _rss_mb() - base
        print(f"whole:   {rows[10_000][0]:>9,} rows in {whole_s:5.1f} s, peak +{whole_mb:6.0f} MB")
        print(f"chunked peak 1M / 100k rows: {rows[10_000][2] / max(rows[1_000][2], 1):.2f}; "
              f"whole / chunked peak at 1M: {whole_mb / max(rows[10_000][2], 1):.1f}x; "
              f"chunked / whole time: {rows[10_000][1] / whole_s:.2f}")


if __name__ == "__main__":
    main()
