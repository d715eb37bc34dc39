"""The validator's own engine: calibrated on its measured AR steps, then used to predict SD steps.

``validate`` measures autoregressive decode steps and SD-loop steps of the same decoder.  Only the
AR steps calibrate the engine (:func:`perfmodel.calibrate.calibrate`), on top of the hardware
profile fitted to the microbenchmarks; the draft and verify steps and the SD speedup are then
predicted with that engine and compared with what was measured (held out, :mod:`.check`).

The free engine terms are the host time per step and per sequence; the kernel efficiencies come
from the microbenchmark fit (an in-situ GEMM bandwidth fitted to the AR steps was tried and
dropped: on a CPU whose GEMMs run at half the bandwidth from 4 rows on, the 1-2-row AR steps
carried their efficiency over to the 4-16-row verify steps and made those worse), and the
per-kernel cost is the fitted profile's ``kernel_fixed_s`` (each microbenchmark times one decoder
op, dispatch included), so ``launch_s`` stays 0.  The SD-loop bookkeeping per round is not in AR
data: it keeps the prior engine's value and is
compared with the measured ``sd_loop`` as a held-out quantity.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..perfmodel.architecture import ModelArch
from ..perfmodel.calibrate import Calibration, StepModel, calibrate, steps_from_frame
from ..perfmodel.engine import DEFAULT_ENGINE, EngineProfile, load_engine
from ..perfmodel.errors import InputError
from ..perfmodel.hardware import HardwareProfile

#: Engine terms validate fits to its AR steps.
ENGINE_CANDIDATES = ("host_step_s", "host_per_seq_s")


def calibrate_engine(measurements: pd.DataFrame, run_model: ModelArch, profile: HardwareProfile,
                     gpus: int, *, date: str, device: str,
                     prior: str | EngineProfile = DEFAULT_ENGINE) -> tuple[Calibration | None, str]:
    """Calibrate on the measured AR steps: ``(calibration, "")``, or ``(None, why)`` where the
    prior is used instead: why in words, one of fewer than 2 AR steps measured (how many) or
    AR steps that determine no engine term (how many, and which terms were tried).

    ``prior`` (an engine or its name/path, ``--engine``) gives the starting values and prior
    standard errors, and the terms the AR steps leave undetermined (SD-loop bookkeeping among them).
    """
    try:
        data = steps_from_frame(measurements, gpus, "measurements.csv")
    except InputError:
        return None, ("no AR step was measured (every AR check point failed or none was run; see the "
                      "status column of measurements.csv): the calibration needs at least 2")
    if len(data) < 2:
        return None, (f"only {len(data)} AR step was measured; the calibration needs at least 2 "
                      f"(give more --batch or --seq-len values)")
    start = prior if isinstance(prior, EngineProfile) else load_engine(prior)
    prior_engine = start.with_values({"launch_s": 0.0})
    sources = dict(prior_engine.sources)
    sources["launch_s"] = ("validate: each microbenchmark times one decoder op with its dispatch, so "
                           "the per-op cost is the fitted profile's kernel_fixed_s; no extra launch cost")
    base = replace(prior_engine, sources=sources, stderr={**prior_engine.stderr, "launch_s": 0.0})
    model = StepModel(run_model, run_model, profile, base)
    try:
        return calibrate(
            model, data, candidates=ENGINE_CANDIDATES, name="validate-engine",
            description=f"The validator's own SD loop and decoder on {device}, calibrated on its "
                        f"{len(data)} measured AR steps",
            date=date, origin="measurements.csv (stage check, op target_decode)",
        ), ""
    except InputError:  # nothing in the AR steps determines an engine term: the prior applies
        return None, (f"the {len(data)} measured AR steps determine no engine term (the standard "
                      f"error of each of {', '.join(ENGINE_CANDIDATES)} exceeds its fitted value and "
                      f"the prior's: this device's host cost per step is below what they resolve)")
