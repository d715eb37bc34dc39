"""`compare-paper`: model predictions next to MagicDec's published 8xA100 speedups."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.paper import PAPER_HARDWARE, Comparison, compare_paper

from .options import Acceptance, AcceptanceTable, Hardware, Ideal, acceptance_value, guard


def _print(c: Comparison) -> None:
    console = Console(width=min(Console().width, 110), highlight=False)
    console.print(f"MagicDec 8xA100 end-to-end speedups vs magicdec-model on 8 x {c.hardware} "
                  f"(gamma: {'model best' if c.gamma_mode == 'auto' else 'paper'})")
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for h in ("target", "draft", "S", "B", "γ pap", "γ mod", "paper", "model", "err %", "acc"):
        table.add_column(h, justify="left" if h in ("target", "draft") else "right")
    for _, r in c.rows.iterrows():
        table.add_row(
            r["target"], r["draft"], f"{r['prefill'] // 1000}K", str(r["batch"]), str(r["gamma_paper"]),
            str(r["gamma_model"]), f"{r['speedup_paper']:.2f}", f"{r['speedup_model']:.2f}",
            f"{r['error_pct']:+.1f}", f"{r['acceptance']:.2f}",
        )
    console.print(table)
    console.print(f"[bold]MAPE {c.mape_pct:.1f} %[/] over {len(c.rows)} rows "
                  "(error = (model - paper) / paper)")
    for src in dict.fromkeys(c.rows["acceptance_source"]):
        console.print(f"acceptance: {src}", style="dim")
    for note in c.notes:
        console.print(f"note: {note}", style="dim")


@guard
def compare_cmd(
    hardware: Hardware = PAPER_HARDWARE,
    gamma: Annotated[
        str, typer.Option("--gamma", help="'auto' (model's best gamma) or 'paper' (the published gamma).")
    ] = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Predict each row of the published 8xA100 table; per-row error and MAPE (reports, does not fit)."""
    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r} is not one of: table, json")
    c = compare_paper(hardware=hardware, gamma=gamma, acceptance=acceptance_value(acceptance),
                      acceptance_table=acceptance_table, ideal=ideal)
    if fmt == "json":
        doc = {
            "hardware": c.hardware,
            "gpus": 8,
            "gamma_mode": c.gamma_mode,
            "mape_pct": c.mape_pct,
            "notes": c.notes,
            "rows": json.loads(c.rows.to_json(orient="records")),
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print(c)
