"""`report`: the design-space HTML report over a batch x seq_len grid for one or more draft strategies."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import check_grid, grid_size

from .options import (
    DRAFT_KINDS_HELP,
    RANGES_HELP,
    Acceptance,
    AcceptanceTable,
    EngineOpt,
    ExpertParallel,
    Gamma,
    Hardware,
    Ideal,
    KvDtype,
    Model,
    WeightDtype,
    acceptance_value,
    gamma_list,
    grid_list,
    guard,
    int_list,
)

#: most heatmap cells (strategies x batches x sequence lengths) of one report
MAX_REPORT_CELLS = 250_000

REPORT_EPILOG = """\
\b
Ranges: START:STOP:COUNT gives COUNT integers spaced geometrically (1:256:64, 1k:128k:64).
Strategies: every combination of --draft, --kv-method and --kv-budget (full KV ignores budgets).
\b
Examples:
  magicdec-model report --model llama-3.1-8b --gpus 8 --batch 1:256:32 \\
      --seq-len 1k:128k:32 --draft self --kv-method streamingllm,snapkv --out r.html
  magicdec-model report --model llama-2-7b-32k --draft self,tinyllama-1.1b --kv-budget 512 \\
      --gpus 8 --batch 1:512:64 --seq-len 1k:32k:64 --out r.html
"""


def _names(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{flag} {text!r} is empty; give one or more comma-separated values")
    return items


@guard
def report_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HTML file (self-contained, opens offline).")],
    model: Model = "llama-3.1-8b",
    draft: Annotated[
        str, typer.Option("--draft", help=f"Draft(s), comma-separated: {DRAFT_KINDS_HELP}.")
    ] = "self",
    kv_budget: Annotated[
        str, typer.Option("--kv-budget", help=f"Draft KV budget(s) in tokens, {RANGES_HELP}.")
    ] = "512",
    kv_method: Annotated[
        str, typer.Option("--kv-method", help="KV method(s): streamingllm, snapkv, full; comma-separated.")
    ] = "streamingllm",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPU count (one value).")] = "1",
    batch: Annotated[
        str, typer.Option("--batch", help="Batch sizes: list and/or START:STOP:COUNT range.")
    ] = "1:256:9",
    seq_len: Annotated[
        str, typer.Option("--seq-len", help="Context lengths (tokens): list and/or START:STOP:COUNT range.")
    ] = "1k,2k,4k,8k,16k,32k,64k,128k",
    gamma: Gamma = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    engine: EngineOpt = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    expert_parallel: ExpertParallel = False,
) -> None:
    """Write an HTML report: speedup heatmaps, regimes, KV share, step ratios, throughput vs latency."""
    from magicdec_model.perfmodel.outfiles import OutputLock, check_not_an_input, check_out_file
    from magicdec_model.perfmodel.report import build_report, write_report
    from magicdec_model.perfmodel.strategy import cross_strategies
    from magicdec_model.perfmodel.sweep import Query, query_files
    t0 = time.perf_counter()
    path = check_out_file(out, (".html", ".htm"))
    gpu_counts = int_list(gpus, "--gpus")
    if len(gpu_counts) != 1:
        raise InputError(f"--gpus {gpus!r}: a report takes one GPU count; allowed: one positive integer")
    strategies = cross_strategies(
        _names(draft, "--draft"), _names(kv_method, "--kv-method"), int_list(kv_budget, "--kv-budget")
    )
    query = Query(
        model=model, batch=grid_list(batch, "--batch"), seq_len=grid_list(seq_len, "--seq-len"),
        hardware=hardware, gpus=gpu_counts, gamma=gamma_list(gamma),
        acceptance=acceptance_value(acceptance), acceptance_table=acceptance_table, ideal=ideal,
        budget_policy="cap", engine=engine, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
        expert_parallel=expert_parallel,
    )
    check_not_an_input(path, query_files(query))
    check_grid(grid_size(len(strategies), len(query.batch), len(query.seq_len)), MAX_REPORT_CELLS,
               "the report (strategies x batches x sequence lengths)",
               "fewer values or a coarser range; 'sweep --out FILE' writes any grid")
    with OutputLock(path):
        rep = build_report(query, strategies)
        write_report(path, rep)
    size_mb = path.stat().st_size / 1e6
    typer.echo(
        f"wrote {path} ({size_mb:.1f} MB): {len(rep.figures)} figures, {len(strategies)} strategies x "
        f"{len(query.batch)} batches x {len(query.seq_len)} sequence lengths in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    for note in rep.notes:  # what its best-configuration table leaves out, and why
        typer.echo(f"note: {note}")
