"""`advise`: rank draft strategies for one workload and say whether SD is worth it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import check_float, check_int

from .options import (
    Acceptance,
    AcceptanceTable,
    EngineOpt,
    ExpertParallel,
    Hardware,
    Ideal,
    KvDtype,
    Model,
    WeightDtype,
    acceptance_value,
    guard,
    int_list,
)

if TYPE_CHECKING:  # pragma: no cover
    from magicdec_model.perfmodel.advise import Advice

ADVISE_EPILOG = """\
\b
Examples:
  magicdec-model advise --model llama-3.1-8b --gpus 8 --batch 64 --seq-len 32k
  magicdec-model advise --model llama-2-7b-32k --gpus 8 --batch 32 --seq-len 8k \\
      --latency-budget-ms 10 --format json
"""


def _one(text: str, flag: str) -> int:
    values = int_list(text, flag)
    if len(values) != 1:
        raise InputError(f"{flag} {text!r}: advise takes one value; allowed: one positive integer")
    return values[0]


_SHORT = {"streamingllm": "stream", "snapkv": "snap"}


def _print(adv: Advice, top: int, engine: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.engine import resolve_engine

    from .output import engine_footer, safe
    console = Console(width=min(Console().width, 110), highlight=False)
    df = adv.ranking
    first = df.iloc[0]
    asked = f" (asked: {adv.requested_batch}, which cannot run)" if adv.requested_batch != adv.batch else ""
    console.print(
        f"[bold]{safe(first['model'])}[/] on {first['gpus']} x {safe(first['hardware'])}, "
        f"batch {first['batch']}{asked}, "
        f"seq_len {first['seq_len']:,}: AR {first['latency_ar_s'] * 1e3:.2f} ms/token, "
        f"{first['throughput_ar_tok_s']:,.0f} tok/s"
    )
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    notes = df.head(top)["why_excluded"].astype(bool).any()
    heads = ["#", "draft", "KV", "γ", "acc", "spdup", "80% range", "SD tok/s", "SD ms", "GB",
             "γT_D/T_T", "T_V/T_T"]
    for h in heads + (["excluded"] if notes else []):
        left = h in ("draft", "KV", "excluded")
        table.add_column(h, justify="left" if left else "right", no_wrap=h != "excluded")
    for _, r in df.head(top).iterrows():
        sp = f"{r['speedup']:.2f}"
        if r["speedup"] < 1:
            sp = f"[red]{sp}[/]"
        kv = "full" if r["kv_method"] == "full" else f"{_SHORT[r['kv_method']]} {r['kv_budget']}"
        cells = [
            str(r["rank"]) if r["rank"] else "-", safe(r["draft"]), kv, str(r["gamma"]),
            f"{r['acceptance']:.2f}",
            sp, f"{r['speedup_lo']:.2f}-{r['speedup_hi']:.2f}", f"{r['throughput_sd_tok_s']:,.0f}",
            f"{r['latency_sd_s'] * 1e3:.2f}",
            f"{r['memory_per_gpu_bytes'] / 1e9:.1f}", f"{r['draft_cost']:.2f}", f"{r['verify_cost']:.2f}",
        ]
        table.add_row(*cells + ([safe(r["why_excluded"])] if notes else []))
    console.print(table)
    if len(df) > top:
        console.print(f"({len(df) - top} more candidates; --top N to show more)", style="dim")
    console.print(
        "speedup = Ω / (γT_D/T_T + T_V/T_T) (MagicDec Eq. 1); KV: draft KV method and budget "
        "(stream = StreamingLLM, snap = SnapKV); acc = acceptance rate; SD ms = ms/token; GB = weights "
        "+ KV caches per GPU.", style="dim",
    )
    for src in dict.fromkeys(df["acceptance_source"].head(top)):
        console.print(f"acceptance: {src}", style="dim", markup=False)
    for note in adv.skipped:
        console.print(f"skipped: {note}", style="dim", markup=False)
    for note in adv.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    eng = resolve_engine(engine, bool(first["ideal"]))
    for line in engine_footer(eng):
        console.print(line, style="dim", markup=False)
    color = "yellow" if adv.uncertain else ("" if adv.worth_it else "red")
    console.print(adv.verdict, style=f"bold {color}".strip(), markup=False)
    if adv.worth_it:
        from . import engine_commands
        for line in engine_commands.lines(engine_commands.for_advice(df, first["model"], first["gpus"])):
            console.print(line, markup=False, soft_wrap=True)


@guard
def advise_cmd(
    model: Model = "llama-3.1-8b",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPU count.")] = "1",
    batch: Annotated[str, typer.Option("--batch", help="Batch size (sequences).")] = "8",
    seq_len: Annotated[
        str, typer.Option("--seq-len", help="Context length (tokens); 32k = 32000.")
    ] = "32000",
    latency_budget_ms: Annotated[
        float | None,
        typer.Option("--latency-budget-ms", help="Most SD per-token latency allowed (ms/token)."),
    ] = None,
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    engine: EngineOpt = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    expert_parallel: ExpertParallel = False,
    top: Annotated[int, typer.Option("--top", help="Candidates shown in the table.")] = 15,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Rank draft strategies (self StreamingLLM/SnapKV, smaller same-tokenizer drafts) for a workload."""
    from magicdec_model.perfmodel.advise import ADVICE_COLUMNS, advise
    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r} is not one of: table, json")
    top = check_int(top, "--top")
    budget = None
    if latency_budget_ms is not None:
        budget = check_float(latency_budget_ms, "--latency-budget-ms", 0.0, lo_open=True) / 1e3
    adv = advise(
        model, hardware, _one(gpus, "--gpus"), _one(batch, "--batch"), _one(seq_len, "--seq-len"),
        latency_budget_s=budget, acceptance=acceptance_value(acceptance),
        acceptance_table=acceptance_table, ideal=ideal, engine=engine, weight_dtype=weight_dtype,
        kv_dtype=kv_dtype, expert_parallel=expert_parallel,
    )
    if fmt == "json":
        cols = list(ADVICE_COLUMNS)
        doc = {
            "verdict": adv.verdict,
            "worth_it": adv.worth_it,
            "uncertain": adv.uncertain,
            "skipped": adv.skipped,
            "notes": adv.notes,
            "requested_batch": adv.requested_batch,
            "batch": adv.batch,
            "target_fits": None if adv.target_fit is None else adv.target_fit.fits,
            "target_max_batch": None if adv.target_fit is None else adv.target_fit.max_batch,
            "fixes": [] if adv.target_fit is None else adv.target_fit.fixes,
            "candidates": json.loads(adv.ranking[cols].to_json(orient="records")),
        }
        if adv.worth_it:
            from . import engine_commands
            doc["engine_commands"] = engine_commands.as_json(
                engine_commands.for_advice(adv.ranking, model, _one(gpus, "--gpus")))
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print(adv, top, engine)
