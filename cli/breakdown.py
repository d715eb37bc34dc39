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
    from magicdec_model.perfmodel.breakdown import STEPS, step_breakdown
    from magicdec_model.perfmodel.speculative import GAMMA_MAX

    from .output import FORMATS, Column, console, records_plain, say, show
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
    cols = [Column("op", left=True), Column("class", left=True), Column("x", "count"), Column("GFLOP"),
            Column("MB"), Column("comm KB"), Column("time us"), Column("share"),
            Column("regime", left=True)]
    rows = [[str(r.op), str(r.op_class), str(r.count), f"{r.flops / 1e9:.2f}", f"{r.bytes / 1e6:.1f}",
             f"{r.comm_bytes / 1e3:.0f}", f"{r.time_s * 1e6:.0f}", f"{100 * r.share:.1f}%", str(r.regime)]
            for r in df.itertuples()]
    con = console()
    show(cols, rows, con)
    eng = df.attrs["engine"]
    say(f"step time {df.attrs['step_time_s'] * 1e3:.3f} ms per GPU", con, "bold")
    say(f"{eng.describe()}; the SD loop's {eng.sd_iteration_s * 1e3:.3g} ms per iteration is not part "
        "of a step", con, "dim")
