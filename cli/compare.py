"""`compare-paper`: model predictions next to MagicDec's published 8xA100 speedups."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from magicdec_model.perfmodel.errors import InputError

from .options import Acceptance, AcceptanceTable, EngineOpt, Hardware, Ideal, acceptance_value, guard

if TYPE_CHECKING:  # pragma: no cover
    from magicdec_model.perfmodel.paper import Comparison


#: paper.PAPER_HARDWARE, written out so that --help imports no model code (tests check they agree)
PAPER_HARDWARE_DEFAULT = "a100-80gb-sxm"


def _print(a: Comparison, b: Comparison | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=min(Console().width, 110), highlight=False)
    console.print(f"MagicDec 8xA100 end-to-end speedups vs magicdec-model on 8 x {a.hardware} "
                  f"(gamma: {'model best' if a.gamma_mode == 'auto' else 'paper'})", markup=False)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    heads = ["target", "draft", "S", "B", "γ pap", "paper", f"{a.engine} (γ)", "err %"]
    if b is not None:
        heads += [f"{b.engine} (γ)", "80% range", "err %"]
    heads += ["acc"]
    for h in heads:
        table.add_column(h, justify="left" if h in ("target", "draft") else "right")
    for i, r in a.rows.iterrows():
        cells = [r["target"], r["draft"], f"{r['prefill'] // 1000}K", str(r["batch"]),
                 str(r["gamma_paper"]), f"{r['speedup_paper']:.2f}",
                 f"{r['speedup_model']:.2f} ({r['gamma_model']})", f"{r['error_pct']:+.1f}"]
        if b is not None:
            rb = b.rows.iloc[i]
            cells += [f"{rb['speedup_model']:.2f} ({rb['gamma_model']})",
                      f"{rb['speedup_model_lo']:.2f}-{rb['speedup_model_hi']:.2f}", f"{rb['error_pct']:+.1f}"]
        cells.append(f"{r['acceptance']:.2f}")
        table.add_row(*cells)
    console.print(table)
    line = f"MAPE {a.engine} {a.mape_pct:.1f} %"
    if b is not None:
        line += f", {b.engine} {b.mape_pct:.1f} %"
    console.print(f"{line} over {len(a.rows)} rows (error = (model - paper) / paper)", style="bold",
                  markup=False)
    if b is not None:
        console.print(f"{b.engine} is calibrated on the paper engine's measured autoregressive steps "
                      "only; the SD speedups above are not fitted.", style="dim", markup=False)
    for src in dict.fromkeys(a.rows["acceptance_source"]):
        console.print(f"acceptance: {src}", style="dim", markup=False)
    for note in a.notes:
        console.print(f"note: {note}", style="dim", markup=False)


@guard
def compare_cmd(
    hardware: Hardware = PAPER_HARDWARE_DEFAULT,
    gamma: Annotated[
        str, typer.Option("--gamma", help="'auto' (model's best gamma) or 'paper' (the published gamma).")
    ] = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    engine: EngineOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Predict each row of the published 8xA100 table with --engine (default: generic) and with the
    paper's calibrated engine, side by side; per-row error and MAPE (reports, does not fit)."""
    from magicdec_model.perfmodel.paper import PAPER_ENGINE, compare_paper
    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r} is not one of: table, json")
    kw = {"hardware": hardware, "gamma": gamma, "acceptance": acceptance_value(acceptance),
          "acceptance_table": acceptance_table}
    a = compare_paper(ideal=ideal, engine=engine, **kw)
    b = None if ideal or a.engine == PAPER_ENGINE else compare_paper(engine=PAPER_ENGINE, **kw)
    if fmt == "json":
        doc = {
            "hardware": a.hardware,
            "gpus": 8,
            "gamma_mode": a.gamma_mode,
            "engines": {c.engine: {"mape_pct": c.mape_pct,
                                   "rows": json.loads(c.rows.to_json(orient="records"))}
                        for c in (a, b) if c is not None},
            "mape_pct": a.mape_pct,
            "notes": a.notes,
            "rows": json.loads(a.rows.to_json(orient="records")),
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print(a, b)
