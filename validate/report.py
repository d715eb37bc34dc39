"""report.html: predicted vs measured per op and per step, residuals, the fitted roofline (plotly).

One self-contained page (plotly.js inlined once), viewable offline, written by perfmodel's shared
page module (:mod:`magicdec_model.perfmodel.report.page`).  plotly is imported when a report is
built, not with this module.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..perfmodel.hardware import OP_CLASSES, HardwareProfile
from ..perfmodel.roofline import attainable_flops


def _parity(fig, x, y, text, name, color=None):
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=name, text=text,
                             marker={"color": color} if color else None,
                             hovertemplate="%{text}<br>measured %{x:.3g}<br>predicted %{y:.3g}"))


def _diag(fig, values):
    import plotly.graph_objects as go

    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if v.size:
        lo, hi = v.min() / 1.5, v.max() * 1.5
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                                 line={"dash": "dot", "color": "grey"}))


def build_report(
    path: str | Path,
    micro: pd.DataFrame,
    comparison: pd.DataFrame,
    profile: HardwareProfile,
    title: str,
    summary_lines: list[str],
) -> None:
    """Write the HTML report.

    ``micro``: one row per fitted microbenchmark with ``op``, ``op_class``, ``label``, ``flops``,
    ``bytes``, ``measured``, ``predicted``.  ``comparison``: :func:`check.compare`'s table.
    """
    import plotly.graph_objects as go

    from ..perfmodel.report.page import figure_div, html_page, slug, table_html, write_page

    figs = []
    # 1. microbenchmarks: predicted vs measured per op
    f1 = go.Figure()
    for op, grp in micro.groupby("op"):
        _parity(f1, grp["measured"], grp["predicted"], grp["label"], op)
    _diag(f1, list(micro["measured"]) + list(micro["predicted"]))
    f1.update_layout(title="Microbenchmarks (fit data): predicted vs measured time per op [s]",
                     xaxis={"type": "log", "title": "measured [s]"},
                     yaxis={"type": "log", "title": "predicted (fitted profile) [s]"})
    figs.append(("microbenchmarks", f1))
    # 2. SD-loop steps: predicted vs measured (held out)
    steps = comparison[comparison["unit"] == "s"]
    f2 = go.Figure()
    for q, grp in steps.groupby("quantity"):
        text = [f"{q} B={b} S={s} K={k} gamma={g}" for b, s, k, g in
                zip(grp["batch"], grp["seq_len"], grp["kv_budget"], grp["gamma"], strict=True)]
        _parity(f2, grp["measured"], grp["predicted"], text, q)
    _diag(f2, list(steps["measured"]) + list(steps["predicted"]))
    f2.update_layout(title="SD loop (not seen by the fit): predicted vs measured step time [s]",
                     xaxis={"type": "log", "title": "measured [s]"},
                     yaxis={"type": "log", "title": "predicted [s]"})
    figs.append(("sd-loop", f2))
    # 3. speedup
    sp = comparison[comparison["quantity"] == "speedup"]
    if not sp.empty:
        f3 = go.Figure()
        text = [f"B={b} S={s} K={k} gamma={g}" for b, s, k, g in
                zip(sp["batch"], sp["seq_len"], sp["kv_budget"], sp["gamma"], strict=True)]
        _parity(f3, sp["measured"], sp["predicted"], text, "speedup")
        _diag(f3, list(sp["measured"]) + list(sp["predicted"]))
        f3.update_layout(title="SD speedup over AR: predicted vs measured",
                         xaxis={"title": "measured speedup"}, yaxis={"title": "predicted speedup"})
        figs.append(("speedup", f3))
    # 4. residuals
    f4 = go.Figure()
    f4.add_trace(go.Box(x=micro["op"], y=(micro["predicted"] / micro["measured"] - 1) * 100,
                        name="microbenchmarks (fit)", boxpoints="all"))
    if not comparison.empty:
        f4.add_trace(go.Box(x=comparison["quantity"], y=comparison["error_percent"],
                            name="SD loop (held out)", boxpoints="all"))
    f4.update_layout(title="Residuals: predicted / measured - 1 [%]", boxmode="group",
                     yaxis={"title": "error [%]"})
    figs.append(("residuals", f4))
    # 5. fitted roofline with the measured points
    f5 = go.Figure()
    kern = micro[micro["op_class"].isin(OP_CLASSES)]
    if not kern.empty:
        intensity = kern["flops"] / kern["bytes"].where(kern["bytes"] > 0)
        xs = np.logspace(np.log10(max(intensity.min(), 1e-3) / 2), np.log10(intensity.max() * 2 + 1e-3), 100)
        for cls in OP_CLASSES:
            grp = kern[kern["op_class"] == cls]
            if grp.empty:
                continue
            roof = attainable_flops(profile, cls, xs, int(grp["dtype_bytes"].iloc[0]))
            f5.add_trace(go.Scatter(x=xs, y=roof, mode="lines", name=f"{cls} fitted roof"))
            f5.add_trace(go.Scatter(x=grp["flops"] / grp["bytes"], y=grp["flops"] / grp["measured"],
                                    mode="markers", name=f"{cls} measured", text=grp["label"]))
    f5.update_layout(title="Fitted roofline: achieved FLOP/s vs arithmetic intensity "
                           "(kernel fixed cost not drawn)",
                     xaxis={"type": "log", "title": "FLOP per byte"},
                     yaxis={"type": "log", "title": "FLOP/s"})
    figs.append(("roofline", f5))

    parts = []
    for key, fig in figs:
        fig.update_layout(height=520)
        parts.append(figure_div(fig, slug(key)))
    efficiency = pd.DataFrame(
        [(k, f"{v:.4g}", profile.sources.get(k, "")) for k, v in profile.efficiency.items()],
        columns=["parameter", "value", "source"],
    )
    body = (
        "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines)
        + "<h2>Fitted efficiency parameters</h2>" + table_html(efficiency, "table-efficiency")
        + "".join(parts)
    )
    write_page(path, html_page(title, body))
