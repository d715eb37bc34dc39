"""The design-space report's numbers: strategy predictions reshaped to batch x seq_len grids, and the
report's two tables (inputs with their sources, best configuration per sequence length).

numpy and pandas only: no plotly import here (the figures are in :mod:`.figures`).  Not to be
confused with :mod:`magicdec_model.perfmodel.grid`, which splits a sweep into chunks.
Units: the predictions' SI columns become ms, GB and % in :attr:`Grid.arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..advise import WORTH_IT
from ..architecture import get_model
from ..engine import resolve_engine
from ..errors import InputError
from ..feasibility import feasible
from ..hardware import HardwareProfile
from ..strategy import Strategy
from ..sweep import MEMORY_UTILIZATION, Query
from ..units import with_unit


@dataclass
class Grid:
    """Predictions of one strategy reshaped to (batch, seq_len) arrays; times in ms, memory in GB."""

    strategy: Strategy
    batch: np.ndarray
    seq_len: np.ndarray
    arrays: dict[str, np.ndarray]
    fits: np.ndarray
    frame: pd.DataFrame


def to_grid(df: pd.DataFrame, strategy: Strategy) -> Grid:
    """Reshape one strategy's ``predict`` rows (one per batch x seq_len point) into a :class:`Grid`.

    Raises :class:`InputError` where the rows are not exactly one per point (several GPU counts or
    gamma settings).
    """
    df = df.sort_values(["batch", "seq_len"], kind="stable")
    B = np.unique(df["batch"].to_numpy())
    S = np.unique(df["seq_len"].to_numpy())
    shape = (len(B), len(S))
    if len(df) != B.size * S.size:
        raise InputError("report needs exactly one GPU count (--gpus) and one gamma setting")

    def col(name: str) -> np.ndarray:
        return df[name].to_numpy().reshape(shape)

    arrays = {
        "gamma": col("gamma").astype(float),
        "speedup": col("speedup"),
        "speedup_lo": col("speedup_lo"),
        "speedup_hi": col("speedup_hi"),
        "t_target_ms": col("t_target_s") * 1e3,
        "t_draft_ms": col("t_draft_s") * 1e3,
        "t_verify_ms": col("t_verify_s") * 1e3,
        "expected_tokens": col("expected_tokens"),
        "acceptance": col("acceptance"),
        "throughput_ar": col("throughput_ar_tok_s"),
        "throughput_sd": col("throughput_sd_tok_s"),
        "latency_ar_ms": col("latency_ar_s") * 1e3,
        "latency_sd_ms": col("latency_sd_s") * 1e3,
        "kv_pct": col("kv_fraction") * 100.0,
        "memory_gb": col("memory_per_gpu_bytes") / 1e9,
        "regime": col("regime"),
        "regime_verify": col("regime_verify"),
        "regime_draft": col("regime_draft"),
        "critical_seq_len": col("critical_seq_len"),
        "comm_pct": col("comm_fraction") * 100.0,
    }
    # fits: the point can run (fits in memory and is within the model's maximum context)
    return Grid(strategy, B, S, arrays, feasible(df).reshape(shape), df)


def speedup_range(grids: list[Grid]) -> tuple[float, float]:
    """(zmin, zmax) shared by every speedup heatmap: the speedups of points that fit in memory,
    widened to include 0.99 and 1.01 so that speedup 1 is always inside; (0.5, 2.0) if none fits."""
    fin = np.concatenate([np.where(g.fits, g.arrays["speedup"], np.nan).ravel() for g in grids])
    fin = fin[np.isfinite(fin)]
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.5, 2.0)
    return (min(lo, 0.99), max(hi, 1.01))


def inputs_table(
    query: Query, hw: HardwareProfile, strategies: list[Strategy], df: pd.DataFrame,
    cannot_run: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Rows (item, value, source) describing every input of the report."""
    target = get_model(query.model)
    rows = [
        ("target model", f"{target.name}: {target.param_count() / 1e9:.2f} B parameters, "
                         f"{target.num_layers} layers, {target.num_heads} heads / "
                         f"{target.num_kv_heads} KV heads, hidden {target.hidden_size}",
         target.source or target.hf_id),
        ("GPUs (tensor parallel)", ", ".join(str(g) for g in query.gpus), ""),
        ("gamma", str(query.gamma) if isinstance(query.gamma, str) else
         ", ".join(map(str, query.gamma)), "auto = the gamma of highest speedup in 1..16"),
        ("hardware profile", f"{hw.name}: {hw.description}" + (" [ideal]" if query.ideal else ""),
         hw.path or "built-in"),
    ]
    for s in strategies:
        src = "the target's own weights"
        if s.draft in ("eagle", "mtp"):
            src = {"eagle": "an EAGLE head on the target's hidden states (EAGLE, arXiv 2401.15077): one "
                            "decoder layer of the target's shape with an input projection",
                   "mtp": "the model's multi-token-prediction module (DeepSeek-V3, arXiv 2412.19437): one "
                          "decoder layer with an input projection"}[s.draft]
        elif s.draft == "ngram":
            src = "n-gram prompt lookup: no GPU model; the engine's ngram_lookup_s per sequence"
        elif s.draft != "self":
            d = get_model(s.draft)
            src = f"{d.name}: {d.param_count() / 1e9:.2f} B parameters; {d.source or d.hf_id}"
        flag = (cannot_run or {}).get(s.label)
        rows.append((f"draft strategy: {s.label}", s.label + (f" (FLAGGED: {flag})" if flag else ""), src))
        part = df[df["strategy"] == s.label]
        for source, accs in part.groupby("acceptance_source", sort=False)["acceptance"]:
            lo, hi = float(accs.min()), float(accs.max())
            span = f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
            rows.append((f"acceptance, {s.label}", span, str(source)))
    for key, value in hw.datasheet.items():
        rows.append((f"datasheet {key}", with_unit(key, value), hw.sources.get(key, "")))
    for key, value in hw.efficiency.items():
        rows.append((f"efficiency {key}", with_unit(key, value), hw.sources.get(key, "")))
    engine = resolve_engine(query.engine, query.ideal)
    rows.append(("engine", f"{engine.name}: {engine.description}", engine.path or "built-in"))
    for key in engine.parameters:
        rows.append((f"engine {key}", f"{with_unit(key, engine.value(key))} +- "
                     f"{with_unit(key, engine.stderr.get(key, 0.0))}",
                     engine.sources.get(key, "")))
    rows.append(("memory fit", f"weights + KV caches <= {MEMORY_UTILIZATION:.0%} of GPU memory", ""))
    return pd.DataFrame(rows, columns=["input", "value", "source"])


def best_table(grids: list[Grid], cannot_run: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Per sequence length: the strategy and batch of highest speedup among points that can run
    (fit in memory, within the model's context), over strategies the engine runs (labels in
    ``cannot_run`` are left out)."""
    rows = []
    S = grids[0].seq_len
    for j, s in enumerate(S):
        best = None
        for g in grids:
            if g.strategy.label in cannot_run:
                continue
            sp = np.where(g.fits[:, j], g.arrays["speedup"][:, j], -np.inf)
            i = int(np.argmax(sp))
            if np.isfinite(sp[i]) and (best is None or sp[i] > best[0]):
                best = (sp[i], g, i)
        if best is None:
            rows.append({"seq_len": int(s), "strategy": "nothing can run (memory, context or engine)"})
            continue
        _, g, i = best
        a = g.arrays
        rows.append({
            "seq_len": int(s),
            "strategy": g.strategy.label,
            "batch": int(g.batch[i]),
            "gamma": int(a["gamma"][i, j]),
            "speedup": round(float(a["speedup"][i, j]), 3),
            "80% interval": f"{a['speedup_lo'][i, j]:.2f}-{a['speedup_hi'][i, j]:.2f}",
            "SD throughput (tok/s)": round(float(a["throughput_sd"][i, j]), 1),
            "SD latency (ms/token)": round(float(a["latency_sd_ms"][i, j]), 3),
            "AR throughput (tok/s)": round(float(a["throughput_ar"][i, j]), 1),
            "memory per GPU (GB)": round(float(a["memory_gb"][i, j]), 2),
            "use": "SD" if a["speedup"][i, j] >= WORTH_IT else f"AR (SD < {WORTH_IT}x)",
        })
    return pd.DataFrame(rows)


def tokens_label(n: float) -> str:
    """A token count as people write it: 1000 -> '1k', 128000 -> '128k', 1500 -> '1.5k', 512 -> '512',
    2000000 -> '2M' (k = 1,000, as the command line reads '8k')."""
    n = float(n)
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:.0f}"


def summary(grids: list[Grid]) -> list[str]:
    """The report's answer in a few sentences: the best configuration that fits in memory, where SD
    pays (best strategy's speedup >= :data:`~..advise.WORTH_IT`) and by how much, and how many points do
    not fit."""
    shape = grids[0].arrays["speedup"].shape
    sp = np.stack([np.where(g.fits, g.arrays["speedup"], -np.inf) for g in grids])  # (strategies, B, S)
    best_k = np.argmax(sp, axis=0)
    best = np.take_along_axis(sp, best_k[None], axis=0)[0]
    fits = np.isfinite(best)
    total = int(np.prod(shape))
    lines = []
    if not fits.any():
        return [f"No point of the grid fits in GPU memory (weights + KV caches <= {MEMORY_UTILIZATION:.0%} "
                "of capacity): fewer sequences, shorter contexts, more GPUs or an fp8 KV cache."]
    k, i, j = np.unravel_index(int(np.argmax(np.where(fits[None], sp, -np.inf))), sp.shape)
    g = grids[k]
    a = g.arrays
    lines.append(
        f"Best configuration that fits in memory: {g.strategy.label} at batch {int(g.batch[i])}, "
        f"seq_len {tokens_label(g.seq_len[j])} tokens, gamma {int(a['gamma'][i, j])}: speedup "
        f"{a['speedup'][i, j]:.2f}x (80% interval {a['speedup_lo'][i, j]:.2f}-{a['speedup_hi'][i, j]:.2f}), "
        f"{a['throughput_sd'][i, j]:,.0f} tokens/s with SD vs {a['throughput_ar'][i, j]:,.0f} without.")
    pays = fits & (best >= WORTH_IT)
    n_fit = int(fits.sum())
    if pays.any():
        gains = best[pays]
        lines.append(
            f"SD pays (speedup >= {WORTH_IT}x with the best strategy) at {int(pays.sum())} of the {n_fit} "
            f"points that fit: median {np.median(gains):.2f}x, up to {gains.max():.2f}x.")
        where = []
        for i, b in enumerate(grids[0].batch):
            js = np.flatnonzero(pays[i])
            if js.size:
                where.append(f"batch {int(b)} from {tokens_label(grids[0].seq_len[js[0]])}")
        lines.append("Where it starts paying: " + ", ".join(where) + " tokens of context.")
    else:
        lines.append(f"SD does not pay anywhere on this grid: the best speedup of any strategy that fits "
                     f"is {best[fits].max():.2f}x, below {WORTH_IT}x; decode autoregressively.")
    if n_fit < total:
        lines.append(f"{total - n_fit} of the {total} points (batch x seq_len) do not fit in GPU memory with "
                     f"any strategy (grey in the heatmaps) and are left out of the above.")
    return lines


def acceptance_kinds(df: pd.DataFrame) -> str:
    """Where the report's acceptance rates come from, in a few words: 'measured', 'default 0.8',
    'given by --acceptance', 'published mean accepted lengths', ... (the full sources are in the
    inputs table)."""
    kinds = []
    for src in pd.unique(df["acceptance_source"].astype(str)):
        if "--acceptance-table" in src or "your table" in src:
            kinds.append("your --acceptance-table")
        elif src.startswith("acceptance model"):
            kinds.append("the acceptance model")
        elif "--acceptance" in src or "--accept-len" in src or "--position-acceptance" in src:
            kinds.append("given on the command line")
        elif src.startswith(("measured", "interpolated", "clamped")):
            kinds.append("measured")
            if not src.startswith("measured"):
                kinds.append("interpolated between measured lengths" if src.startswith("interpolated")
                             else "clamped outside the measured lengths")
        elif "equivalent per-token rate" in src:
            kinds.append("published mean accepted lengths")
        elif src.startswith("default"):
            kinds.append(src.split(" (")[0])
        else:
            kinds.append(" ".join(src.split()[:4]))
    return ", ".join(dict.fromkeys(kinds))


def best_budgets(grids: list[Grid]) -> dict[str, np.ndarray]:
    """Per strategy label: the (batch, seq_len) cells where its budget gives the highest speedup
    among the report's budgets of the same draft and KV method (memory permitting); only for
    (draft, method) pairs with at least two budgets."""
    families: dict[tuple[str, str], list[Grid]] = {}
    for g in grids:
        if g.strategy.kv_method != "full" and g.strategy.draft != "ngram":
            families.setdefault((g.strategy.draft, g.strategy.kv_method), []).append(g)
    out: dict[str, np.ndarray] = {}
    for members in families.values():
        if len(members) < 2:
            continue
        sp = np.stack([np.where(g.fits, g.arrays["speedup"], -np.inf) for g in members])
        best = np.argmax(sp, axis=0)
        for i, g in enumerate(members):
            out[g.strategy.label] = (best == i) & np.isfinite(sp[i])
    return out


def acceptance_curves(model: str, methods: list[str], seq_len: np.ndarray, budgets: list[int],
                      acceptance_table: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The acceptance of ``model``'s self-drafts for the report's figure: the model's curves
    against budget (one per seq_len) and against seq_len (one per budget), and the measured points.

    Curves: method, axis ("budget" or "seq_len"), budget, seq_len, acceptance, sd, basis, source.
    Points: the measured rows of ``model`` drafted by itself (built-in, shipped measured tables,
    the user's table): method, budget, seq_len, acceptance, source.
    """
    from ..acceptance import load_table
    from ..acceptance_model import estimate, fit_rows, model_for_table

    table = load_table(acceptance_table)
    fitted = model_for_table(acceptance_table)
    lo_b = 16.0
    b_axis = np.unique(np.geomspace(lo_b, max(float(np.max(seq_len)), 2 * lo_b), 40).round())
    s_axis = np.unique(np.geomspace(max(float(np.min(seq_len)) / 2, 256.0),
                                    float(np.max(seq_len)) * 1.5, 40).round())
    rows = []
    for method in methods:
        S = np.asarray(seq_len, dtype=float)
        for b in b_axis:
            e = estimate(table, model, "self", method, int(b), S, fitted)
            rows += [(method, "budget", int(b), int(s), float(v), float(d), str(k), str(t))
                     for s, v, d, k, t in zip(S, e.value, e.sd, e.basis, e.source, strict=True)]
        for b in budgets:
            e = estimate(table, model, "self", method, int(b), s_axis, fitted)
            rows += [(method, "seq_len", int(b), int(s), float(v), float(d), str(k), str(t))
                     for s, v, d, k, t in zip(s_axis, e.value, e.sd, e.basis, e.source, strict=True)]
    curves = pd.DataFrame(rows, columns=["method", "axis", "budget", "seq_len", "acceptance", "sd",
                                         "basis", "source"])
    measured = pd.concat([table.drop(columns=["origin", "sigma"], errors="ignore"),
                          fit_rows(published=False).drop(columns=["sigma", "table"], errors="ignore")],
                         ignore_index=True)
    points = measured[(measured["model"] == model) & (measured["draft"] == "self")
                      & measured["method"].isin(methods)].drop_duplicates(
        ["method", "budget", "seq_len", "source"])
    return curves, points[["method", "budget", "seq_len", "acceptance", "source"]].reset_index(drop=True)
