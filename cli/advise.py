"""`advise`: rank draft strategies for one workload and say whether SD is worth it."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from magicdec_model.perfmodel.advise import ADVICE_COLUMNS, Advice, advise
from magicdec_model.perfmodel.errors import InputError

from .options import Acceptance, AcceptanceTable, Hardware, Ideal, Model, acceptance_value, guard, int_list

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


def _print(adv: Advice, top: int) -> None:
    console = Console(width=min(Console().width, 110), highlight=False)
    df = adv.ranking
    first = df.iloc[0]
    console.print(
        f"[bold]{first['model']}[/] on {first['gpus']} x {first['hardware']}, batch {first['batch']}, "
        f"seq_len {first['seq_len']:,}: AR {first['latency_ar_s'] * 1e3:.2f} ms/token, "
        f"{first['throughput_ar_tok_s']:,.0f} tok/s"
    )
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    notes = df.head(top)["why_excluded"].astype(bool).any()
    heads = ["#", "draft", "KV", "γ", "acc", "spdup", "SD tok/s", "SD ms", "GB", "γT_D/T_T", "T_V/T_T"]
    for h in heads + (["excluded"] if notes else []):
        left = h in ("draft", "KV", "excluded")
        table.add_column(h, justify="left" if left else "right", no_wrap=h != "excluded")
    for _, r in df.head(top).iterrows():
        sp = f"{r['speedup']:.2f}"
        if r["speedup"] < 1:
            sp = f"[red]{sp}[/]"
        kv = "full" if r["kv_method"] == "full" else f"{_SHORT[r['kv_method']]} {r['kv_budget']}"
        cells = [
            str(r["rank"]) if r["rank"] else "-", r["draft"], kv, str(r["gamma"]), f"{r['acceptance']:.2f}",
            sp, f"{r['throughput_sd_tok_s']:,.0f}", f"{r['latency_sd_s'] * 1e3:.2f}",
            f"{r['memory_per_gpu_bytes'] / 1e9:.1f}", f"{r['draft_cost']:.2f}", f"{r['verify_cost']:.2f}",
        ]
        table.add_row(*cells + ([r["why_excluded"]] if notes else []))
    console.print(table)
    if len(df) > top:
        console.print(f"({len(df) - top} more candidates; --top N to show more)", style="dim")
    console.print(
        "speedup = Ω / (γT_D/T_T + T_V/T_T) (MagicDec Eq. 1); KV: draft KV method and budget "
        "(stream = StreamingLLM, snap = SnapKV); acc = acceptance rate; SD ms = ms/token; GB = weights "
        "+ KV caches per GPU.", style="dim",
    )
    for src in dict.fromkeys(df["acceptance_source"].head(top)):
        console.print(f"acceptance: {src}", style="dim")
    for note in adv.skipped:
        console.print(f"skipped: {note}", style="dim")
    for note in adv.notes:
        console.print(f"note: {note}", style="yellow")
    console.print(f"[bold]{'' if adv.worth_it else '[red]'}{adv.verdict}[/]")


@guard
def advise_cmd(
    model: Model = "llama-3.1-8b",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPU count.")] = "1",
    batch: Annotated[str, typer.Option("--batch", help="Batch size (sequences).")] = "32",
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
    top: Annotated[int, typer.Option("--top", help="Candidates shown in the table.")] = 15,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Rank draft strategies (self StreamingLLM/SnapKV, smaller same-tokenizer drafts) for a workload."""
    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r} is not one of: table, json")
    if top < 1:
        raise InputError(f"--top {top} must be at least 1")
    budget = None
    if latency_budget_ms is not None:
        if not latency_budget_ms > 0:
            raise InputError(f"--latency-budget-ms {latency_budget_ms:g} must be positive")
        budget = latency_budget_ms / 1e3
    adv = advise(
        model, hardware, _one(gpus, "--gpus"), _one(batch, "--batch"), _one(seq_len, "--seq-len"),
        latency_budget_s=budget, acceptance=acceptance_value(acceptance),
        acceptance_table=acceptance_table, ideal=ideal,
    )
    if fmt == "json":
        cols = list(ADVICE_COLUMNS)
        doc = {
            "verdict": adv.verdict,
            "worth_it": adv.worth_it,
            "skipped": adv.skipped,
            "notes": adv.notes,
            "candidates": json.loads(adv.ranking[cols].to_json(orient="records")),
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print(adv, top)
