"""The design-space report assembled: predict every strategy, draw the figures, fill the tables and
lay them out on one page (:class:`Report`, :func:`build_report`, :func:`write_report`).

The predictions come from :func:`~magicdec_model.perfmodel.strategy.predict_strategies` (one
vectorised ``predict`` call per draft); :mod:`.grid` reshapes them, :mod:`.figures` draws them and
:mod:`.page` writes the HTML.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..advise import WORTH_IT
from ..architecture import get_model
from ..engine import resolve_engine
from ..errors import InputError
from ..feasibility import Infeasible
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
from .grid import (
    acceptance_curves,
    acceptance_kinds,
    best_budgets,
    best_table,
    inputs_table,
    speedup_range,
    summary,
    to_grid,
    tokens_label,
)
from .page import figure_section, html_page, table_html, write_page

#: Caption under each figure, by the figure key's part before ``:``.
CAPTIONS = {
    "speedup": "Speedup = T_target / (SD time per token), the number in each cell, at the speculation "
               "length gamma that maximises it there (gamma in the hover). Blue: SD is faster; red: "
               "slower; white: no change; grey: does not fit in GPU memory. Black line: speedup = 1.",
    "regimes": "Yellow: memory-bound, purple: compute-bound (a step is memory-bound where memory-bound "
               "kernels take at least half of its kernel time). Right of the black line, the target step "
               "reads more KV than weights.",
    "kv_share": "The part of the target step a sparse-KV draft avoids: the larger, the cheaper the "
                "draft relative to the target.",
    "step_ratios": "Eq. 1 of MagicDec: speedup = Omega / (gamma T_draft/T_target + T_verify/T_target).",
    "throughput_latency": "Each point is one batch size; up and to the left is better.",
    "strategy_map": "Over all draft strategies of the report, grouped by kind: the best kind per cell "
                    "(memory permitting), its speedup, and in the hover its margin over the best of "
                    "the other kinds. White: no kind reaches the threshold, decode autoregressively; "
                    "grey: nothing fits in memory. Acceptance of each kind as in the inputs table.",
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
    summary: list[str] = field(default_factory=list)
    #: what the tables leave out: points that cannot run, strategies the engine cannot run
    notes: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        """One self-contained HTML page: plotly.js embedded once, every figure, every table."""
        sections = "".join(figure_section(key, fig, self.captions.get(key.split(":")[0], ""))
                           for key, fig in self.figures.items())
        tables = (
            "<h2>Best configuration per sequence length</h2>"
            "<p>Highest speedup over all draft strategies the engine runs and batch sizes that fit "
            "in memory and the model's context; "
            f"'use' says AR where even the best speedup is below {WORTH_IT}x.</p>"
            + "".join(f'<p class="note">{html.escape(n)}</p>' for n in self.notes)
            + table_html(self.tables["best"], "table-best")
            + "<h2>Inputs</h2>" + table_html(self.tables["inputs"], "table-inputs")
        )
        points = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary)
        intro = (f'<h2>Summary</h2><ul id="summary">{points}</ul>'
                 "<p>Analytic roofline model of speculative decoding (magicdec-model). Hover over any "
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
    engine = resolve_engine(query.engine, query.ideal)
    cannot = {s.label: engine.cannot_run(s.draft, s.kv_method) for s in strategies}
    cannot = {k: v for k, v in cannot.items() if v}
    tables = {"inputs": inputs_table(query, hw, strategies, df, cannot),
              "best": best_table(grids, frozenset(cannot))}
    notes = [Infeasible.of(df).describe("points (strategies x batches x sequence lengths)")]
    notes += [f"{label}: {why}; left out of the best configurations" for label, why in cannot.items()]
    if cannot:
        notes.append(f"engine {engine.name} runs: {engine.supports_source}")
    target = get_model(query.model)
    title = (f"SD design space: {target.name} on {query.gpus[0]} x {hw.name}, engine {df['engine'].iloc[0]}, "
             f"acceptance: {acceptance_kinds(df)}; batch {query.batch[0]}-{query.batch[-1]}, seq_len "
             f"{tokens_label(query.seq_len[0])}-{tokens_label(query.seq_len[-1])}")
    return Report(figures, tables, title, df, time.perf_counter() - t0, dict(CAPTIONS), summary(grids),
                  [n for n in notes if n])


def write_report(path: str | Path, report: Report) -> Path:
    """Write the report's HTML to ``path`` (UTF-8, atomically: a complete file or none) and return
    the path."""
    return write_page(path, report.to_html())
