"""Formatting of prediction DataFrames: an 80-column rich table, CSV or JSON."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from magicdec_model.perfmodel.engine import EngineProfile
from magicdec_model.perfmodel.intervals import LEVEL
from magicdec_model.perfmodel.sweep import MEMORY_UTILIZATION, RESULT_COLUMNS

FORMATS = ("table", "csv", "json")


def safe(text: object) -> str:
    """``text`` escaped for rich markup: user strings (model, profile and file names, table
    sources) print literally, and '[/bold]' in a name can never raise a MarkupError."""
    return escape(str(text))


def _tokens(n: float) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{int(n) // 1000}K"
    return f"{int(n)}"


def _rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _ms(x: float) -> str:
    ms = x * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts with the contract's columns (numpy scalars converted)."""
    cols = [c for c in RESULT_COLUMNS if c in df.columns]
    return json.loads(df[cols].to_json(orient="records"))


def records_plain(df: pd.DataFrame, fmt: str) -> None:
    """Write any DataFrame to stdout as ``csv`` or ``json`` (all columns)."""
    if fmt == "json":
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
    else:
        df.to_csv(sys.stdout, index=False)


def emit(df: pd.DataFrame, fmt: str, width: int | None = None,
         engine: EngineProfile | None = None) -> None:
    """Write ``df`` to stdout as ``table``, ``csv`` or ``json`` (``engine`` for the table's footer)."""
    if fmt == "json":
        json.dump(records(df), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif fmt == "csv":
        cols = [c for c in RESULT_COLUMNS if c in df.columns]
        df[cols].to_csv(sys.stdout, index=False)
    else:
        print_table(df, width=width, engine=engine)


def engine_footer(engine: EngineProfile) -> list[str]:
    """Lines saying which engine the step times rest on and how their intervals were made."""
    lines = [engine.describe() + "."]
    if engine.calibrated:
        cal = engine.calibration
        cv = (f"{cal.get('cv', 'cross')}-validated {cal['mape_cv_pct']:.1f}%" if "mape_cv_pct" in cal
              else "not cross-validated")
        fit = f"in-sample MAPE {cal['mape_in_sample_pct']:.1f}%, " if "mape_in_sample_pct" in cal else ""
        lines.append(
            f"  calibrated on {cal.get('points')} measured steps of {cal.get('model')} on "
            f"{cal.get('hardware')} ({fit}{cv}); "
            f"{LEVEL:.0%} intervals from its covariance and residual spread"
        )
    elif engine.uncertain_parameters():
        lines.append(f"  {LEVEL:.0%} intervals from the engine's declared uncertainties "
                     "(not calibrated: 'magicdec-model calibrate' fits one to your measured steps)")
    else:
        lines.append("  no uncertainty declared: the intervals have zero width")
    return lines


def print_table(df: pd.DataFrame, width: int | None = None,
                engine: EngineProfile | None = None) -> None:
    """Print the predictions as a compact table that fits 80 columns, with a legend."""
    console = Console(width=width or min(Console().width, 100), highlight=False)
    first = df.iloc[0]
    ideal = " [ideal: speed of light]" if bool(first["ideal"]) else ""
    console.print(
        f"[bold]{safe(first['model'])}[/] drafted by [bold]{safe(first['draft'])}[/] "
        f"({safe(first['kv_method'])}) on {safe(first['hardware'])}{ideal}"
    )
    multi = {c: df[c].nunique() > 1 for c in ("gpus", "kv_budget")}
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    if multi["gpus"]:
        table.add_column("G", justify="right")
    if multi["kv_budget"]:
        table.add_column("budg", justify="right")
    ranged = bool((df["speedup_hi"] > df["speedup_lo"]).any()) if "speedup_lo" in df else False
    headers = ["B", "S", "T_tgt", "T_drf", "T_ver", "γ", "Ω", "spdup"]
    headers += ["80% range"] if ranged else []
    headers += ["AR/s", "SD/s", "SD ms", "regime", "fit"]
    for h in headers:
        table.add_column(h, justify="left" if h in ("regime", "fit") else "right")
    for _, r in df.iterrows():
        cells = []
        if multi["gpus"]:
            cells.append(str(r["gpus"]))
        if multi["kv_budget"]:
            cells.append(str(r["kv_budget"]))
        regime = f"{'mem' if r['regime'] == 'memory' else 'cmp'} {100 * r['kv_fraction']:.0f}%"
        speed = f"{r['speedup']:.2f}"
        if r["speedup"] < 1:
            speed = f"[red]{speed}[/]"
        cells += [
            str(r["batch"]),
            _tokens(r["seq_len"]),
            _ms(r["t_target_s"]),
            _ms(r["t_draft_s"]),
            _ms(r["t_verify_s"]),
            str(r["gamma"]),
            f"{r['expected_tokens']:.2f}",
            speed,
            *([f"{r['speedup_lo']:.2f}-{r['speedup_hi']:.2f}"] if ranged else []),
            _rate(r["throughput_ar_tok_s"]),
            _rate(r["throughput_sd_tok_s"]),
            _ms(r["latency_sd_s"]),
            regime,
            "yes" if r["fits_memory"] else "[red]NO[/]",
        ]
        table.add_row(*cells)
    console.print(table)
    console.print(
        "T_* step times in ms (target decode, one draft step, verify gamma+1); Ω tokens/step; "
        "AR/s, SD/s tokens/s; AR ms/token = T_tgt; regime of the target step and its KV-read share; "
        f"fit = weights + KV caches within {MEMORY_UTILIZATION:.0%} of GPU memory.",
        style="dim",
    )
    if engine is not None:
        for line in engine_footer(engine):
            console.print(line, style="dim", markup=False)
    elif "engine" in df:
        console.print(f"engine: {', '.join(pd.unique(df['engine']))}", style="dim", markup=False)
    for src in pd.unique(df["acceptance_source"]):
        accs = df.loc[df["acceptance_source"] == src, "acceptance"]
        lo, hi = float(np.min(accs)), float(np.max(accs))
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
        console.print(f"acceptance {span}: {src}", style="dim", markup=False)
    for note in pd.unique(df["notes"]):
        if note:
            console.print(f"note: {note}", style="yellow", markup=False)
