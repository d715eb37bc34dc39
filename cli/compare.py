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
    from .output import Column, console, legend, say, show
    con = console()
    say(f"MagicDec 8xA100 end-to-end speedups vs magicdec-model on 8 x {a.hardware} "
        f"(gamma: {'model best' if a.gamma_mode == 'auto' else 'paper'})", con)
    cols = [Column("target", left=True), Column("draft", left=True), Column("S", "seq_len"),
            Column("B", "batch"), Column("γ pap", "paper gamma"), Column("paper", "paper speedup"),
            Column(f"{a.engine} (γ)", f"{a.engine} speedup (gamma)"), Column("err %", f"{a.engine} error %")]
    if b is not None:
        cols += [Column(f"{b.engine} (γ)", f"{b.engine} speedup (gamma)"),
                 Column("80% range", f"{b.engine} 80% interval"), Column("err %", f"{b.engine} error %")]
    cols += [Column("acc", "acceptance")]
    rows = []
    for i, r in a.rows.iterrows():
        cells = [str(r["target"]), str(r["draft"]), f"{r['prefill'] // 1000}K", str(r["batch"]),
                 str(r["gamma_paper"]), f"{r['speedup_paper']:.2f}",
                 f"{r['speedup_model']:.2f} ({r['gamma_model']})", f"{r['error_pct']:+.1f}"]
        if b is not None:
            rb = b.rows.iloc[i]
            cells += [f"{rb['speedup_model']:.2f} ({rb['gamma_model']})",
                      f"{rb['speedup_model_lo']:.2f}-{rb['speedup_model_hi']:.2f}", f"{rb['error_pct']:+.1f}"]
        cells.append(f"{r['acceptance']:.2f}")
        rows.append(cells)
    show(cols, rows, con)
    line = f"MAPE {a.engine} {a.mape_pct:.1f} %"
    if b is not None:
        line += f", {b.engine} {b.mape_pct:.1f} %"
    legend([f"{line} over {len(a.rows)} rows", "error = (model - paper) / paper"], con, "bold")
    if b is not None:
        say(f"{b.engine} is calibrated on the paper engine's measured autoregressive steps only; the SD "
            "speedups above are not fitted.", con, "dim")
    for src in dict.fromkeys(a.rows["acceptance_source"]):
        say(f"acceptance: {src}", con, "dim")
    for note in a.notes:
        say(f"note: {note}", con, "dim")


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
