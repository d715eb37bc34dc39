"""`predict` and `sweep`: the analytic model over a grid, printed or written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.sweep import Query, predict

from .options import (
    Acceptance,
    AcceptanceTable,
    Batch,
    DraftOpt,
    Gamma,
    Gpus,
    Hardware,
    Ideal,
    KvBudget,
    KvMethod,
    Model,
    SeqLen,
    acceptance_value,
    gamma_list,
    guard,
    int_list,
)
from .output import FORMATS, emit

PREDICT_EPILOG = """\
\b
Examples:
  magicdec-model predict --model llama-3.1-8b --draft self --kv-budget 512 \\
      --hardware a100-80gb-sxm --gpus 8 --batch 32,64,128,256 \\
      --seq-len 8000,32000,100000 --acceptance 0.8 --gamma auto
  magicdec-model predict --model llama-2-7b-32k --draft tinyllama-1.1b \\
      --kv-budget 512 --gpus 8 --batch 32 --seq-len 8k,32k --format json
  magicdec-model predict --model path/to/config.json --hardware my-gpu.toml \\
      --batch 64 --seq-len 32k --ideal
"""


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
) -> Query:
    """Parse the shared flags into a :class:`Query` (raises InputError on bad input)."""
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
    )


@guard
def predict_cmd(
    model: Model = "llama-3.1-8b",
    draft: DraftOpt = "self",
    kv_budget: KvBudget = "512",
    kv_method: KvMethod = "streamingllm",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Gpus = "1",
    batch: Batch = "32",
    seq_len: SeqLen = "32000",
    gamma: Gamma = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Predict SD speedup, step times, throughput, regime and memory fit for each (batch, seq_len)."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    query = build_query(model, draft, kv_budget, kv_method, hardware, gpus, batch, seq_len,
                        gamma, acceptance, acceptance_table, ideal, budget_policy="error")
    emit(predict(query), fmt)


@guard
def sweep_cmd(
    out: Annotated[str, typer.Option("--out", help="Output file: .csv or .parquet.")],
    model: Model = "llama-3.1-8b",
    draft: DraftOpt = "self",
    kv_budget: KvBudget = "512",
    kv_method: KvMethod = "streamingllm",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Gpus = "1",
    batch: Batch = "1,2,4,8,16,32,64,128,256",
    seq_len: SeqLen = "1k,2k,4k,8k,16k,32k,64k,128k",
    gamma: Gamma = "auto",
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    ideal: Ideal = False,
) -> None:
    """Write the whole grid (every flag's cross product) to CSV or Parquet.

    Unlike predict, a budget not below a sequence length is allowed here: the draft then reads
    the full KV, and the row's notes say so.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"--out {out!r} must end in .csv or .parquet")
    if not path.parent.exists():
        raise InputError(f"--out {out!r}: folder {str(path.parent)!r} does not exist")
    query = build_query(model, draft, kv_budget, kv_method, hardware, gpus, batch, seq_len,
                        gamma, acceptance, acceptance_table, ideal, budget_policy="cap")
    df = predict(query)
    if suffix == ".parquet":
        try:
            df.to_parquet(path, index=False)
        except ImportError:
            raise InputError(
                "--out *.parquet needs pyarrow: pip install 'magicdec-model[parquet]'"
            ) from None
    else:
        df.to_csv(path, index=False)
    best = df.loc[df["speedup"].idxmax()]
    typer.echo(
        f"wrote {len(df)} rows to {path}; best speedup {best['speedup']:.2f} at batch "
        f"{best['batch']}, seq_len {best['seq_len']}, gamma {best['gamma']}"
    )
