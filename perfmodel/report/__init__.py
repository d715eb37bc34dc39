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
  EAGLE head, MTP module, n-gram, or none: autoregressive) wins, and by how much;
* ``acceptance`` - acceptance of the target's self-drafts against budget and context: the
  acceptance model's lines and the measured points (where a self-draft is among the strategies
  and no --acceptance is given).

The speedup heatmaps of a draft and KV method with several budgets star the cells where that
budget is the best of them.

Modules: ``grid`` (predictions to batch x seq_len grids, the inputs and best-configuration
tables; numpy and pandas only), ``figures`` (every plotly figure), ``page`` (the HTML page
skeleton with plotly.js inlined once, tables as HTML, atomic writing; validate's report uses it
too), ``build`` (:class:`Report`, :func:`build_report`, :func:`write_report`).  plotly is imported
in ``figures``, ``page`` and ``build`` and nowhere else in perfmodel.

The names below load their module on first access, so that importing ``report.grid`` (or this
package) does not import plotly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import module_getattr

_EXPORTS = {
    "Grid": "grid",
    "to_grid": "grid",
    "speedup_range": "grid",
    "inputs_table": "grid",
    "best_table": "grid",
    "best_budgets": "grid",
    "acceptance_curves": "grid",
    "acceptance_figure": "figures",
    "MAX_LINES": "figures",
    "MAX_TRADEOFF_LINES": "figures",
    "LOG_SPAN": "figures",
    "MAP_KINDS": "figures",
    "_HOVER": "figures",
    "draft_kind": "figures",
    "speedup_figure": "figures",
    "regime_figure": "figures",
    "kv_share_figure": "figures",
    "ratio_figure": "figures",
    "tradeoff_figure": "figures",
    "interval_figure": "figures",
    "strategy_map_figure": "figures",
    "CAPTIONS": "build",
    "Report": "build",
    "build_report": "build",
    "write_report": "build",
}

__all__ = [
    "CAPTIONS",
    "LOG_SPAN",
    "MAP_KINDS",
    "MAX_LINES",
    "MAX_TRADEOFF_LINES",
    "Grid",
    "Report",
    "acceptance_curves",
    "acceptance_figure",
    "best_budgets",
    "best_table",
    "build_report",
    "draft_kind",
    "inputs_table",
    "interval_figure",
    "kv_share_figure",
    "ratio_figure",
    "regime_figure",
    "speedup_figure",
    "speedup_range",
    "strategy_map_figure",
    "to_grid",
    "tradeoff_figure",
    "write_report",
]

if TYPE_CHECKING:
    from .build import CAPTIONS, Report, build_report, write_report
    from .figures import (
        LOG_SPAN,
        MAP_KINDS,
        MAX_LINES,
        MAX_TRADEOFF_LINES,
        acceptance_figure,
        draft_kind,
        interval_figure,
        kv_share_figure,
        ratio_figure,
        regime_figure,
        speedup_figure,
        strategy_map_figure,
        tradeoff_figure,
    )
    from .grid import (
        Grid,
        acceptance_curves,
        best_budgets,
        best_table,
        inputs_table,
        speedup_range,
        to_grid,
    )


__getattr__ = module_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
