"""`predict` and `sweep`: the analytic model over a grid, printed or written to a file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import check_grid

from .options import (
    Acceptance,
    AcceptanceTable,
    AcceptLen,
    AcceptRate,
    Batch,
    DraftFraction,
    DraftList,
    DraftOpt,
    DraftVocab,
    EngineOpt,
    ExpertParallel,
    Gamma,
    Gpus,
    Hardware,
    Ideal,
    KvBudget,
    KvDtype,
    KvMethod,
    KvMethodList,
    Model,
    PositionAcceptance,
    SeqLen,
    VerifyTokens,
    WeightDtype,
    acceptance_value,
    float_list,
    gamma_list,
    guard,
    int_list,
    names,
)

if TYPE_CHECKING:  # pragma: no cover
    from magicdec_model.perfmodel.sweep import Query

PREDICT_EPILOG = """\
\b
Examples:
  magicdec-model predict --model llama-3.1-8b --draft self --kv-budget 512 \\
      --hardware a100-80gb-sxm --gpus 8 --batch 32,64,128 \\
      --seq-len 8000,32000 --acceptance 0.8 --gamma auto
  magicdec-model predict --model llama-2-7b-32k --draft tinyllama-1.1b \\
      --kv-budget 512 --gpus 8 --batch 32 --seq-len 8k,32k --format json
  magicdec-model predict --model meta-llama/Llama-3.1-8B --hardware h100-sxm \\
      --batch 64 --seq-len 32k --ideal
  magicdec-model predict --model llama-3.1-8b --hardware h100-sxm --engine vllm-h100 \\
      --draft eagle --accept-len 2.4 --gamma 3 --batch 1,8,64 --seq-len 2k
  magicdec-model predict --model qwen3-30b-a3b --hardware h100-sxm --weight-dtype fp8 \\
      --kv-dtype fp8 --batch 1,16 --seq-len 4k,32k
"""


#: most rows ``predict`` prints (larger grids: ``sweep --out FILE``, written chunk by chunk)
MAX_PREDICT_ROWS = 100_000


def build_query(
    model: str,
    draft: str,
    kv_budget: str,
    kv_method: str,
    hardware: str,
    gpus: str,
    batch: str,
    seq_len: str,
    gamma: str,
    acceptance: str | None,
    acceptance_table: str | None,
    ideal: bool,
    budget_policy: str,
    engine: str | None = None,
    **methods,
) -> Query:
    """Parse the shared flags into a :class:`Query` (raises InputError on bad input).

    ``methods``: weight_dtype, kv_dtype, accept_len, accept_rate, position_acceptance (text), draft_fraction,
    verify_tokens, draft_vocab, expert_parallel.
    """
    from magicdec_model.perfmodel.sweep import Query
    if methods.get("position_acceptance") is not None:
        methods["position_acceptance"] = float_list(methods["position_acceptance"],
                                                    "--position-acceptance")
    return Query(
        model=model,
        draft=draft,
        kv_method=kv_method,
        kv_budget=int_list(kv_budget, "--kv-budget"),
        hardware=hardware,
        gpus=int_list(gpus, "--gpus"),
        batch=int_list(batch, "--batch"),
        seq_len=int_list(seq_len, "--seq-len"),
        gamma=gamma_list(gamma),
        acceptance=acceptance_value(acceptance),
        acceptance_table=acceptance_table,
        ideal=ideal,
        budget_policy=budget_policy,
        engine=engine,
        **methods,
    )


@guard
def predict_cmd(
    model: Model = "llama-3.1-8b",
    draft: DraftList = "self",
    kv_budget: KvBudget = "512",
    kv_method: KvMethodList = "auto",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Gpus = "1",
    batch: Batch = "8",  # fits one A100 at 32k: 16 GB of weights + 33.5 GB of KV (128 KiB/token)
    seq_len: SeqLen = "32000",
    gamma: Gamma = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    engine: EngineOpt = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    accept_len: AcceptLen = None,
    accept_rate: AcceptRate = None,
    position_acceptance: PositionAcceptance = None,
    draft_fraction: DraftFraction = 1.0,
    verify_tokens: VerifyTokens = None,
    draft_vocab: DraftVocab = None,
    expert_parallel: ExpertParallel = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Predict SD speedup, step times, throughput, regime and memory fit for each (batch, seq_len),
    for every combination of --draft and --kv-method."""
    import pandas as pd

    from magicdec_model.perfmodel.engine import resolve_engine
    from magicdec_model.perfmodel.grid import grid_rows
    from magicdec_model.perfmodel.sweep import predict

    from .output import FORMATS, emit
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    pairs = [(d, m) for d in names(draft, "--draft") for m in names(kv_method, "--kv-method")]
    queries = [build_query(model, d, kv_budget, m, hardware, gpus, batch, seq_len,
                           gamma, acceptance, acceptance_table, ideal, budget_policy="error",
                           engine=engine, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                           accept_len=accept_len, accept_rate=accept_rate,
                           position_acceptance=position_acceptance,
                           draft_fraction=draft_fraction, verify_tokens=verify_tokens,
                           draft_vocab=draft_vocab, expert_parallel=expert_parallel) for d, m in pairs]
    check_grid(len(queries) * grid_rows(queries[0]), MAX_PREDICT_ROWS, "the grid",
               "use 'sweep --out FILE' for larger grids: it writes chunk by chunk")
    frames = [predict(q) for q in queries]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    emit(df, fmt, engine=resolve_engine(queries[0].engine, queries[0].ideal))


@guard
def sweep_cmd(
    out: Annotated[str, typer.Option("--out", help="Output file: .csv or .parquet.")],
    model: Model = "llama-3.1-8b",
    draft: DraftOpt = "self",
    kv_budget: KvBudget = "512",
    kv_method: KvMethod = "auto",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Gpus = "1",
    batch: Batch = "1,2,4,8,16,32,64,128,256",
    seq_len: SeqLen = "1k,2k,4k,8k,16k,32k,64k,128k",
    gamma: Gamma = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    engine: EngineOpt = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    accept_len: AcceptLen = None,
    accept_rate: AcceptRate = None,
    position_acceptance: PositionAcceptance = None,
    draft_fraction: DraftFraction = 1.0,
    verify_tokens: VerifyTokens = None,
    draft_vocab: DraftVocab = None,
    expert_parallel: ExpertParallel = False,
) -> None:
    """Write the whole grid (every flag's cross product) to CSV or Parquet.

    Unlike predict, a budget not below a sequence length is allowed here: the draft then reads
    the full KV, and the row's notes say so.  The grid is evaluated and written chunk by chunk
    (bounded memory) to a temporary file renamed onto --out when complete; the file is locked
    while it is written.
    """
    from magicdec_model.perfmodel.gridfile import human_bytes
    from magicdec_model.perfmodel.outfiles import check_out_file

    from .sweep_file import write_sweep
    path = check_out_file(out, (".csv", ".parquet"))
    query = build_query(model, draft, kv_budget, kv_method, hardware, gpus, batch, seq_len,
                        gamma, acceptance, acceptance_table, ideal, budget_policy="cap",
                        engine=engine, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                        accept_len=accept_len, accept_rate=accept_rate,
                        position_acceptance=position_acceptance,
                        draft_fraction=draft_fraction, verify_tokens=verify_tokens,
                        draft_vocab=draft_vocab, expert_parallel=expert_parallel)
    res = write_sweep(query, path)
    best = res.best
    where = (f"; best speedup {best['speedup']:.2f} at batch {best['batch']}, seq_len "
             f"{best['seq_len']}, gamma {best['gamma']}"
             + (f" ({best['gpus']} GPUs)" if len(query.gpus) > 1 else "")
             + (" among the points that can run" if res.infeasible.left_out else "")
             if best else "; no point can run")
    from .output import say
    say(f"wrote {res.rows:,} rows to {path} ({human_bytes(res.bytes)}){where}")
    if res.infeasible.left_out:
        say(f"{res.infeasible.describe()}; they are in the file, with fits_memory / "
            f"within_context false")
