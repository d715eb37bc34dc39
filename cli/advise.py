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
    from magicdec_model.perfmodel.engine import resolve_engine

    from .output import Column, console, engine_footer, legend, say, show, styled
    con = console()
    df = adv.ranking
    first = df.iloc[0]
    asked = f" (asked: {adv.requested_batch}, which cannot run)" if adv.requested_batch != adv.batch else ""
    say(f"{first['model']} on {first['gpus']} x {first['hardware']}, batch {first['batch']}{asked}, "
        f"seq_len {first['seq_len']:,}: AR {first['latency_ar_s'] * 1e3:.2f} ms/token, "
        f"{first['throughput_ar_tok_s']:,.0f} tok/s", con, "bold")
    shown = df.head(top)
    reasons = list(dict.fromkeys(r for r in shown["why_excluded"] if r))
    cols = [Column("#", "rank"), Column("draft", left=True), Column("KV", "draft KV", left=True),
            Column("γ", "gamma"), Column("acc", "acceptance"), Column("spdup", "speedup"),
            Column("80% range", "80% interval"), Column("SD tok/s"), Column("SD ms", "SD ms/token"),
            Column("GB", "GB per GPU"), Column("γT_D/T_T"), Column("T_V/T_T")]
    cols += [Column("excl", "excluded", left=True)] if reasons else []
    rows = []
    for _, r in shown.iterrows():
        kv = "full" if r["kv_method"] == "full" else f"{_SHORT[r['kv_method']]} {r['kv_budget']}"
        cells = [
            str(r["rank"]) if r["rank"] else "-", str(r["draft"]), kv, str(r["gamma"]),
            f"{r['acceptance']:.2f}", styled(f"{r['speedup']:.2f}", "red" if r["speedup"] < 1 else None),
            f"{r['speedup_lo']:.2f}-{r['speedup_hi']:.2f}", f"{r['throughput_sd_tok_s']:,.0f}",
            f"{r['latency_sd_s'] * 1e3:.2f}", f"{r['memory_per_gpu_bytes'] / 1e9:.1f}",
            f"{r['draft_cost']:.2f}", f"{r['verify_cost']:.2f}",
        ]
        if reasons:
            cells.append(f"[{reasons.index(r['why_excluded']) + 1}]" if r["why_excluded"] else "")
        rows.append(cells)
    show(cols, rows, con)
    for n, why in enumerate(reasons, start=1):
        say(f"[{n}] excluded: {why}", con, "dim")
    if len(df) > top:
        say(f"({len(df) - top} more candidates; --top N to show more)", con, "dim")
    legend(["speedup = Ω / (γT_D/T_T + T_V/T_T) (MagicDec Eq. 1)",
            "KV: draft KV method and budget (stream = StreamingLLM, snap = SnapKV)",
            "acc = acceptance rate", "SD ms = ms/token", "GB = weights + KV caches per GPU"], con)
    for src in dict.fromkeys(shown["acceptance_source"]):
        say(f"acceptance: {src}", con, "dim")
    for note in adv.skipped:
        say(f"skipped: {note}", con, "dim")
    for note in adv.notes:
        say(f"note: {note}", con, "yellow")
    eng = resolve_engine(engine, bool(first["ideal"]))
    for line in engine_footer(eng):
        say(line.strip(), con, "dim")
    color = "yellow" if adv.uncertain else ("" if adv.worth_it else "red")
    say(adv.verdict, con, f"bold {color}".strip())
    if adv.worth_it:
        from . import engine_commands
        for line in engine_commands.lines(engine_commands.for_advice(df, first["model"], first["gpus"])):
            con.print(line, markup=False, soft_wrap=True)


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
    """Rank every draft strategy for a workload: self-speculation with a StreamingLLM or SnapKV budget,
    smaller same-tokenizer registry drafts, an EAGLE head, the model's MTP module (where it has one)
    and n-gram prompt lookup; say whether SD is worth it."""
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
