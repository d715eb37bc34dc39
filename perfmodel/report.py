"""Design-space report: plotly figures over a batch x seq_len grid and one self-contained HTML page.

Figures (keys of :attr:`Report.figures`):

* ``speedup:<strategy>`` - speedup heatmap per draft strategy, best gamma in each cell, the
  speedup = 1 contour, cells that do not fit in GPU memory masked in grey;
* ``regimes`` - memory- or compute-bound target, verify and draft steps, with the critical
  sequence length curve;
* ``kv_share`` - share of the target step spent reading the KV cache vs seq_len, per batch;
* ``step_ratios`` - T_verify/T_target and T_draft/T_target vs batch, per seq_len;
* ``throughput_latency`` - throughput vs per-token latency, AR and SD, along batch;
* ``speedup_interval`` - speedup vs seq_len for a few batch sizes, the engine's 80 % prediction
  interval shaded around each line;
* ``strategy_map`` - over batch x seq_len, which kind of draft (self sparse-KV, small model,
  EAGLE head, MTP module, n-gram, or none: autoregressive) wins, and by how much.

The predictions come from :func:`strategy.predict_strategies` (one vectorised ``predict`` call per
draft); this module only reshapes and draws them.  Units: SI inside, ms / GB / tok/s in the figures.
plotly is imported here and nowhere else in perfmodel.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .advise import WORTH_IT
from .architecture import get_model
from .engine import resolve_engine
from .errors import InputError
from .hardware import HardwareProfile, load_profile
from .outfiles import atomic_write_text
from .strategy import Strategy, predict_strategies
from .sweep import MEMORY_UTILIZATION, Query

#: Most lines drawn in one line plot (batches or sequence lengths are sub-sampled evenly beyond).
MAX_LINES = 8
#: Sequence lengths drawn in the throughput-latency figure.
MAX_TRADEOFF_LINES = 4
#: An axis is logarithmic when its values span at least this ratio.
LOG_SPAN = 10.0

_MEM_COLOR = "#9ecae1"
_COMP_COLOR = "#fd8d3c"
_OOM_COLOR = "#b0b0b0"
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")

#: Hover fields of a grid point: (column in the grid arrays, label, format).
_HOVER = (
    ("gamma", "best gamma", "%d"),
    ("speedup", "speedup", ".3f"),
    ("speedup_lo", "speedup, 80% interval low", ".3f"),
    ("speedup_hi", "speedup, 80% interval high", ".3f"),
    ("t_target_ms", "T_target (ms)", ".3f"),
    ("t_draft_ms", "T_draft (ms)", ".3f"),
    ("t_verify_ms", "T_verify (ms)", ".3f"),
    ("expected_tokens", "Omega (tokens/step)", ".3f"),
    ("acceptance", "acceptance", ".3f"),
    ("throughput_ar", "AR throughput (tok/s)", ",.0f"),
    ("throughput_sd", "SD throughput (tok/s)", ",.0f"),
    ("latency_ar_ms", "AR latency (ms/token)", ".3f"),
    ("latency_sd_ms", "SD latency (ms/token)", ".3f"),
    ("kv_pct", "KV read share of target step (%)", ".1f"),
    ("memory_gb", "memory per GPU (GB)", ".2f"),
)
_BATCH_COL, _SEQ_COL = len(_HOVER), len(_HOVER) + 1  # customdata indices of batch and seq_len


@dataclass
class Grid:
    """Predictions of one strategy reshaped to (batch, seq_len) arrays; times in ms, memory in GB."""

    strategy: Strategy
    batch: np.ndarray
    seq_len: np.ndarray
    arrays: dict[str, np.ndarray]
    fits: np.ndarray
    frame: pd.DataFrame


@dataclass
class Report:
    """The figures, tables and inputs of a design-space report."""

    figures: dict[str, go.Figure]
    tables: dict[str, pd.DataFrame]
    title: str
    predictions: pd.DataFrame
    build_seconds: float = 0.0
    captions: dict[str, str] = field(default_factory=dict)

    def to_html(self) -> str:
        """One self-contained HTML page: plotly.js embedded once, every figure, every table."""
        return _page(self)


def _to_grid(df: pd.DataFrame, strategy: Strategy) -> Grid:
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
    return Grid(strategy, B, S, arrays, col("fits_memory").astype(bool), df)


def _is_log(values: np.ndarray) -> bool:
    v = np.asarray(values, float)
    return v.min() > 0 and v.max() / v.min() >= LOG_SPAN


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    v = np.asarray(values, float)
    if v.size == 1:
        return np.array([v[0] / 1.2, v[0] * 1.2]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    x = np.log(v) if log else v
    mid = (x[1:] + x[:-1]) / 2
    e = np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _axis(title: str, values: np.ndarray, edges: np.ndarray | None = None) -> dict:
    log = _is_log(values)
    ax: dict = {"title": {"text": title}, "type": "log" if log else "linear"}
    if edges is not None:
        ax["range"] = [np.log10(edges[0]), np.log10(edges[-1])] if log else [edges[0], edges[-1]]
    return ax


def _pick(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices spread evenly over ``range(n)``, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def _customdata(g: Grid) -> np.ndarray:
    """Numbers of every grid point for hover text, (nB, nS, fields), float (serialised compactly)."""
    cols = [np.asarray(g.arrays[key], float).round(4) for key, _, _ in _HOVER]
    shape = g.arrays["speedup"].shape
    cols.append(np.broadcast_to(g.batch[:, None], shape).astype(float))
    cols.append(np.broadcast_to(g.seq_len[None, :], shape).astype(float))
    return np.stack(cols, axis=-1).astype(np.float32)


def _hovertemplate(first: str) -> str:
    lines = [first]
    for i, (_, label, fmt) in enumerate(_HOVER):
        lines.append(f"{label}: %{{customdata[{i}]:{fmt}}}")
    return "<br>".join(lines) + "<extra></extra>"


_POINT = f"batch %{{customdata[{_BATCH_COL}]}}, seq_len %{{customdata[{_SEQ_COL}]:,}} tokens"


def _diverging(zrange: tuple[float, float]) -> list[list]:
    """Red below speedup 1, white at 1, blue above, whatever the (zmin, zmax) range."""
    lo, hi = zrange
    p = float(np.clip((1.0 - lo) / (hi - lo), 0.0, 1.0))
    return [[0.0, "#b2182b"], [p * 0.5, "#ef8a62"], [p, "#f7f7f7"], [p + (1 - p) * 0.4, "#67a9cf"],
            [1.0, "#053061"]]


def speedup_figure(g: Grid, zrange: tuple[float, float], mem_capacity: float) -> go.Figure:
    """Heatmap of SD speedup over batch x seq_len with best gamma per cell, speedup=1 contour, OOM mask."""
    logx, logy = _is_log(g.seq_len), _is_log(g.batch)
    xe, ye = _edges(g.seq_len, logx), _edges(g.batch, logy)
    z = np.where(g.fits, g.arrays["speedup"], np.nan)
    gamma_txt = np.where(g.fits, g.arrays["gamma"].astype(int).astype(str), "")
    cells = max(len(g.batch), len(g.seq_len))
    font = int(np.clip(420 / cells, 5, 12))
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=xe, y=ye, z=z, text=gamma_txt, texttemplate="%{text}", textfont={"size": font},
            customdata=_customdata(g),
            hovertemplate=_hovertemplate(_POINT),
            colorscale=_diverging(zrange), zmin=zrange[0], zmax=zrange[1],
            colorbar={"title": {"text": "speedup (x)"}}, name="speedup",
        )
    )
    oom = ~g.fits
    if oom.any():
        mem = g.arrays["memory_gb"]
        fig.add_trace(
            go.Heatmap(
                x=xe, y=ye, z=np.where(oom, 1.0, np.nan),
                colorscale=[[0, _OOM_COLOR], [1, _OOM_COLOR]], showscale=False,
                customdata=np.stack([np.broadcast_to(g.batch[:, None], mem.shape),
                                     np.broadcast_to(g.seq_len[None, :], mem.shape),
                                     mem.round(2)], axis=-1),
                hovertemplate=(
                    "batch %{customdata[0]}, seq_len %{customdata[1]} tokens<br>out of memory: "
                    f"%{{customdata[2]:.1f}} GB per GPU > {MEMORY_UTILIZATION:.0%} of "
                    f"{mem_capacity / 1e9:.1f} GB<extra></extra>"
                ),
                name="out of memory",
            )
        )
    finite = z[np.isfinite(z)]
    if min(z.shape) >= 2 and finite.size and finite.min() < 1.0 < finite.max():
        fig.add_trace(
            go.Contour(
                x=g.seq_len, y=g.batch, z=z,
                contours={"start": 1.0, "end": 1.0, "size": 1.0, "coloring": "lines",
                          "showlabels": True},
                colorscale=[[0, "black"], [1, "black"]], line={"width": 2.5},
                showscale=False, hoverinfo="skip", name="speedup = 1",
            )
        )
    fig.update_layout(
        title={"text": f"Speedup of SD over AR: {g.strategy.label} (number in cell: best gamma; "
                       f"grey: out of memory; black line: speedup = 1)"},
        xaxis=_axis("sequence length (tokens)", g.seq_len, xe),
        yaxis=_axis("batch size (sequences)", g.batch, ye),
        height=560, margin={"t": 60},
    )
    return fig


def regime_figure(grids: list[Grid]) -> go.Figure:
    """Memory/compute-bound phase diagram of the target, verify and draft steps with the critical S."""
    n = len(grids)
    titles = []
    for g in grids:
        lab = g.strategy.label
        titles += [f"target decode step ({lab})", f"verify step, best gamma ({lab})",
                   f"draft step ({lab})"]
    fig = make_subplots(rows=n, cols=3, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=min(0.12, 0.3 / max(n - 1, 1)))
    colorscale = [[0, _MEM_COLOR], [0.5, _MEM_COLOR], [0.5, _COMP_COLOR], [1, _COMP_COLOR]]
    for r, g in enumerate(grids, start=1):
        logx, logy = _is_log(g.seq_len), _is_log(g.batch)
        xe, ye = _edges(g.seq_len, logx), _edges(g.batch, logy)
        crit = g.arrays["critical_seq_len"][:, 0]
        a = g.arrays
        shape = a["speedup"].shape
        regime_data = np.stack(
            [np.broadcast_to(g.batch[:, None], shape), np.broadcast_to(g.seq_len[None, :], shape),
             a["gamma"], a["kv_pct"].round(2), a["comm_pct"].round(2),
             np.broadcast_to(crit[:, None].round(0), shape)], axis=-1,
        ).astype(np.float32)
        regime_hover = (
            "batch %{customdata[0]}, seq_len %{customdata[1]:,} tokens<br>STEP: %{hovertext}-bound<br>"
            "best gamma (verify step: gamma + 1 tokens): %{customdata[2]}<br>"
            "KV read share of target step: %{customdata[3]:.1f} %<br>"
            "all-reduce share of target step: %{customdata[4]:.1f} %<br>"
            "critical seq_len at this batch: %{customdata[5]:,.0f} tokens<extra></extra>"
        )
        for c, (key, step) in enumerate(
            (("regime", "target step"), ("regime_verify", "verify step"), ("regime_draft", "draft step")),
            start=1,
        ):
            code = (g.arrays[key] == "compute").astype(float)
            fig.add_trace(
                go.Heatmap(
                    x=xe, y=ye, z=code, zmin=0, zmax=1, colorscale=colorscale,
                    customdata=regime_data, hovertext=g.arrays[key].astype(str),
                    hovertemplate=regime_hover.replace("STEP", step),
                    showscale=(r == 1 and c == 1),
                    colorbar={"tickvals": [0.25, 0.75], "ticktext": ["memory-bound", "compute-bound"],
                              "len": 0.3, "y": 1.0, "yanchor": "top"},
                    name=f"{key} {g.strategy.label}",
                ),
                row=r, col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=crit, y=g.batch, mode="lines", line={"color": "black", "width": 2},
                    name="critical sequence length S*(B)", legendgroup="crit",
                    showlegend=(r == 1 and c == 1),
                    customdata=np.stack([g.batch, crit.round(0)], axis=-1),
                    hovertemplate=("critical sequence length at batch %{customdata[0]}: "
                                   "%{customdata[1]:,.0f} tokens (KV read time = weight read time)"
                                   "<extra></extra>"),
                ),
                row=r, col=c,
            )
            xa = _axis("sequence length (tokens)", g.seq_len, xe)
            ya = _axis("batch size", g.batch, ye)
            fig.update_xaxes(**xa, row=r, col=c)
            fig.update_yaxes(**ya, row=r, col=c)
    fig.update_layout(
        title={"text": "Regime phase diagram: blue = memory-bound, orange = compute-bound; "
                       "black line: critical sequence length of the target step"},
        height=330 * n + 80, legend={"orientation": "h", "x": 0.0, "y": -75.0 / (330 * n + 80)},
    )
    return fig


def kv_share_figure(g: Grid) -> go.Figure:
    """Share of the target decode step spent reading KV, vs seq_len, one line per batch."""
    fig = go.Figure()
    for n, i in enumerate(_pick(len(g.batch), MAX_LINES)):
        kv = g.arrays["kv_pct"][i]
        fig.add_trace(
            go.Scatter(
                x=g.seq_len, y=kv, mode="lines+markers", marker={"size": 4},
                line={"color": _PALETTE[n % len(_PALETTE)]}, name=f"batch {g.batch[i]}",
                customdata=np.stack([np.full(kv.shape, g.batch[i]), g.seq_len, kv.round(2),
                                     g.arrays["t_target_ms"][i].round(4),
                                     g.arrays["comm_pct"][i].round(2)], axis=-1).astype(float),
                hovertext=g.arrays["regime"][i].astype(str),
                hovertemplate=("batch %{customdata[0]}, seq_len %{customdata[1]} tokens<br>"
                               "KV read share: %{customdata[2]:.1f} %<br>"
                               "T_target: %{customdata[3]:.3f} ms<br>"
                               "all-reduce share: %{customdata[4]:.1f} %<br>"
                               "target step: %{hovertext}-bound<extra></extra>"),
            )
        )
    fig.update_layout(
        title={"text": "Share of the target decode step spent reading the KV cache"},
        xaxis=_axis("sequence length (tokens)", g.seq_len),
        yaxis={"title": {"text": "KV read time / T_target (%)"}, "range": [0, 100]},
        height=460,
    )
    return fig


def ratio_figure(grids: list[Grid]) -> go.Figure:
    """T_verify/T_target and T_draft/T_target vs batch, one line per seq_len (dash per strategy)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        "T_verify(gamma) / T_target (best gamma)", "T_draft / T_target (one draft step)"])
    for si, g in enumerate(grids):
        dash = _DASHES[si % len(_DASHES)]
        for n, j in enumerate(_pick(len(g.seq_len), MAX_LINES // 2 + 2)):
            color = _PALETTE[n % len(_PALETTE)]
            tt = g.arrays["t_target_ms"][:, j]
            for c, key in enumerate(("t_verify_ms", "t_draft_ms"), start=1):
                ratio = g.arrays[key][:, j] / tt
                fig.add_trace(
                    go.Scatter(
                        x=g.batch, y=ratio, mode="lines+markers", marker={"size": 4},
                        line={"color": color, "dash": dash},
                        name=f"S={g.seq_len[j]:,}, {g.strategy.label}",
                        legendgroup=f"{si}-{j}", showlegend=(c == 1),
                        customdata=np.stack([g.batch, np.full(tt.shape, g.seq_len[j]), ratio.round(4),
                                             g.arrays[key][:, j].round(4), tt.round(4),
                                             g.arrays["gamma"][:, j]], axis=-1),
                        hovertemplate=(
                            f"{g.strategy.label}<br>batch %{{customdata[0]}}, seq_len "
                            "%{customdata[1]:,} tokens<br>ratio: %{customdata[2]:.3f}<br>"
                            f"{'T_verify' if c == 1 else 'T_draft'}: %{{customdata[3]:.3f}} ms<br>"
                            "T_target: %{customdata[4]:.3f} ms<br>best gamma: %{customdata[5]}"
                            "<extra></extra>"),
                    ),
                    row=1, col=c,
                )
    b = grids[0].batch
    for c in (1, 2):
        fig.update_xaxes(**_axis("batch size (sequences)", b), row=1, col=c)
        fig.update_yaxes(title={"text": "time ratio (dimensionless)"}, row=1, col=c)
    fig.update_layout(
        title={"text": "Verify and draft cost relative to a target decode step "
                       "(colour: sequence length; dash: draft strategy)"},
        height=520,
    )
    return fig


def tradeoff_figure(grids: list[Grid]) -> go.Figure:
    """Throughput vs per-token latency along batch, AR and SD, for a few sequence lengths (Fig. 1 view)."""
    fig = go.Figure()
    g0 = grids[0]
    xs, ys = [], []
    for n, j in enumerate(_pick(len(g0.seq_len), MAX_TRADEOFF_LINES)):
        color = _PALETTE[n % len(_PALETTE)]
        series = [("AR", g0, "latency_ar_ms", "throughput_ar", "solid")]
        series += [(f"SD {g.strategy.label}", g, "latency_sd_ms", "throughput_sd",
                    _DASHES[(si + 1) % len(_DASHES)]) for si, g in enumerate(grids)]
        for name, g, lat_key, thr_key, dash in series:
            ok = g.fits[:, j]
            if not ok.any():
                continue
            lat = g.arrays[lat_key][ok, j]
            thr = g.arrays[thr_key][ok, j]
            xs.append(lat)
            ys.append(thr)
            fig.add_trace(
                go.Scatter(
                    x=lat, y=thr, mode="lines+markers", marker={"size": 5},
                    line={"color": color, "dash": dash}, name=f"{name}, S={g.seq_len[j]:,}",
                    customdata=np.stack([g.batch[ok], np.full(lat.shape, g.seq_len[j]), lat.round(4),
                                         thr.round(1), g.arrays["speedup"][ok, j].round(4),
                                         g.arrays["gamma"][ok, j]], axis=-1),
                    hovertemplate=(f"{name}<br>batch %{{customdata[0]}}, seq_len %{{customdata[1]:,}} "
                                   "tokens<br>latency: %{customdata[2]:.3f} ms/token<br>throughput: "
                                   "%{customdata[3]:,.0f} tok/s<br>SD speedup: %{customdata[4]:.3f}"
                                   "<br>best gamma: %{customdata[5]}<extra></extra>"),
                )
            )
    lat_all = np.concatenate(xs) if xs else np.array([1.0])
    thr_all = np.concatenate(ys) if ys else np.array([1.0])
    fig.update_layout(
        title={"text": "Throughput vs per-token latency along batch size (solid: autoregressive; "
                       "dashed: SD); points that do not fit in memory are left out"},
        xaxis=_axis("per-token latency (ms/token, per sequence)", lat_all),
        yaxis=_axis("throughput (tokens/s, all sequences)", thr_all),
        height=560,
    )
    return fig


def interval_figure(grids: list[Grid], engine: str) -> go.Figure:
    """Speedup vs seq_len for a few batch sizes with the 80 % prediction interval shaded."""
    fig = go.Figure()
    for si, g in enumerate(grids):
        dash = _DASHES[si % len(_DASHES)]
        for n, i in enumerate(_pick(len(g.batch), MAX_LINES // 2)):
            ok = g.fits[i]
            if not ok.any():
                continue
            color = _PALETTE[n % len(_PALETTE)]
            x = g.seq_len[ok]
            a = g.arrays
            lo, mid, hi = a["speedup_lo"][i, ok], a["speedup"][i, ok], a["speedup_hi"][i, ok]
            group = f"{si}-{i}"
            fig.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                fillcolor=color, opacity=0.18, line={"width": 0}, hoverinfo="skip",
                legendgroup=group, showlegend=False, name=f"80% interval, batch {g.batch[i]}",
            ))
            fig.add_trace(go.Scatter(
                x=x, y=mid, mode="lines+markers", marker={"size": 4}, line={"color": color, "dash": dash},
                legendgroup=group, name=f"batch {g.batch[i]}, {g.strategy.label}",
                customdata=np.stack([np.full(x.shape, g.batch[i]), x, mid.round(4), lo.round(4),
                                     hi.round(4), a["gamma"][i, ok]], axis=-1).astype(float),
                hovertemplate=(f"{g.strategy.label}<br>batch %{{customdata[0]}}, seq_len "
                               "%{customdata[1]:,} tokens<br>speedup %{customdata[2]:.3f} "
                               "(80% interval %{customdata[3]:.3f}-%{customdata[4]:.3f})<br>"
                               "best gamma: %{customdata[5]}<extra></extra>"),
            ))
    fig.add_hline(y=1.0, line={"color": "black", "width": 1, "dash": "dot"})
    fig.update_layout(
        title={"text": f"Speedup with its 80% prediction interval (shaded) under engine {engine} "
                       "(colour: batch size; dash: draft strategy)"},
        xaxis=_axis("sequence length (tokens)", grids[0].seq_len),
        yaxis={"title": {"text": "speedup (x)"}}, height=500,
    )
    return fig


#: Draft kinds of the strategy map, in legend order, with their colours.
MAP_KINDS = ("none (AR)", "self sparse-KV", "small model", "eagle", "mtp", "ngram")
_MAP_COLORS = ("#d9d9d9", "#4292c6", "#41ab5d", "#ef6548", "#807dba", "#fdae6b")


def draft_kind(strategy: Strategy) -> str:
    """The strategy map's kind of a strategy's draft."""
    if strategy.draft == "self":
        return "self sparse-KV"
    if strategy.draft in ("eagle", "mtp", "ngram"):
        return strategy.draft
    return "small model"


def strategy_map_figure(grids: list[Grid]) -> go.Figure:
    """Per (batch, seq_len): the draft kind of highest speedup, its speedup and its margin."""
    g0 = grids[0]
    shape = g0.arrays["speedup"].shape
    kinds = [k for k in MAP_KINDS[1:] if any(draft_kind(g.strategy) == k for g in grids)]
    best = {k: np.full(shape, -np.inf) for k in kinds}
    label = {k: np.full(shape, "", dtype=object) for k in kinds}
    for g in grids:
        k = draft_kind(g.strategy)
        sp = np.where(g.fits, g.arrays["speedup"], -np.inf)
        better = sp > best[k]
        best[k] = np.where(better, sp, best[k])
        label[k] = np.where(better, g.strategy.label, label[k])
    stack = np.stack([best[k] for k in kinds])  # (kinds, nB, nS)
    order = np.argsort(-stack, axis=0)
    top = np.take_along_axis(stack, order[:1], axis=0)[0]
    second = np.take_along_axis(stack, order[1:2], axis=0)[0] if len(kinds) > 1 else np.full(shape, 1.0)
    winner = np.asarray(kinds, dtype=object)[order[0]]
    none = ~(top >= WORTH_IT)
    code = np.where(none, 0, [[MAP_KINDS.index(w) for w in row] for row in winner]).astype(float)
    code[~np.isfinite(top)] = np.nan  # nothing fits in memory: no cell
    win_label = np.where(none, "autoregressive", np.choose(order[0], [label[k] for k in kinds]))
    margin = np.where(none, np.where(np.isfinite(top), top, np.nan),
                      top / np.where(np.isfinite(second), np.maximum(second, 1.0), 1.0))
    logx, logy = _is_log(g0.seq_len), _is_log(g0.batch)
    xe, ye = _edges(g0.seq_len, logx), _edges(g0.batch, logy)
    n = len(MAP_KINDS)
    colorscale = []
    for i, c in enumerate(_MAP_COLORS):
        colorscale += [[i / n, c], [(i + 1) / n, c]]
    runner = np.where(np.isfinite(second), second, np.nan)
    text = np.where(np.isfinite(top), np.char.mod("%.2f", np.where(np.isfinite(top), top, 0.0)), "")
    custom = np.stack([np.broadcast_to(g0.batch[:, None], shape).astype(float),
                       np.broadcast_to(g0.seq_len[None, :], shape).astype(float),
                       np.where(np.isfinite(top), top, np.nan), runner, margin], axis=-1)
    fig = go.Figure(go.Heatmap(
        x=xe, y=ye, z=code, zmin=-0.5, zmax=n - 0.5, colorscale=colorscale, text=text,
        texttemplate="%{text}", customdata=custom, hovertext=win_label,
        hovertemplate=("batch %{customdata[0]}, seq_len %{customdata[1]:,} tokens<br>best: "
                       "%{hovertext}, speedup %{customdata[2]:.3f}<br>best of the other kinds: "
                       "%{customdata[3]:.3f} (winner's margin x%{customdata[4]:.3f})<extra></extra>"),
        colorbar={"tickvals": list(range(n)), "ticktext": list(MAP_KINDS), "title": {"text": "draft"}},
        name="strategy map",
    ))
    fig.update_layout(
        title={"text": f"Which draft wins: colour = kind of the best strategy (grey: none reaches "
                       f"{WORTH_IT}x, use autoregressive decoding; blank: nothing fits in memory); "
                       f"number = its speedup"},
        xaxis=_axis("sequence length (tokens)", g0.seq_len, xe),
        yaxis=_axis("batch size (sequences)", g0.batch, ye), height=520,
    )
    return fig


def inputs_table(
    query: Query, hw: HardwareProfile, strategies: list[Strategy], df: pd.DataFrame
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
            src = f"a {s.draft} head on the target's hidden states (docs/model.md, draft kinds)"
        elif s.draft == "ngram":
            src = "n-gram prompt lookup: no GPU model; the engine's ngram_lookup_s per sequence"
        elif s.draft != "self":
            d = get_model(s.draft)
            src = f"{d.name}: {d.param_count() / 1e9:.2f} B parameters; {d.source or d.hf_id}"
        rows.append((f"draft strategy: {s.label}", s.label, src))
        part = df[df["strategy"] == s.label]
        for source, accs in part.groupby("acceptance_source", sort=False)["acceptance"]:
            lo, hi = float(accs.min()), float(accs.max())
            span = f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
            rows.append((f"acceptance, {s.label}", span, str(source)))
    for key, value in hw.datasheet.items():
        rows.append((f"datasheet {key}", f"{value:.4g}", hw.sources.get(key, "")))
    for key, value in hw.efficiency.items():
        rows.append((f"efficiency {key}", f"{value:.4g}", hw.sources.get(key, "")))
    engine = resolve_engine(query.engine, query.ideal)
    rows.append(("engine", f"{engine.name}: {engine.description}", engine.path or "built-in"))
    for key in engine.parameters:
        rows.append((f"engine {key}", f"{engine.value(key):.4g} +- {engine.stderr.get(key, 0.0):.3g}",
                     engine.sources.get(key, "")))
    rows.append(("memory fit", f"weights + KV caches <= {MEMORY_UTILIZATION:.0%} of GPU memory", ""))
    return pd.DataFrame(rows, columns=["input", "value", "source"])


def best_table(grids: list[Grid]) -> pd.DataFrame:
    """Per sequence length: the strategy and batch of highest speedup among points that fit in memory."""
    rows = []
    S = grids[0].seq_len
    for j, s in enumerate(S):
        best = None
        for g in grids:
            sp = np.where(g.fits[:, j], g.arrays["speedup"][:, j], -np.inf)
            i = int(np.argmax(sp))
            if np.isfinite(sp[i]) and (best is None or sp[i] > best[0]):
                best = (sp[i], g, i)
        if best is None:
            rows.append({"seq_len": int(s), "strategy": "nothing fits in memory"})
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


def build_report(query: Query, strategies: list[Strategy]) -> Report:
    """Predict every strategy over the query's batch x seq_len grid and draw the report's figures."""
    t0 = time.perf_counter()
    if len(query.gpus) != 1:
        raise InputError(f"--gpus {','.join(map(str, query.gpus))}: a report takes one GPU count")
    if not isinstance(query.gamma, str) and len(query.gamma) != 1:
        raise InputError(f"--gamma {','.join(map(str, query.gamma))}: a report takes 'auto' or one value")
    if not strategies:
        raise InputError("a report needs at least one draft strategy")
    hw = query.hardware if isinstance(query.hardware, HardwareProfile) else load_profile(query.hardware)
    query = replace(query, hardware=hw, batch=sorted(set(query.batch)), seq_len=sorted(set(query.seq_len)))
    df = predict_strategies(query, strategies)
    grids = [_to_grid(df[df["strategy"] == s.label], s) for s in strategies]
    fin = np.concatenate([np.where(g.fits, g.arrays["speedup"], np.nan).ravel() for g in grids])
    fin = fin[np.isfinite(fin)]
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.5, 2.0)
    zrange = (min(lo, 0.99), max(hi, 1.01))
    capacity = hw.mem_capacity
    figures: dict[str, go.Figure] = {}
    for g in grids:
        figures[f"speedup:{g.strategy.label}"] = speedup_figure(g, zrange, capacity)
    figures["regimes"] = regime_figure(grids)
    figures["kv_share"] = kv_share_figure(grids[0])
    figures["step_ratios"] = ratio_figure(grids)
    figures["throughput_latency"] = tradeoff_figure(grids)
    figures["speedup_interval"] = interval_figure(grids, str(df["engine"].iloc[0]))
    figures["strategy_map"] = strategy_map_figure(grids)
    tables = {"inputs": inputs_table(query, hw, strategies, df), "best": best_table(grids)}
    target = get_model(query.model)
    title = (f"SD design space: {target.name} on {query.gpus[0]} x {hw.name}, "
             f"batch {query.batch[0]}-{query.batch[-1]}, seq_len {query.seq_len[0]:,}-{query.seq_len[-1]:,}")
    return Report(figures, tables, title, df, time.perf_counter() - t0, dict(_CAPTIONS))


_CAPTIONS = {
    "speedup": "Speedup = T_target / (SD time per token). Blue: SD is faster; red: slower. Each cell "
               "shows the speculation length gamma that maximises speedup there.",
    "regimes": "A step is memory-bound where memory-bound kernels take at least half of its kernel "
               "time. Right of the black line, the target step reads more KV than weights.",
    "kv_share": "The part of the target step a sparse-KV draft avoids: the larger, the cheaper the "
                "draft relative to the target.",
    "step_ratios": "Eq. 1 of MagicDec: speedup = Omega / (gamma T_draft/T_target + T_verify/T_target).",
    "throughput_latency": "Each point is one batch size; up and to the left is better.",
    "strategy_map": "Over all draft strategies of the report, grouped by kind: the best kind per cell "
                    "(memory permitting), its speedup, and in the hover its margin over the best of "
                    "the other kinds. Acceptance of each kind as in the inputs table.",
    "speedup_interval": "Shaded: the central 80% interval of the speedup from the engine's "
                        "uncertainty (its calibration's covariance and residual spread, or its "
                        "declared standard errors); acceptance is taken as given.",
}


def _table_html(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(
            f"<td>{'' if pd.isna(v) else html.escape(str(v))}</td>" for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _slug(key: str) -> str:
    return "fig-" + "".join(ch if ch.isalnum() else "-" for ch in key).strip("-")


def _page(rep: Report) -> str:
    parts = []
    config = {"displaylogo": False, "responsive": True}
    for key, fig in rep.figures.items():
        cap = rep.captions.get(key.split(":")[0], "")
        div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=_slug(key),
                          config=config, validate=False)
        parts.append(f'<section class="figure" data-figure="{html.escape(key)}">{div}'
                     f'<p class="caption">{html.escape(cap)}</p></section>')
    tables = (
        "<h2>Best configuration per sequence length</h2>"
        "<p>Highest speedup over all draft strategies and batch sizes that fit in memory; "
        f"'use' says AR where even the best speedup is below {WORTH_IT}x.</p>"
        + _table_html(rep.tables["best"], "table-best")
        + "<h2>Inputs</h2>" + _table_html(rep.tables["inputs"], "table-inputs")
    )
    style = (
        "body{font-family:sans-serif;margin:16px 24px;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:24px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
        "th{background:#f0f0f0}.caption{color:#555;font-size:13px;margin:0 0 28px 0}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(rep.title)}</title><style>{style}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{html.escape(rep.title)}</h1>"
        "<p>Analytic roofline model of speculative decoding (magicdec-model). Hover over any point "
        "for all of its numbers; drag to zoom, double-click to reset.</p>"
        + "".join(parts) + tables + "</body></html>"
    )


def write_report(path: str | Path, report: Report) -> Path:
    """Write the report's HTML to ``path`` (UTF-8, atomically: a complete file or none) and return
    the path."""
    return atomic_write_text(path, report.to_html())
