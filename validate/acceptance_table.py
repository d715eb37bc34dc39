"""The measured acceptance table: per-run counts in, per-configuration rows with intervals out.

``acceptance measure`` (:mod:`.acceptance_measure`) logs one row per speculative-decoding run (one
text window x KV method x budget x context x gamma x temperature) with its counts
(:data:`RUN_COLUMNS`); :func:`table_rows` pools the runs of each configuration into one row of
:data:`TABLE_COLUMNS`.  The first eight columns are perfmodel's acceptance table
(:data:`magicdec_model.perfmodel.acceptance.COLUMNS`), so ``predict --acceptance-table`` reads the
file as it is.  Torch-free.

Estimators (``docs/acceptance.md``), from runs ``w = 1..n`` with ``A_w`` accepted draft tokens,
``R_w`` rounds that ended in a rejection (fewer than gamma accepted) and ``N_w`` rounds (SD steps):

* ``acceptance`` = sum A / (sum A + sum R): the maximum-likelihood per-token rate alpha of
  MagicDec's Eq. 1 (every token is accepted i.i.d. with probability alpha; a round tests tokens
  until the first rejection or gamma accepts, so A + R tokens were tested and A accepted);
* ``accepted_per_drafted`` = sum A / (gamma sum N): what engines report (accepted / drafted);
* ``tokens_per_step`` = (sum A + sum N) / sum N: tokens emitted per SD step, bonus included;
* ``posI_rate`` = (rounds with >= I accepted) / (rounds with >= I - 1 accepted): the acceptance at
  draft position I given that positions 1..I-1 were accepted;
* intervals (``_lo``, ``_hi``): 95 % over text windows.  With n >= 2 windows, a ratio estimator's
  cluster standard error, sqrt(n / (n - 1) sum_w (x_w - r y_w)^2) / sum_w y_w, with Student's t at
  n - 1 degrees of freedom (windows are the independent units; tokens within a window are not);
  with one window, the Wilson interval over the tested tokens (acceptance) or the normal interval
  over the window's rounds (tokens per step), which assume independent tokens and rounds.
  Clipped to [0, 1] and [1, gamma + 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..perfmodel.acceptance import COLUMNS as ACCEPTANCE_COLUMNS

#: interval level of every ``_lo`` / ``_hi`` column
LEVEL = 0.95

#: one speculative-decoding run (the resumable log beside the table)
RUN_COLUMNS = (
    "key", "window", "method", "budget", "seq_len", "gamma", "temperature",
    "rounds",  # SD steps of the run (one request)
    "accepted",  # draft tokens accepted
    "rejections",  # rounds that ended in a rejection
    "accept_counts",  # rounds with 0, 1, ..., gamma accepted, space-separated
    "seconds", "time_utc",
)

#: the table, before the per-position columns ``pos1_rate .. posG_rate``
TABLE_COLUMNS = (
    *ACCEPTANCE_COLUMNS,
    "acceptance_lo", "acceptance_hi", "accepted_per_drafted",
    "tokens_per_step", "tokens_per_step_lo", "tokens_per_step_hi",
    "gamma", "temperature", "n_windows", "n_steps", "new_tokens",
)


def run_key(window: int, method: str, budget: int, seq_len: int, gamma: int, temperature: float) -> str:
    """The log key of one run."""
    return f"w{window}|{method}|b{budget}|s{seq_len}|g{gamma}|t{temperature:g}"


def position_columns(gamma: int) -> list[str]:
    """``pos1_rate .. pos{gamma}_rate``."""
    return [f"pos{i}_rate" for i in range(1, gamma + 1)]


def _t_quantile(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def _z() -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + LEVEL / 2))


def ratio_interval(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """(ratio, lo, hi) of sum(num) / sum(den) with the cluster interval over >= 2 units."""
    n = len(num)
    y = sum(den)
    r = sum(num) / y
    var = n / (n - 1) * sum((a - r * b) ** 2 for a, b in zip(num, den, strict=True)) / y**2
    h = _t_quantile(n - 1) * math.sqrt(var)
    return r, r - h, r + h


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion at :data:`LEVEL`."""
    z = _z()
    p = successes / trials
    den = 1 + z * z / trials
    mid = (p + z * z / (2 * trials)) / den
    h = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return mid - h, mid + h


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def pool(runs: list[Mapping[str, Any]], gamma: int) -> dict[str, Any]:
    """The estimates of one configuration from its runs (dicts with ``accepted``, ``rejections``,
    ``rounds`` and ``accept_counts`` as a list of gamma + 1 ints)."""
    A = [int(r["accepted"]) for r in runs]
    R = [int(r["rejections"]) for r in runs]
    N = [int(r["rounds"]) for r in runs]
    counts = [sum(int(r["accept_counts"][a]) for r in runs) for a in range(gamma + 1)]
    tested = [a + b for a, b in zip(A, R, strict=True)]
    emitted = [a + b for a, b in zip(A, N, strict=True)]
    acc = sum(A) / sum(tested)
    tps = sum(emitted) / sum(N)
    if len(runs) >= 2:
        _, a_lo, a_hi = ratio_interval(A, tested)
        _, t_lo, t_hi = ratio_interval(emitted, N)
    else:
        a_lo, a_hi = wilson(sum(A), sum(tested))
        rounds = sum(counts)
        var = sum(c * (a + 1 - tps) ** 2 for a, c in enumerate(counts)) / max(rounds - 1, 1)
        h = _z() * math.sqrt(var / rounds)
        t_lo, t_hi = tps - h, tps + h
    reach = [sum(counts[i:]) for i in range(gamma + 1)]
    pos = {c: (reach[i + 1] / reach[i] if reach[i] else None)
           for i, c in enumerate(position_columns(gamma))}
    return {
        "acceptance": acc,
        "acceptance_lo": _clip(a_lo, 0.0, acc), "acceptance_hi": _clip(a_hi, acc, 1.0),
        "accepted_per_drafted": sum(A) / (gamma * sum(N)),
        "tokens_per_step": tps,
        "tokens_per_step_lo": _clip(t_lo, 1.0, tps), "tokens_per_step_hi": _clip(t_hi, tps, gamma + 1.0),
        "n_windows": len(runs), "n_steps": sum(N), **pos,
    }


def parse_counts(text: str) -> list[int]:
    """``accept_counts`` of the log ("3 1 0 2") as ints."""
    return [int(x) for x in str(text).split()]


def table_rows(runs: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One table row per (method, budget, seq_len, gamma, temperature) of the logged ``runs``.

    ``meta`` gives ``model``, ``draft``, ``dataset``, ``source`` and ``new_tokens``.  Rows are
    sorted by method, budget, seq_len, gamma and temperature.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        k = (str(r["method"]), int(r["budget"]), int(r["seq_len"]), int(r["gamma"]),
             float(r["temperature"]))
        counts = r["accept_counts"]
        groups.setdefault(k, []).append({**r, "accept_counts": counts if isinstance(counts, list)
                                         else parse_counts(counts)})
    rows = []
    for (method, budget, seq_len, gamma, temp), group in sorted(groups.items()):
        rows.append({
            "model": meta["model"], "draft": meta.get("draft", "self"), "method": method,
            "budget": budget, "seq_len": seq_len, **pool(group, gamma),
            "dataset": meta["dataset"], "source": meta["source"], "gamma": gamma,
            "temperature": temp, "new_tokens": meta["new_tokens"],
        })
    return rows


def table_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """:data:`TABLE_COLUMNS` and the position columns up to the largest gamma of ``rows``."""
    g = max((int(r["gamma"]) for r in rows), default=0)
    return [*TABLE_COLUMNS, *position_columns(g)]


def table_csv(rows: list[Mapping[str, Any]]) -> str:
    """The table as CSV text (numbers to 6 significant digits; unreached positions empty)."""
    import csv
    import io

    cols = table_columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: _cell(r.get(c)) for c in cols})
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
