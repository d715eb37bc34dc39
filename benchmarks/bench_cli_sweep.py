"""Benchmark: marginal cost per grid point of ``magicdec-model sweep`` (CSV written) against a
per-configuration call of llm-analysis (cli99/llm-analysis on GitHub), the fastest installable scalar
peer we found (its ``inference()`` takes about 0.35 ms per configuration), in the same run.

Ours: two ``sweep --out grid.csv`` runs through the CLI (a subprocess each: start-up, parsing,
the model, pyarrow's CSV writer), a small and a large grid; the marginal cost per point is the
difference of their wall times over the difference of their rows.  The peer: llm-analysis's
``infer()`` over varied (batch, seq_len), in-process, in the interpreter named by
``LLM_ANALYSIS_PYTHON`` (default: this one); llm-analysis pulls in transformers, so it is not a
dependency of this project: ``python -m venv /tmp/la && /tmp/la/bin/pip install llm-analysis``
then ``LLM_ANALYSIS_PYTHON=/tmp/la/bin/python python benchmarks/bench_cli_sweep.py``.
Target: at least 20x cheaper per point through the CLI.

Run: python benchmarks/bench_cli_sweep.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "magicdec_model.cli.main", "sweep", "--model", "llama-2-7b",
       "--hardware", "a100-80gb-sxm", "--gpus", "8", "--gamma", "auto", "--acceptance", "0.8"]
SMALL = ["--batch", "1,2,4,8", "--seq-len", "1k,2k", "--kv-budget", "256"]  # 8 rows
LARGE = ["--batch", ",".join(str(b) for b in range(1, 65)),
         "--seq-len", ",".join(str(1000 * s) for s in range(1, 65)),
         "--kv-budget", ",".join(str(32 * k) for k in range(1, 17))]  # 65,536 rows

PEER = """
import time, logging
logging.disable(logging.CRITICAL)
from llm_analysis.analysis import infer
kw = dict(model_name="NousResearch_Llama-2-7b-hf", gpu_name="a100-sxm-80gb", log_level="ERROR",
          tp_size=8, num_tokens_to_generate=1)
infer(batch_size_per_gpu=1, seq_len=512, **kw)
n = 300
t0 = time.perf_counter()
for i in range(n):
    infer(batch_size_per_gpu=1 + i % 64, seq_len=256 + 8 * i, **kw)
print((time.perf_counter() - t0) / n)
"""


def _sweep_seconds(grid: list[str], out: Path) -> tuple[float, int]:
    """Best of three wall times of one sweep (seconds) and the rows it wrote."""
    best = float("inf")
    for _ in range(3):
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        subprocess.run([*CLI, *grid, "--out", str(out)], check=True, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
    rows = sum(1 for _ in out.open(encoding="utf-8")) - 1
    return best, rows


def peer_seconds() -> float | None:
    """Seconds per configuration of llm-analysis ``infer()``, or None where it is not installed."""
    python = os.environ.get("LLM_ANALYSIS_PYTHON", sys.executable)
    res = subprocess.run([python, "-c", PEER], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "grid.csv"
        t_small, n_small = _sweep_seconds(SMALL, out)
        t_large, n_large = _sweep_seconds(LARGE, out)
    marginal = (t_large - t_small) / (n_large - n_small)
    print(f"sweep, {n_small:,} rows:        {t_small:.3f} s (start-up and fixed costs)")
    print(f"sweep, {n_large:,} rows:   {t_large:.3f} s")
    print(f"marginal cost per row:    {marginal * 1e6:.1f} us (16 gammas tried per row, CSV written)")
    peer = peer_seconds()
    if peer is None:
        print("llm-analysis: not installed in LLM_ANALYSIS_PYTHON; see this file's docstring")
        return
    print(f"llm-analysis infer():     {peer * 1e6:.0f} us per configuration (one gamma-free decode)")
    ratio = peer / marginal
    print(f"ratio:                    {ratio:,.0f}x cheaper per point through the CLI")
    print(f"target (>= 20x): {'met' if ratio >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
