"""`calibrate`: fit an engine profile to measured (autoregressive) step times."""

from __future__ import annotations

import shlex
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError

from .options import DraftOpt, Hardware, Model, guard, int_list

#: engine.DEFAULT_ENGINE and calibrate.CANDIDATES, written out so that --help imports no model
#: code (tests check they agree)
PRIOR_DEFAULT = "generic"
CANDIDATES_HELP = ("host_step_s, attention_bw, host_per_seq_s, gemm_bw, gemm_flops, launch_s, "
                   "allreduce_latency_s, allreduce_busbw")

CALIBRATE_EPILOG = """\
\b
The steps CSV has columns batch, seq_len, step_s (seconds per forward step) and optionally q
(tokens per sequence in the step, default 1), kv_len (KV tokens read, default seq_len), gpus
(default --gpus) and kind (decode, verify or draft; default decode). A validate
measurements.csv is read too (its AR decode steps).
\b
Examples:
  magicdec-model calibrate --steps my_ar_steps.csv --model llama-2-7b-32k \\
      --hardware a100-80gb-sxm --gpus 8 --out my-engine.toml
  magicdec-model predict --model llama-2-7b-32k --gpus 8 --batch 32 --seq-len 8k \\
      --engine my-engine.toml
"""


def _fmt(key: str, value: float) -> str:
    from magicdec_model.perfmodel.units import with_unit
    return with_unit(key, value)


@guard
def calibrate_cmd(
    steps: Annotated[str, typer.Option("--steps", help="CSV of measured step times (see below).")],
    out: Annotated[str, typer.Option("--out", help="Engine TOML to write (loadable by --engine).")],
    model: Model = "llama-3.1-8b",
    hardware: Hardware = "a100-80gb-sxm",
    gpus: Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPUs of rows without a gpus "
                                      "column.")] = "1",
    draft: DraftOpt = "self",
    prior: Annotated[str, typer.Option("--prior", help="Engine whose values the parameters that "
                                       "are not fitted keep.")] = PRIOR_DEFAULT,
    fit: Annotated[str | None, typer.Option(
        "--fit", help=f"Parameters to free, comma-separated (default: chosen from the data among "
                      f"{CANDIDATES_HELP}).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Engine name (default: the file stem).")] = None,
    description: Annotated[str | None, typer.Option("--description", help="One-line description.")] = None,
) -> None:
    """Fit an engine profile to measured step times; print the fit and write the engine TOML."""
    from magicdec_model.perfmodel.architecture import get_model
    from magicdec_model.perfmodel.calibrate import calibrate, read_steps, step_model
    from magicdec_model.perfmodel.engine import engine_to_toml, load_engine
    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.perfmodel.inputs import nonempty
    from magicdec_model.perfmodel.outfiles import atomic_write_text, check_not_an_input, check_out_file
    from magicdec_model.perfmodel.parallel import shard
    path = check_out_file(out, (".toml",))
    check_not_an_input(path, {"--steps": steps, "--hardware": hardware, "--prior": prior, "--model": model})
    nonempty(prior, "--prior", "an engine name (see 'magicdec-model engines list') or a path to an engine "
             ".toml")
    g = int_list(gpus, "--gpus")
    if len(g) != 1:
        raise InputError(f"--gpus {gpus!r}: calibrate takes one default GPU count")
    target = get_model(model)
    hw = load_profile(hardware)
    data = read_steps(steps, g[0])
    for G in sorted({int(x) for x in data.gpus}):
        shard(target, G)
    keys = None if fit is None else [k.strip() for k in fit.split(",") if k.strip()]
    sm = step_model(target, hw, load_engine(prior), draft)
    today = date.today().isoformat()
    what = description or f"calibrated by magicdec-model calibrate from {Path(steps).name}"
    res = calibrate(sm, data, fit=keys, name=name or path.stem, description=what, date=today,
                    origin=Path(steps).name)
    atomic_write_text(path, engine_to_toml(
        res.engine, header=f"Written by magicdec-model calibrate on {today} from {steps}."))
    _print(res, target.name, hw.name)
    from .output import command, say
    say(f"wrote {path}; use it with:")
    command(["magicdec-model predict", f"--model {shlex.quote(model)}", f"--hardware {shlex.quote(hardware)}",
             f"--gpus {g[0]}", f"--engine {shlex.quote(str(path))}"])


def _print(res, model: str, hw: str) -> None:
    from magicdec_model.perfmodel.calibrate import NOT_CROSS_VALIDATED
    from magicdec_model.perfmodel.intervals import LEVEL

    from .output import Column, console, say, show
    con = console()
    say(f"Calibrated on {len(res.measured)} measured steps of {model} on {hw}", con)
    cols = [Column("parameter", left=True), Column("value"), Column("std. error"),
            Column("status", left=True)]
    e = res.engine
    rows = [[key, _fmt(key, e.value(key)), _fmt(key, e.stderr.get(key, 0.0)),
             "fitted" if key in res.fitted else "prior"] for key in e.parameters]
    show(cols, rows, con)
    for key, why in res.kept_prior.items():
        where = "engine prior" if key in e.parameters else "hardware profile"
        say(f"not fitted: {key} ({where}): {why}", con, "dim")
    cv = (f"{res.cv_method} cross-validated {res.mape_cv:.1f}%" if res.cv_method != NOT_CROSS_VALIDATED
          else f"not cross-validated ({len(res.measured)} steps for {len(res.fitted)} parameter(s): holding "
               f"one out leaves none spare)")
    say(f"MAPE in-sample {res.mape_in_sample:.1f}%, {cv}; residual spread {res.residual_sd_log:.3f} "
        f"(log), {res.dof} degrees of freedom; predictions with this engine carry {LEVEL:.0%} intervals", con)
