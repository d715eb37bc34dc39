"""What a validate run hands on: the ``predict`` command that reproduces its comparison, and the
warnings that say how far its fits can be trusted.

:func:`predict_command` rebuilds the run's comparison point(s) as ``predict`` flags: the model,
the fitted profile, the engine the comparison used (``DIR/engine.toml`` where it exists), the
GPU count, the self-draft's KV method and budgets, the batches, sequence lengths and gammas, the
acceptance, and the number formats the kernels ran in (fp32 on a CPU).  ``predict`` then prints
the same target, draft and verify step times as ``comparison.csv`` (its ``predicted`` column),
and its speedup is ``predicted_at_nominal_acceptance``.

:func:`fit_warnings` flags a poor in-sample fit (:data:`POOR_FIT_MAPE`).  torch-free.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ..perfmodel.number_formats import FORMAT_OF_DTYPE_BYTES, KV_CHOICES, WEIGHT_CHOICES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..perfmodel.architecture import ModelArch
    from .run import ValidateConfig

#: The console script's name, first word of the printed command.
PROGRAM = "magicdec-model"
#: In-sample MAPE (%) above which a fit is called poor.  docs/validation.md expects "tens of
#: percent" on a CPU (one gemm_bw cannot fit BLAS's matrix-vector and GEMM kernels both); above
#: 30% the fitted profile misses a typical kernel by a third, more than that compromise explains.
POOR_FIT_MAPE = 30.0


def _cli_name(choices: dict[str, str | None], fmt: str) -> str | None:
    """The ``--weight-dtype`` / ``--kv-dtype`` name of the number format ``fmt`` (None: none)."""
    return next((name for name, f in choices.items() if f == fmt), None)


def _ints(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def _model_spec(cfg: ValidateConfig, arch: ModelArch) -> str:
    """``--model`` for predict: validate's own, or for a checkpoint its registry record where one
    has its name (a named or GGUF checkpoint), else the checkpoint's folder (its config.json)."""
    from ..perfmodel.architecture import builtin_model_names

    if not cfg.checkpoint:
        return cfg.model
    return arch.name if arch.name in builtin_model_names() else str(cfg.checkpoint)


def predict_command(cfg: ValidateConfig, arch: ModelArch, run_model: ModelArch, profile_path: Path,
                    engine_path: Path | None, comparison: pd.DataFrame | None = None) -> list[str]:
    """The ``predict`` command (argv, the program first) that reproduces the run's comparison.

    ``arch`` is the model record as given (``--model`` or the checkpoint's config), ``run_model``
    what ran (its layers and dtype); ``engine_path`` is passed as ``--engine`` only where the file
    exists (else ``--engine`` as given to validate, if it was).  The acceptance is ``--acceptance``,
    or with real (greedy) acceptance the mean rate measured over the SD points of ``comparison``.
    """
    argv = [PROGRAM, "predict", "--model", _model_spec(cfg, arch), "--hardware", str(profile_path)]
    if engine_path is not None and Path(engine_path).is_file():
        argv += ["--engine", str(engine_path)]
    elif cfg.engine:
        argv += ["--engine", str(cfg.engine)]
    argv += ["--gpus", str(cfg.gpus), "--draft", "self", "--kv-method", cfg.kv_method,
             "--kv-budget", _ints(cfg.kv_budget), "--batch", _ints(cfg.batch),
             "--seq-len", _ints(cfg.seq_len), "--gamma", _ints(cfg.gamma)]
    acceptance = cfg.acceptance
    if acceptance is None and comparison is not None and "acceptance" in comparison:
        rates = comparison.loc[comparison["quantity"] == "speedup", "acceptance"].dropna()
        acceptance = float(rates.mean()) if len(rates) else None
    if acceptance is None or not math.isfinite(acceptance):
        acceptance = 0.8  # no SD point measured: step times do not depend on it
    argv += ["--acceptance", f"{min(max(acceptance, 0.0), 0.999):.3g}"]
    run_fmt = FORMAT_OF_DTYPE_BYTES.get(run_model.dtype_bytes, "bf16")
    for flag, choices, fmt in (("--weight-dtype", WEIGHT_CHOICES, run_model.weight_format()),
                               ("--kv-dtype", KV_CHOICES, run_fmt)):
        name = _cli_name(choices, fmt)
        if name is not None:
            argv += [flag, name]
    return argv


def command_line(argv: list[str]) -> str:
    """``argv`` as one line a POSIX shell runs as is (each word quoted where it needs it)."""
    return shlex.join(argv)


def layers_note(cfg: ValidateConfig, arch: ModelArch) -> str | None:
    """A note where the run measured a slice of the model: predict costs every layer."""
    if cfg.layers >= arch.num_layers:
        return None
    return (f"validate ran {cfg.layers} of {arch.name}'s {arch.num_layers} layers; the predict command "
            f"costs all {arch.num_layers}, so its layer work is about {arch.num_layers / cfg.layers:.3g}x "
            f"the comparison's")


def fit_warnings(fit_mape: float, fit_points: int, ar_mape: float | None = None,
                 ar_points: int = 0, ar_calibrated: bool = True) -> list[str]:
    """Warnings for a poor in-sample fit (MAPE above :data:`POOR_FIT_MAPE` %): of the profile to
    the microbenchmarks (``fit_mape`` over ``fit_points``), and of profile plus engine to the AR
    steps (``ar_mape`` over ``ar_points``: the ``MAPE AR (fit)`` of the run's last line; the
    engine calibrated on them, or the prior where ``ar_calibrated`` is false)."""
    out = []
    if math.isfinite(fit_mape) and fit_mape > POOR_FIT_MAPE:
        out.append(
            f"poor fit: the profile misses its own {fit_points} microbenchmarks by {fit_mape:.1f}% on "
            f"average (in-sample MAPE, above {POOR_FIT_MAPE:g}%). Every time predicted with "
            f"profile.toml (comparison.csv, the predict command) inherits errors of that size, so a "
            f"held-out MAPE below it is luck, not accuracy; report.html's residuals show which op "
            f"classes miss (on a shared machine, rerun when it is quiet)"
        )
    if ar_mape is not None and math.isfinite(ar_mape) and ar_mape > POOR_FIT_MAPE:
        engine = "the engine calibrated on them" if ar_calibrated else "the prior engine"
        out.append(
            f"poor fit: the profile with {engine} misses the {ar_points} measured AR steps by "
            f"{ar_mape:.1f}% (MAPE AR, above {POOR_FIT_MAPE:g}%): they do not describe this device's "
            f"decode steps, and the predicted SD steps and speedups can be off by as much"
        )
    return out
