"""The HTML page of a serving simulation (plotly, through :mod:`..report.page`): latency vs load
per policy, throughput vs latency, where SD pays off (each policy over ``off``), and the gamma
chosen against the batch."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..report.page import figure_section, html_page, table_html, write_page
from .metrics import COLUMNS


def _load(df: pd.DataFrame) -> tuple[str, str]:
    return ("concurrency", "concurrency (requests in flight)") if (df["concurrency"] > 0).any() \
        else ("qps", "load (requests/s)")


def build_page(df: pd.DataFrame, title: str, caption: str) -> str:
    """The page's HTML for the rows of ``simulate`` (one per policy x load point)."""
    x, xt = _load(df)
    figs = []
    lat = go.Figure()
    for pol, g in df.groupby("policy", sort=False):
        g = g.sort_values(x)
        lat.add_trace(go.Scatter(x=g[x], y=g["tpot_p50_s"] * 1e3, name=f"{pol} TPOT p50",
                                 mode="lines+markers"))
        lat.add_trace(go.Scatter(x=g[x], y=g["ttft_p99_s"] * 1e3, name=f"{pol} TTFT p99",
                                 mode="lines+markers", line={"dash": "dot"}))
    lat.update_layout(xaxis_title=xt, yaxis_title="ms", yaxis_type="log")
    figs.append(figure_section("latency", lat, "Latency against load for each policy: TPOT p50 (solid) "
                               "and TTFT p99 (dotted)."))
    tl = go.Figure()
    for pol, g in df.groupby("policy", sort=False):
        g = g.sort_values(x)
        tl.add_trace(go.Scatter(x=g["tpot_p50_s"] * 1e3, y=g["throughput_tok_s"], name=pol,
                                mode="lines+markers"))
    tl.update_layout(xaxis_title="TPOT p50 (ms)", yaxis_title="output tokens/s")
    figs.append(figure_section("tradeoff", tl, "Throughput against per-token latency: up and to the left "
                               "is better."))
    if "off" in set(df["policy"]):
        base = df[df["policy"] == "off"].set_index(x)
        pay = go.Figure()
        for pol, g in df[df["policy"] != "off"].groupby("policy", sort=False):
            g = g.sort_values(x)
            ref = base.reindex(g[x])
            pay.add_trace(go.Scatter(x=g[x], y=ref["tpot_p50_s"].to_numpy() / g["tpot_p50_s"].to_numpy(),
                                     name=pol, mode="lines+markers"))
        pay.add_hline(y=1.0, line_dash="dash")
        pay.update_layout(xaxis_title=xt, yaxis_title="TPOT p50 of off / of the policy")
        figs.append(figure_section("payoff", pay, "Where SD pays off: above 1 the policy's median "
                                   "per-token latency beats no speculation at that load."))
    gb = go.Figure()
    for pol, g in df.groupby("policy", sort=False):
        pts: dict[int, list[float]] = {}
        for counts in g["gamma_by_batch"]:
            for key, steps in counts.items():
                b, gam = (int(v) for v in key.split(":"))
                acc = pts.setdefault(b, [0.0, 0.0])
                acc[0] += gam * steps
                acc[1] += steps
        if pts:
            bs = sorted(pts)
            gb.add_trace(go.Scatter(x=bs, y=[pts[b][0] / pts[b][1] for b in bs], name=pol, mode="markers"))
    gb.update_layout(xaxis_title="decoding sequences in the step", yaxis_title="mean gamma chosen")
    figs.append(figure_section("gamma", gb, "Gamma chosen against the batch (steps with decoding "
                               "sequences), all loads together."))
    cols = [c for c in COLUMNS if c in df.columns]
    body = (f"<p class='caption'>{html.escape(caption)}</p>" + "".join(figs)
            + table_html(df[cols].round(6), "results"))
    return html_page(title, body)


def write_serving_page(path: str | Path, df: pd.DataFrame, title: str, caption: str) -> Path:
    """Write the page atomically to ``path``."""
    return write_page(path, build_page(df, title, caption))
