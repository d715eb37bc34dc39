"""`breakdown`: every op of one step at one point, with its FLOPs, bytes, time and regime."""

from __future__ import annotations

from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import check_choice, check_int

from .options import (
    DraftOpt,
    DraftVocab,
    EngineOpt,
    ExpertParallel,
    Hardware,
    Ideal,
    KvDtype,
    KvMethod,
    Model,
    VerifyTokens,
    WeightDtype,
    guard,
    int_list,
)


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
    kv_method: KvMethod = "auto",
    kv_budget: Annotated[str, typer.Option("--kv-budget", help="Draft KV budget (tokens).")] = "512",
    ideal: Ideal = False,
    engine: EngineOpt = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    verify_tokens: VerifyTokens = None,
    draft_vocab: DraftVocab = None,
    expert_parallel: ExpertParallel = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Show the per-op FLOPs, bytes, time and regime of one step (per GPU)."""
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.breakdown import STEPS, step_breakdown
    from magicdec_model.perfmodel.speculative import GAMMA_MAX

    from .output import FORMATS, records_plain, safe
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    step = check_choice(step, "--step", STEPS)
    gamma = check_int(gamma, "--gamma", 1, GAMMA_MAX)  # a verify step checks gamma + 1 tokens
    values = {}
    for flag, text in (("--batch", batch), ("--seq-len", seq_len), ("--gpus", gpus),
                       ("--kv-budget", kv_budget)):
        parsed = int_list(text, flag)
        if len(parsed) != 1:
            raise InputError(f"{flag} {text!r}: breakdown takes one value")
        values[flag] = parsed[0]
    df = step_breakdown(model, step, values["--batch"], values["--seq-len"], values["--gpus"],
                        hardware, gamma, draft, kv_method, values["--kv-budget"], ideal, engine,
                        weight_dtype=weight_dtype, kv_dtype=kv_dtype, verify_tokens=verify_tokens,
                        draft_vocab=draft_vocab, expert_parallel=expert_parallel)
    if fmt != "table":
        records_plain(df, fmt)
        return
    table = Table(box=None, header_style="bold", padding=(0, 1, 0, 0))
    for col in ("op", "class", "x", "GFLOP", "MB", "comm KB", "time us", "share", "regime"):
        table.add_column(col, justify="left" if col in ("op", "class", "regime") else "right")
    for r in df.itertuples():
        table.add_row(safe(r.op), r.op_class, str(r.count), f"{r.flops / 1e9:.2f}", f"{r.bytes / 1e6:.1f}",
                      f"{r.comm_bytes / 1e3:.0f}", f"{r.time_s * 1e6:.0f}", f"{100 * r.share:.1f}%",
                      r.regime)
    console = Console(width=80, highlight=False)
    console.print(table)
    eng = df.attrs["engine"]
    console.print(f"step time {df.attrs['step_time_s'] * 1e3:.3f} ms per GPU", style="bold")
    console.print(f"{eng.describe()}; the SD loop's {eng.sd_iteration_s * 1e3:.3g} ms per iteration "
                  f"is not part of a step", style="dim", markup=False)
