"""`breakdown`: every op of one step at one point, with its FLOPs, bytes, time and regime."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from magicdec_model.perfmodel.breakdown import step_breakdown
from magicdec_model.perfmodel.errors import InputError

from .options import DraftOpt, Hardware, Ideal, KvMethod, Model, guard, int_list
from .output import FORMATS, records_plain


@guard
def breakdown_cmd(
    model: Model = "llama-3.1-8b",
    step: Annotated[str, typer.Option("--step", help="target, verify or draft.")] = "target",
    batch: Annotated[str, typer.Option("--batch", help="One batch size.")] = "32",
    seq_len: Annotated[str, typer.Option("--seq-len", help="One context length (tokens).")] = "32000",
    gpus: Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPUs.")] = "1",
    hardware: Hardware = "a100-80gb-sxm",
    gamma: Annotated[int, typer.Option("--gamma", help="Speculation length (verify).")] = 3,
    draft: DraftOpt = "self",
    kv_method: KvMethod = "streamingllm",
    kv_budget: Annotated[str, typer.Option("--kv-budget", help="Draft KV budget (tokens).")] = "512",
    ideal: Ideal = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Show the per-op FLOPs, bytes, time and regime of one step (per GPU)."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    values = {}
    for flag, text in (("--batch", batch), ("--seq-len", seq_len), ("--gpus", gpus),
                       ("--kv-budget", kv_budget)):
        parsed = int_list(text, flag)
        if len(parsed) != 1:
            raise InputError(f"{flag} {text!r}: breakdown takes one value")
        values[flag] = parsed[0]
    df = step_breakdown(model, step, values["--batch"], values["--seq-len"], values["--gpus"],
                        hardware, gamma, draft, kv_method, values["--kv-budget"], ideal)
    if fmt != "table":
        records_plain(df, fmt)
        return
    table = Table(box=None, header_style="bold", padding=(0, 1, 0, 0))
    for col in ("op", "class", "x", "GFLOP", "MB", "comm KB", "time us", "share", "regime"):
        table.add_column(col, justify="left" if col in ("op", "class", "regime") else "right")
    for r in df.itertuples():
        table.add_row(r.op, r.op_class, str(r.count), f"{r.flops / 1e9:.2f}", f"{r.bytes / 1e6:.1f}",
                      f"{r.comm_bytes / 1e3:.0f}", f"{r.time_s * 1e6:.0f}", f"{100 * r.share:.1f}%",
                      r.regime)
    console = Console(width=80, highlight=False)
    console.print(table)
    console.print(f"step time {df['time_s'].sum() * 1e3:.3f} ms per GPU", style="bold")
