"""Predictions next to MagicDec's published 8xA100 end-to-end speedups (a report, not a fit).

The table (``perfmodel/data/paper_8xa100.csv``) is the project page's "End-to-end Speculative
Decoding Speedups for Various Target-Draft pairs on 8xA100s" (same numbers as Table 2 of the
Together AI blog): 8-way tensor parallelism, StreamingLLM drafts, PG-19.  The draft KV budget is
not stated there; 512 is an inference from the figure's file name (``speedups_budget512``).  Rows
carry no acceptance rate: the acceptance table is used where it has the pair, else the default,
and each row says which.

Each row is predicted at seq_len = prefill, batch and 8 GPUs, with the model's own best gamma
(``gamma="auto"``) or the paper's gamma (``gamma="paper"``).  Error = (predicted - published) /
published; MAPE = mean of |error|, in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

from .engine import resolve_engine
from .sweep import Query, predict

#: The engine calibrated on the paper's own measured AR steps (engines.md section 3).
PAPER_ENGINE = "magicdec-8xa100"

PAPER_GPUS = 8
PAPER_HARDWARE = "a100-80gb-sxm"
GAMMA_MODES = ("auto", "paper")


@cache
def paper_table() -> pd.DataFrame:
    """The published 8xA100 speedup table with its source per row."""
    path = resources.files("magicdec_model.perfmodel").joinpath("data/paper_8xa100.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


@dataclass
class Comparison:
    """Per-row predicted vs published speedup and the mean absolute percentage error."""

    rows: pd.DataFrame
    mape_pct: float
    hardware: str
    gamma_mode: str
    notes: list[str]
    engine: str = ""


def compare_paper(
    hardware: str = PAPER_HARDWARE,
    gamma: str = "auto",
    acceptance: float | None = None,
    acceptance_table: str | None = None,
    ideal: bool = False,
    engine: str | None = None,
) -> Comparison:
    """Predict every row of the published table and compare (speedups dimensionless, errors in %)."""
    from .errors import InputError

    if gamma not in GAMMA_MODES:
        raise InputError(f"--gamma {gamma!r} is not one of: {', '.join(GAMMA_MODES)}")
    out = []
    for row in paper_table().itertuples(index=False):
        q = Query(
            model=row.target, draft=row.draft, kv_method=row.kv_method, kv_budget=[int(row.kv_budget)],
            hardware=hardware, gpus=[PAPER_GPUS], batch=[int(row.batch)], seq_len=[int(row.prefill)],
            gamma="auto" if gamma == "auto" else [int(row.gamma)], acceptance=acceptance,
            acceptance_table=acceptance_table, ideal=ideal, budget_policy="cap", engine=engine,
        )
        p = predict(q).iloc[0]
        err = (p["speedup"] - row.speedup) / row.speedup * 100.0
        out.append({
            "target": row.target,
            "draft": row.draft,
            "kv_budget": int(row.kv_budget),
            "prefill": int(row.prefill),
            "batch": int(row.batch),
            "gamma_paper": int(row.gamma),
            "gamma_model": int(p["gamma"]),
            "speedup_paper": float(row.speedup),
            "speedup_model": float(p["speedup"]),
            "speedup_model_lo": float(p["speedup_lo"]),
            "speedup_model_hi": float(p["speedup_hi"]),
            "error_pct": float(err),
            "acceptance": float(p["acceptance"]),
            "acceptance_source": str(p["acceptance_source"]),
            "fits_memory": bool(p["fits_memory"]),
            "source": row.source,
        })
    rows = pd.DataFrame(out)
    mape = float(np.mean(np.abs(rows["error_pct"])))
    notes = [
        f"published table: {paper_table()['source'].iloc[0]}",
        f"draft KV budget: {paper_table()['budget_note'].iloc[0]}",
        "predicted at seq_len = prefill (the context grows by the generated tokens in the paper's runs)",
    ]
    return Comparison(rows, mape, hardware, gamma, notes, resolve_engine(engine, ideal).name)
