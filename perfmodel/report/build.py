"""The design-space report assembled: predict every strategy, draw the figures, fill the tables and
lay them out on one page (:class:`Report`, :func:`build_report`, :func:`write_report`).

The predictions come from :func:`~magicdec_model.perfmodel.strategy.predict_strategies` (one
vectorised ``predict`` call per draft); :mod:`.grid` reshapes them, :mod:`.figures` draws them and
:mod:`.page` writes the HTML.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..advise import WORTH_IT
from ..architecture import get_model
from ..errors import InputError
from ..hardware import HardwareProfile, load_profile
from ..strategy import Strategy, predict_strategies
from ..sweep import Query
from .figures import (
    acceptance_figure,
    interval_figure,
    kv_share_figure,
    ratio_figure,
    regime_figure,
    speedup_figure,
    strategy_map_figure,
    tradeoff_figure,
)
from .grid import acceptance_curves, best_budgets, best_table, inputs_table, speedup_range, to_grid
from .page import figure_section, html_page, table_html, write_page

#: Caption under each figure, by the figure key's part before ``:``.
CAPTIONS = {
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
                        "declared standard errors) and the acceptance's (a measurement's standard "
                        "error, or the acceptance model's); an acceptance given by flag is exact.",
    "acceptance": "Where no measurement exists at a budget and context, acceptance comes from the "
                  "acceptance model fitted to the published and measured tables (docs/acceptance.md); "
                  "hover for the value, its standard error and source. The budget axis of the speedup "
                  "heatmaps trades this acceptance against the draft's cost.",
}


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
        sections = "".join(figure_section(key, fig, self.captions.get(key.split(":")[0], ""))
                           for key, fig in self.figures.items())
        tables = (
            "<h2>Best configuration per sequence length</h2>"
            "<p>Highest speedup over all draft strategies and batch sizes that fit in memory; "
            f"'use' says AR where even the best speedup is below {WORTH_IT}x.</p>"
            + table_html(self.tables["best"], "table-best")
            + "<h2>Inputs</h2>" + table_html(self.tables["inputs"], "table-inputs")
        )
        intro = ("<p>Analytic roofline model of speculative decoding (magicdec-model). Hover over any "
                 "point for all of its numbers; drag to zoom, double-click to reset.</p>")
        return html_page(self.title, intro + sections + tables)


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
    grids = [to_grid(df[df["strategy"] == s.label], s) for s in strategies]
    zrange = speedup_range(grids)
    capacity = hw.mem_capacity
    figures: dict[str, go.Figure] = {}
    best = best_budgets(grids)
    for g in grids:
        figures[f"speedup:{g.strategy.label}"] = speedup_figure(g, zrange, capacity,
                                                               best.get(g.strategy.label))
    figures["regimes"] = regime_figure(grids)
    figures["kv_share"] = kv_share_figure(grids[0])
    figures["step_ratios"] = ratio_figure(grids)
    figures["throughput_latency"] = tradeoff_figure(grids)
    figures["speedup_interval"] = interval_figure(grids, str(df["engine"].iloc[0]))
    figures["strategy_map"] = strategy_map_figure(grids)
    methods = list(dict.fromkeys(s.kv_method for s in strategies
                                 if s.draft == "self" and s.kv_method != "full"))
    if methods and query.acceptance is None:
        target_name = get_model(query.model).name
        budgets = sorted({s.kv_budget for s in strategies if s.draft == "self" and s.kv_method != "full"})
        curves, points = acceptance_curves(target_name, methods, query.seq_len, budgets,
                                           query.acceptance_table)
        figures["acceptance"] = acceptance_figure(curves, points, target_name)
    tables = {"inputs": inputs_table(query, hw, strategies, df), "best": best_table(grids)}
    target = get_model(query.model)
    title = (f"SD design space: {target.name} on {query.gpus[0]} x {hw.name}, "
             f"batch {query.batch[0]}-{query.batch[-1]}, seq_len {query.seq_len[0]:,}-{query.seq_len[-1]:,}")
    return Report(figures, tables, title, df, time.perf_counter() - t0, dict(CAPTIONS))


def write_report(path: str | Path, report: Report) -> Path:
    """Write the report's HTML to ``path`` (UTF-8, atomically: a complete file or none) and return
    the path."""
    return write_page(path, report.to_html())
