"""Every plotly figure of the design-space report, with their palettes, axes and hover templates.

Each function takes :class:`~.grid.Grid` objects (one per draft strategy) and returns one
``plotly.graph_objects.Figure``:

* :func:`speedup_figure` - speedup heatmap of one strategy, best gamma in each cell, the
  speedup = 1 contour, cells that do not fit in GPU memory masked in grey;
* :func:`regime_figure` - memory- or compute-bound target, verify and draft steps, with the
  critical sequence length curve;
* :func:`kv_share_figure` - share of the target step spent reading the KV cache vs seq_len, per batch;
* :func:`ratio_figure` - T_verify/T_target and T_draft/T_target vs batch, per seq_len;
* :func:`tradeoff_figure` - throughput vs per-token latency, AR and SD, along batch;
* :func:`interval_figure` - speedup vs seq_len for a few batch sizes, the engine's 80 % prediction
  interval shaded around each line;
* :func:`strategy_map_figure` - over batch x seq_len, which kind of draft (:data:`MAP_KINDS`) wins,
  and by how much.

Units: the grids' ms / GB / tok/s / %, as drawn.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..advise import WORTH_IT
from ..strategy import Strategy
from ..sweep import MEMORY_UTILIZATION
from .grid import Grid, tokens_label

#: Most lines drawn in one line plot (batches or sequence lengths are sub-sampled evenly beyond).
MAX_LINES = 8
#: Sequence lengths drawn in the throughput-latency figure.
MAX_TRADEOFF_LINES = 4
#: An axis is logarithmic when its values span at least this ratio.
LOG_SPAN = 10.0

# One meaning per colour across the report: red/white/blue only for speedup (slower / no change /
# faster), grey only for points that do not fit in memory, yellow/purple only for memory-/compute-bound
# regimes, the kind colours only for draft kinds; lines take sequential palettes, viridis for
# sequence lengths and oranges for batch sizes (light = small, dark = large).
_MEM_COLOR = "#fee391"
_COMP_COLOR = "#8c6bb1"
_OOM_COLOR = "#b0b0b0"
_NO_GAIN_COLOR = "#f7f7f7"
_SEQ_SCALE = "Viridis"
_BATCH_SCALE = "YlOrBr"
#: draft KV budgets (the acceptance figure's lines against sequence length)
_BUDGET_SCALE = "Greens"
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


#: Most tick labels on a grid axis.
MAX_TICKS = 10


def _axis(title: str, values: np.ndarray, edges: np.ndarray | None = None, grid: bool = True) -> dict:
    """An axis over ``values``; a ``grid`` axis (batch sizes, sequence lengths) is labelled at its own
    values, as people write them (1k, 2k, ... 128k), at most :data:`MAX_TICKS` of them."""
    log = _is_log(values)
    ax: dict = {"title": {"text": title}, "type": "log" if log else "linear"}
    if edges is not None:
        ax["range"] = [np.log10(edges[0]), np.log10(edges[-1])] if log else [edges[0], edges[-1]]
    if log and not grid:
        ax.update(dtick="D2", tickformat="~s")  # 200, 500, 1k, 2k, ...: no crowded minor digits
    if grid:
        v = np.unique(np.asarray(values))
        ticks = v[_pick(len(v), MAX_TICKS)]
        ax["tickvals"] = [float(t) for t in ticks]
        ax["ticktext"] = [tokens_label(t) for t in ticks]
    return ax


def _colors(scale: str, k: int) -> list[str]:
    """``k`` colours spread over a sequential plotly scale (the lightest end left out)."""
    lo, hi = (0.0, 0.85) if scale == _SEQ_SCALE else (0.35, 1.0)
    return sample_colorscale(scale, list(np.linspace(lo, hi, k)) if k > 1 else [hi])


#: A horizontal legend under the plot, wrapping to the figure's width (it never covers the plot).
_BELOW = {"orientation": "h", "x": 0.0, "xanchor": "left", "y": -0.18, "yanchor": "top",
          "groupclick": "toggleitem"}


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
    return [[0.0, "#b2182b"], [p * 0.5, "#ef8a62"], [p, _NO_GAIN_COLOR], [p + (1 - p) * 0.4, "#67a9cf"],
            [1.0, "#053061"]]


def speedup_figure(g: Grid, zrange: tuple[float, float], mem_capacity: float,
                   best: np.ndarray | None = None) -> go.Figure:
    """Heatmap of SD speedup over batch x seq_len with best gamma per cell, speedup=1 contour, OOM mask;
    ``best`` (batch x seq_len, bool) marks the cells where this budget is the best of its draft
    and KV method's budgets (:func:`.grid.best_budgets`)."""
    logx, logy = _is_log(g.seq_len), _is_log(g.batch)
    xe, ye = _edges(g.seq_len, logx), _edges(g.batch, logy)
    z = np.where(g.fits, g.arrays["speedup"], np.nan)
    speed_txt = np.where(g.fits, np.char.mod("%.2f", np.nan_to_num(g.arrays["speedup"])), "")
    if best is not None:
        speed_txt = np.where(best & g.fits, np.char.add(speed_txt.astype(str), " ★"), speed_txt)
    cells = max(len(g.batch), len(g.seq_len))
    font = int(np.clip(360 / cells, 5, 12))
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=xe, y=ye, z=z, text=speed_txt, texttemplate="%{text}" if cells <= 24 else "",
            textfont={"size": font},
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
                    "batch %{customdata[0]}, seq_len %{customdata[1]} tokens<br>cannot run: "
                    f"%{{customdata[2]:.1f}} GB per GPU (usable: {MEMORY_UTILIZATION:.0%} of "
                    f"{mem_capacity / 1e9:.1f} GB), or past the model's maximum context<extra></extra>"
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
    star = ""
    if best is not None and best.any():
        star = f"; ★: the best {g.strategy.kv_method} budget there"
    fig.update_layout(
        title={"text": f"Speedup of SD over AR: {g.strategy.label}{star}"},
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
        titles += [f"{lab}<br>target decode step", f"{lab}<br>verify step, best gamma",
                   f"{lab}<br>draft step"]
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
        title={"text": "Regime: yellow = memory-bound, purple = compute-bound"},
        height=330 * n + 80, legend={"orientation": "h", "x": 0.0, "y": -75.0 / (330 * n + 80)},
    )
    return fig


def kv_share_figure(g: Grid) -> go.Figure:
    """Share of the target decode step spent reading KV, vs seq_len, one line per batch."""
    fig = go.Figure()
    rows = _pick(len(g.batch), MAX_LINES)
    colors = _colors(_BATCH_SCALE, len(rows))
    for n, i in enumerate(rows):
        kv = g.arrays["kv_pct"][i]
        fig.add_trace(
            go.Scatter(
                x=g.seq_len, y=kv, mode="lines+markers", marker={"size": 4},
                line={"color": colors[n]}, name=f"batch {g.batch[i]}",
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
        height=460, legend={"title": {"text": "colour: batch"}},
    )
    return fig


def ratio_figure(grids: list[Grid]) -> go.Figure:
    """T_verify/T_target and T_draft/T_target vs batch, one line per seq_len (dash per strategy)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        "T_verify(gamma) / T_target (best gamma)", "T_draft / T_target (one draft step)"])
    for si, g in enumerate(grids):
        dash = _DASHES[si % len(_DASHES)]
        cols = _pick(len(g.seq_len), MAX_LINES // 2 + 2)
        colors = _colors(_SEQ_SCALE, len(cols))
        for n, j in enumerate(cols):
            color = colors[n]
            tt = g.arrays["t_target_ms"][:, j]
            for c, key in enumerate(("t_verify_ms", "t_draft_ms"), start=1):
                ratio = g.arrays[key][:, j] / tt
                fig.add_trace(
                    go.Scatter(
                        x=g.batch, y=ratio, mode="lines+markers", marker={"size": 4},
                        line={"color": color, "dash": dash},
                        name=f"S={tokens_label(g.seq_len[j])}", legendgroup=g.strategy.label,
                        legendgrouptitle={"text": g.strategy.label}, showlegend=(c == 1),
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
        title={"text": "Verify and draft cost relative to a target decode step"},
        height=560, legend=_BELOW,
    )
    return fig


def tradeoff_figure(grids: list[Grid]) -> go.Figure:
    """Throughput vs per-token latency along batch, AR and SD, for a few sequence lengths (Fig. 1 view)."""
    fig = go.Figure()
    g0 = grids[0]
    xs, ys = [], []
    cols = _pick(len(g0.seq_len), MAX_TRADEOFF_LINES)
    colors = _colors(_SEQ_SCALE, len(cols))
    for n, j in enumerate(cols):
        color = colors[n]
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
                    line={"color": color, "dash": dash}, name=f"S={tokens_label(g.seq_len[j])}",
                    legendgroup=name, legendgrouptitle={"text": name},
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
        title={"text": "Throughput vs per-token latency along batch size (solid: AR; dashed: SD)"},
        xaxis=_axis("per-token latency (ms/token, per sequence)", lat_all, grid=False),
        yaxis=_axis("throughput (tokens/s, all sequences)", thr_all, grid=False),
        height=600, legend=_BELOW,
    )
    return fig


def interval_figure(grids: list[Grid], engine: str) -> go.Figure:
    """Speedup vs seq_len for a few batch sizes with the 80 % prediction interval shaded."""
    fig = go.Figure()
    for si, g in enumerate(grids):
        dash = _DASHES[si % len(_DASHES)]
        rows = _pick(len(g.batch), MAX_LINES // 2)
        colors = _colors(_BATCH_SCALE, len(rows))
        for n, i in enumerate(rows):
            ok = g.fits[i]
            if not ok.any():
                continue
            color = colors[n]
            x = g.seq_len[ok]
            a = g.arrays
            lo, mid, hi = a["speedup_lo"][i, ok], a["speedup"][i, ok], a["speedup_hi"][i, ok]
            group = g.strategy.label
            fig.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                fillcolor=color, opacity=0.18, line={"width": 0}, hoverinfo="skip",
                legendgroup=group, showlegend=False, name=f"80% interval, batch {g.batch[i]}",
            ))
            fig.add_trace(go.Scatter(
                x=x, y=mid, mode="lines+markers", marker={"size": 4}, line={"color": color, "dash": dash},
                legendgroup=group, name=f"batch {g.batch[i]}", legendgrouptitle={"text": group},
                customdata=np.stack([np.full(x.shape, g.batch[i]), x, mid.round(4), lo.round(4),
                                     hi.round(4), a["gamma"][i, ok]], axis=-1).astype(float),
                hovertemplate=(f"{g.strategy.label}<br>batch %{{customdata[0]}}, seq_len "
                               "%{customdata[1]:,} tokens<br>speedup %{customdata[2]:.3f} "
                               "(80% interval %{customdata[3]:.3f}-%{customdata[4]:.3f})<br>"
                               "best gamma: %{customdata[5]}<extra></extra>"),
            ))
    fig.add_hline(y=1.0, line={"color": "black", "width": 1, "dash": "dot"})
    fig.update_layout(
        title={"text": f"Speedup with its 80% prediction interval (shaded), engine {engine}"},
        xaxis=_axis("sequence length (tokens)", grids[0].seq_len),
        yaxis={"title": {"text": "speedup (x)"}}, height=540, legend={**_BELOW, "groupclick": "togglegroup"},
    )
    return fig


#: Draft kinds of the strategy map, in legend order, with their colours.
MAP_KINDS = ("none (AR)", "self sparse-KV", "small model", "eagle", "mtp", "ngram")
_MAP_COLORS = (_NO_GAIN_COLOR, "#1b9e77", "#d95f02", "#e7298a", "#66a61e", "#a6761d")


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
    code[~np.isfinite(top)] = np.nan  # nothing can run (memory, context): no cell
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
    if not np.isfinite(top).all():
        fig.add_trace(go.Heatmap(
            x=xe, y=ye, z=np.where(np.isfinite(top), np.nan, 1.0),
            colorscale=[[0, _OOM_COLOR], [1, _OOM_COLOR]],
            showscale=False, hoverinfo="skip", name="out of memory",
        ))
    fig.update_layout(
        title={"text": f"Which draft wins: colour = kind of the best strategy (white: none reaches "
                       f"{WORTH_IT}x; grey: nothing can run: memory, context); number = its speedup"},
        xaxis=_axis("sequence length (tokens)", g0.seq_len, xe),
        yaxis=_axis("batch size (sequences)", g0.batch, ye), height=520,
    )
    return fig


def acceptance_figure(curves, points, model: str) -> go.Figure:
    """Acceptance of ``model``'s self-drafts against draft KV budget (left, one line per seq_len)
    and against seq_len (right, one line per budget): the acceptance model's lines (dashed where a
    measurement is used instead) and the measured points as markers."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("against draft KV budget", "against sequence length"))
    methods = list(dict.fromkeys(curves["method"]))
    for mi, method in enumerate(methods):
        dash = _DASHES[mi % len(_DASHES)]
        for col, axis, key, other in ((1, "budget", "seq_len", "budget"),
                                      (2, "seq_len", "budget", "seq_len")):
            part = curves[(curves["method"] == method) & (curves["axis"] == axis)]
            keys = list(dict.fromkeys(part[key]))
            picked = _pick(len(keys), MAX_LINES)
            colors = _colors(_SEQ_SCALE if key == "seq_len" else _BUDGET_SCALE, len(picked))
            for n, i in enumerate(picked):
                line = part[part[key] == keys[i]].sort_values(other)
                color = colors[n]
                x = line[other].to_numpy(float)
                fig.add_trace(go.Scatter(
                    x=x, y=line["acceptance"], mode="lines", line={"color": color, "dash": dash},
                    name=f"{method}, {key} {keys[i]:,}", legendgroup=f"{method}-{axis}",
                    customdata=np.stack([x, line["acceptance"].round(4), line["sd"].round(4)], axis=-1),
                    hovertext=line["source"], hovertemplate=(
                        f"{method}, {key} {keys[i]:,}<br>{other} %{{customdata[0]:,}}<br>acceptance "
                        "%{customdata[1]:.3f} ± %{customdata[2]:.3f}<br>%{hovertext}<extra></extra>"),
                ), row=1, col=col)
            pts = points[points["method"] == method]
            if not pts.empty:
                fig.add_trace(go.Scatter(
                    x=pts[other], y=pts["acceptance"], mode="markers",
                    marker={"symbol": "circle-open" if mi else "circle", "size": 8, "color": "black"},
                    name=f"measured, {method}", legendgroup=f"measured-{method}", showlegend=col == 1,
                    hovertext=[f"{method}, budget {b:,}, seq_len {s:,}: {a:.3f}<br>{src}" for b, s, a, src
                               in zip(pts["budget"], pts["seq_len"], pts["acceptance"], pts["source"],
                                      strict=True)],
                    hoverinfo="text",
                ), row=1, col=col)
    fig.update_xaxes(type="log", title_text="draft KV budget (tokens)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="sequence length (tokens)", row=1, col=2)
    fig.update_yaxes(title_text="acceptance alpha (per token, Eq. 1)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        title={"text": f"Acceptance of {model}'s self-drafts: model (lines) and measurements (markers)"},
        height=520,
    )
    return fig
