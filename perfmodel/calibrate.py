"""Fit an engine profile to measured step times (``magicdec-model calibrate``).

Input: forward-step times a user measured on their engine - normally autoregressive decode
steps, which any engine can log without implementing SD - at known (batch, sequence length).
The model of a measured step is the one ``predict`` uses (:func:`step.step_time`: the kernels
of the step under the hardware profile, plus the engine's cost per step), so a fitted engine
then predicts draft and verify steps it never saw.

Fit: ``scipy.optimize.least_squares`` on log-time residuals (relative errors) over the *free*
parameters, the others keeping the prior engine's values.  The free set is chosen from
:data:`CANDIDATES`, in that order, keeping a parameter only if the data can tell it apart from
those already kept: its column of the Jacobian (d log t / d theta at the prior, normalised)
must keep at least :data:`MIN_INDEPENDENCE` of its norm after projection on the kept columns.
A per-step constant such as ``launch_s`` (the kernel count of a step does not change) is thus
never fitted next to ``host_step_s``; it keeps its prior and the report says why.  At most n - 1
parameters are freed for n points (one residual degree of freedom at least).

Uncertainty: parameter covariance ``s^2 (J'J)^-1`` at the solution with ``s^2`` the residual
variance (sum of squared log residuals / (n - p)); k-fold (leave-one-out up to 30 points)
cross-validated MAPE.  The engine written carries both (:mod:`intervals` uses them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .architecture import ModelArch
from .drafts import make_draft
from .engine import EFFICIENCY_OVERRIDES, ENGINE_TERMS, EngineProfile
from .errors import InputError
from .hardware import HardwareProfile
from .inputs import MAX_BATCH, MAX_GPUS, MAX_SEQ_LEN, MAX_VERIFY_TOKENS, read_text
from .parallel import shard
from .physical import check_numbers
from .step import step_time
from .units import with_unit

#: Parameters calibrate may free, in order of preference (earlier ones win a collinear tie).
CANDIDATES = ("host_step_s", "attention_bw", "host_per_seq_s", "gemm_bw", "gemm_flops", "launch_s",
              "allreduce_latency_s", "allreduce_busbw")
#: Fraction of a Jacobian column's norm that must lie outside the span of the kept columns.
MIN_INDEPENDENCE = 0.2
#: A freed parameter whose standard error exceeds this multiple of the larger of its value and its
#: prior's standard error is not determined by the data.
MAX_RELATIVE_STDERR = 1.0
STEP_KINDS = ("decode", "verify", "draft")
REQUIRED_COLUMNS = ("batch", "seq_len", "step_s")
#: The columns of a validate measurements.csv that calibrate reads
MEASUREMENT_COLUMNS = ("key", "stage", "op", "status", "value", "batch", "seq_len", "gpus")
#: Units of the fit's internal coordinates (x = theta / scale): microseconds, fractions, GB/s.
_SCALE = {"allreduce_busbw": 1e9}
_LOO_MAX = 30
#: ``Calibration.cv_method`` when no fold could be held out (as many points as parameters + 1)
NOT_CROSS_VALIDATED = "none"
_COLLINEAR = "collinear"
_FOLDS = 5


def _scale(key: str) -> float:
    if key in _SCALE:
        return _SCALE[key]
    return 1.0 if key in EFFICIENCY_OVERRIDES else 1e-6


def _bounds(key: str) -> tuple[float, float]:
    if key in EFFICIENCY_OVERRIDES:
        return 1e-3, 1.0
    if key == "allreduce_busbw":
        return 1e-3, 1e6  # GB/s
    return 0.0, 1e6  # microseconds


@dataclass
class StepData:
    """Measured forward steps: one entry per row (SI units; ``kind`` decode/verify/draft)."""

    batch: np.ndarray
    seq_len: np.ndarray
    q: np.ndarray
    kv_len: np.ndarray
    gpus: np.ndarray
    kind: np.ndarray
    step_s: np.ndarray
    origin: str = ""

    def __len__(self) -> int:
        return len(self.step_s)

    def subset(self, mask: np.ndarray) -> StepData:
        """The rows where ``mask`` holds."""
        return StepData(self.batch[mask], self.seq_len[mask], self.q[mask], self.kv_len[mask],
                        self.gpus[mask], self.kind[mask], self.step_s[mask], self.origin)


def _show(value: object) -> str:
    """A cell value as the user wrote it (numpy scalars as plain Python numbers)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


#: Largest value of each column of a steps file (a bigger one is no decode, verify or draft step)
COLUMN_MAX = {"batch": MAX_BATCH, "seq_len": MAX_SEQ_LEN, "q": MAX_VERIFY_TOKENS, "kv_len": MAX_SEQ_LEN,
              "gpus": MAX_GPUS, "step_s": 60.0}


def _column(df: pd.DataFrame, col: str, origin: str, *, positive: bool = True) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    hi = COLUMN_MAX[col]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0)) | (values > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"steps {origin}: row {i + 1} has {col}={_show(df[col].iloc[i])}; allowed: a "
                         f"{'positive' if positive else 'non-negative'} finite number up to {hi:,g}")
    return values


def _integers(values: np.ndarray, col: str, origin: str) -> np.ndarray:
    bad = values != np.round(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"steps {origin}: row {i + 1} has {col}={_show(values[i])}; allowed: an integer")
    return values.astype(np.int64)


def steps_from_frame(df: pd.DataFrame, gpus: int, origin: str = "<frame>") -> StepData:
    """Validate a step table (see module docs for the columns) and return its rows."""
    if {"key", "stage", "op", "value"} <= set(df.columns):
        return _from_measurements(df, gpus, origin)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"steps {origin}: missing columns {missing}; need {list(REQUIRED_COLUMNS)} "
                         f"(optional: q, kv_len, gpus, kind)")
    if df.empty:
        raise InputError(f"steps {origin}: no rows")
    batch = _integers(_column(df, "batch", origin), "batch", origin)
    seq = _integers(_column(df, "seq_len", origin), "seq_len", origin)
    step = _column(df, "step_s", origin)
    q = _integers(_column(df, "q", origin), "q", origin) if "q" in df else np.ones(len(df), np.int64)
    kv = (_integers(_column(df, "kv_len", origin, positive=False), "kv_len", origin)
          if "kv_len" in df else seq.copy())
    g = (_integers(_column(df, "gpus", origin), "gpus", origin) if "gpus" in df
         else np.full(len(df), gpus, np.int64))
    if "kind" in df:
        kind = df["kind"].astype(str).str.strip().str.lower().to_numpy(dtype=object)
        bad = ~np.isin(kind, STEP_KINDS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"steps {origin}: row {i + 1} has kind={df['kind'].iloc[i]!r}; "
                             f"allowed: {', '.join(STEP_KINDS)}")
    else:
        kind = np.full(len(df), "decode", dtype=object)
    return StepData(batch, seq, q, kv, g, kind, step, origin)


def _from_measurements(df: pd.DataFrame, gpus: int, origin: str) -> StepData:
    """The validator's measurements.csv: its AR decode steps (``target_decode``) only."""
    missing = [c for c in MEASUREMENT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"steps {origin}: a validate measurements.csv without its columns {missing}; "
                         f"need {list(MEASUREMENT_COLUMNS)}")
    rows = df[(df["stage"] == "check") & (df["op"] == "target_decode") & (df["status"] == "ok")]
    if rows.empty:
        raise InputError(f"steps {origin}: a validate measurements.csv without measured AR steps "
                         f"(stage check, op target_decode, status ok)")
    rows = rows.drop_duplicates("key")
    frame = pd.DataFrame({"batch": rows["batch"], "seq_len": rows["seq_len"], "step_s": rows["value"],
                          "gpus": rows["gpus"]})
    return steps_from_frame(frame, gpus, origin)


def read_steps(path: str | Path, gpus: int) -> StepData:
    """Read a CSV of measured steps (or a validate measurements.csv); bad input -> InputError."""
    import io

    p = Path(path)
    text = read_text(p, "--steps")  # exists, a file, readable UTF-8 text, at most 64 MiB
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"--steps {p}: not a readable CSV ({exc.__class__.__name__})") from None
    return steps_from_frame(df, gpus, str(p))


# ---------------------------------------------------------------------- the model of a row
@dataclass(frozen=True)
class StepModel:
    """What a measured row is costed with: target and draft records, hardware, the prior engine."""

    target: ModelArch
    draft: ModelArch
    hardware: HardwareProfile
    engine: EngineProfile

    def times(self, data: StepData, engine: EngineProfile | None = None) -> np.ndarray:
        """Predicted seconds of every row under ``engine`` (default: the prior)."""
        engine = engine or self.engine
        hw, _ = engine.apply_to(self.hardware)
        out = np.empty(len(data))
        for kind in np.unique(data.kind):
            arch = self.draft if kind == "draft" else self.target
            for G in np.unique(data.gpus):
                m = (data.kind == kind) & (data.gpus == G)
                if not m.any():
                    continue
                sh = shard(arch, int(G))
                st = step_time(arch, sh, hw, data.batch[m].astype(float), data.q[m].astype(float),
                               data.kv_len[m].astype(float), engine)
                out[m] = st.time
        return out


def _prior_value(model: StepModel, key: str) -> float:
    e = model.engine
    if key in e.terms:
        return e.terms[key]
    if key in e.efficiency:
        return e.efficiency[key]
    hw, _ = e.apply_to(model.hardware)
    return hw.efficiency[key]


# ---------------------------------------------------------------------- the fit
@dataclass
class Calibration:
    """A fitted engine and how well it fits (MAPE in percent, standard errors in SI units)."""

    engine: EngineProfile
    fitted: list[str]
    kept_prior: dict[str, str]
    values: dict[str, float]
    stderr: dict[str, float]
    covariance: np.ndarray
    predicted: np.ndarray
    measured: np.ndarray
    residual_sd_log: float
    dof: int
    mape_in_sample: float
    mape_cv: float
    cv_method: str
    cv_predicted: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _engine_at(model: StepModel, keys: list[str], x: np.ndarray) -> EngineProfile:
    return model.engine.with_values({k: float(v) * _scale(k) for k, v in zip(keys, x, strict=True)})


def _log_residuals(model: StepModel, data: StepData, keys: list[str], x: np.ndarray) -> np.ndarray:
    t = model.times(data, _engine_at(model, keys, x))
    return np.log(np.maximum(t, 1e-15)) - np.log(data.step_s)


def _jacobian(model: StepModel, data: StepData, keys: list[str], x: np.ndarray) -> np.ndarray:
    base = _log_residuals(model, data, keys, x)
    jac = np.empty((len(data), len(keys)))
    for j in range(len(keys)):
        lo, hi = _bounds(keys[j])
        h = max(abs(x[j]), 1.0) * 1e-6
        if x[j] + h > hi:
            h = -h
        xp = x.copy()
        xp[j] += h
        jac[:, j] = (_log_residuals(model, data, keys, xp) - base) / h
    return jac


def choose_free(model: StepModel, data: StepData, candidates: tuple[str, ...] = CANDIDATES,
                ) -> tuple[list[str], dict[str, str]]:
    """Parameters the data can determine (in candidate order) and, for the others, why not."""
    keys = [k for k in candidates]
    x0 = np.asarray([_prior_value(model, k) / _scale(k) for k in keys])
    jac = _jacobian(model, data, keys, x0)
    free: list[str] = []
    why: dict[str, str] = {}
    basis: list[np.ndarray] = []
    for j, key in enumerate(keys):
        col = jac[:, j]
        norm = float(np.linalg.norm(col))
        if norm < 1e-12:
            why[key] = "no measured step depends on it"
            continue
        v = col / norm
        for b in basis:
            v = v - (v @ b) * b
        left = float(np.linalg.norm(v))
        if left < MIN_INDEPENDENCE:
            why[key] = _COLLINEAR
            continue
        if len(free) >= len(data) - 1:
            why[key] = f"{len(data)} steps determine at most {len(data) - 1} parameters"
            continue
        free.append(key)
        basis.append(v / left)
    return free, why


def _fit(model: StepModel, data: StepData, keys: list[str]):
    """Least-squares solution (internal coordinates), its residuals and covariance (SI units)."""
    x0 = np.asarray([_prior_value(model, k) / _scale(k) for k in keys])
    res = _solve(model, data, keys, x0)
    dof = len(data) - len(keys)
    s2 = float(res.fun @ res.fun) / dof
    jac = _jacobian(model, data, keys, res.x)
    try:
        cov_x = s2 * np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        cov_x = s2 * np.linalg.pinv(jac.T @ jac)
    scale = np.asarray([_scale(k) for k in keys])
    return res.x, res.fun, cov_x * np.outer(scale, scale)


def _solve(model: StepModel, data: StepData, keys: list[str], x0: np.ndarray):
    from scipy.optimize import least_squares

    lo, hi = (np.asarray(v) for v in zip(*(_bounds(k) for k in keys), strict=True))
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    return least_squares(lambda x: _log_residuals(model, data, keys, x), x0, bounds=(lo, hi),
                         x_scale="jac", max_nfev=200 * len(keys), method="trf")


def calibrate(model: StepModel, data: StepData, *, fit: list[str] | None = None,
              candidates: tuple[str, ...] = CANDIDATES, name: str = "calibrated",
              description: str = "", date: str = "", origin: str = "") -> Calibration:
    """Fit the engine's free parameters to ``data``.

    The free set is chosen among ``candidates`` (:func:`choose_free`) unless ``fit`` names it.
    """
    from scipy import stats

    if len(data) < 2:
        raise InputError(f"steps {data.origin}: {len(data)} step(s); calibrate needs at least 2")
    if model.draft is None and bool(np.any(data.kind == "draft")):
        raise InputError(f"steps {data.origin}: {int(np.sum(data.kind == 'draft'))} draft row(s), but "
                         f"--draft ngram runs no draft forward step; allowed: the --draft that ran them "
                         f"(self, a registry model, eagle, mtp)")
    points = distinct_points(data)
    if points < 2:
        raise InputError(f"steps {data.origin}: all {len(data)} steps are at one point (same batch, "
                         f"seq_len, q, kv_len, gpus and kind), which determines no parameter and no "
                         f"error; calibrate needs steps at 2 or more distinct points")
    if fit is None:
        keys, why = choose_free(model, data, candidates)
        keys = keys[: points - 1]
    else:
        if not fit:
            raise InputError(f"--fit names no parameter; allowed: comma-separated names among "
                             f"{', '.join(CANDIDATES)}")
        for k in fit:
            if k not in CANDIDATES:
                raise InputError(f"--fit {k!r} is not a parameter calibrate can fit; allowed: "
                                 f"{', '.join(CANDIDATES)}")
        keys = list(dict.fromkeys(fit))
        if len(keys) >= len(data):
            raise InputError(f"--fit frees {len(keys)} parameter(s) but the steps file has "
                             f"{len(data)} point(s); allowed: fewer free parameters than points")
        if len(keys) >= points:
            raise InputError(f"--fit frees {len(keys)} parameter(s) but the steps are at {points} distinct "
                             f"point(s); allowed: fewer free parameters than distinct points")
        told, not_told = choose_free(model, data, tuple(keys))
        if not_told:
            k, reason = next(iter(not_told.items()))
            if reason == _COLLINEAR:
                reason = f"not told apart from {', '.join(told) or 'the others'} by these steps (collinear)"
            raise InputError(f"--fit {','.join(keys)}: {k}: {reason}, so its standard error is "
                             f"undetermined; allowed: parameters these steps determine"
                             + (f", e.g. --fit {','.join(told)}" if told else ""))
        why = {k: "not in --fit" for k in candidates if k not in keys}
    if not keys:
        raise InputError(f"steps {data.origin}: no engine parameter can be determined from these steps")
    dropped: dict[str, str] = {}
    while True:
        x, resid, cov = _fit(model, data, keys)
        values = {k: float(v) * _scale(k) for k, v in zip(keys, x, strict=True)}
        stderr = {k: float(np.sqrt(max(cov[i, i], 0.0))) for i, k in enumerate(keys)}
        # not determined: the standard error exceeds both the fitted value and what the prior
        # already knew (a term fitted to 0 +- 0.1 ms against a prior of 2 +- 0.9 ms is determined)
        scale = {k: max(abs(values[k]), model.engine.stderr.get(k, 0.0), 1e-300) for k in keys}
        rse = {k: stderr[k] / scale[k] for k in keys}
        loose = [k for k in keys if rse[k] > MAX_RELATIVE_STDERR]
        if fit is not None or not loose:
            break
        worst = loose[-1]  # the last in the candidates' order: the earlier ones are preferred
        dropped[worst] = (f"not determined by these steps (standard error "
                          f"{with_unit(worst, stderr[worst])} exceeds its fitted value "
                          f"{with_unit(worst, values[worst])} and its prior's)")
        # the dropped term frees its place: the candidates are chosen again without it, so a later
        # one that the point count or collinearity with it had excluded may be fitted instead
        keys, why = choose_free(model, data, tuple(c for c in candidates if c not in dropped))
        why.update(dropped)
        if not keys:
            raise InputError(f"steps {data.origin}: no engine parameter is determined by these "
                             f"{len(data)} steps; the prior engine applies as it is")
    for k, text in why.items():
        if text == _COLLINEAR:
            why[k] = f"not told apart from {', '.join(keys)} by these steps (collinear)"
    n, p = len(data), len(keys)
    dof = n - p
    s2 = float(resid @ resid) / dof
    engine_fit = _engine_at(model, keys, x)
    predicted = model.times(data, engine_fit)
    mape_in = float(np.mean(np.abs(predicted / data.step_s - 1.0)) * 100)
    cv_pred, cv_method = _cross_validate(model, data, keys, x)
    cov = np.asarray(cov)
    if np.all(np.isfinite(cv_pred)):
        mape_cv = float(np.mean(np.abs(cv_pred / data.step_s - 1.0)) * 100)
    else:  # a held-out fold left no more points than parameters: not cross-validated
        mape_cv, cv_method = float("nan"), NOT_CROSS_VALIDATED
    t80 = float(stats.t.ppf(0.5 + 0.8 / 2, dof))
    check_numbers({**{f"{k} (fitted)": values[k] for k in keys}, **{f"{k} (standard error)": stderr[k]
                                                                     for k in keys},
                   "covariance": cov, "in-sample MAPE": mape_in, "residual spread": np.sqrt(s2),
                   "predicted step time": predicted}, "calibration", positive=("predicted step time",))

    # the engine profile written: fitted values, standard errors, sources, the calibration table
    prior = model.engine
    terms = dict(prior.terms)
    eff = dict(prior.efficiency)
    errs = dict(prior.stderr)
    sources = dict(prior.sources)
    what = (f"fitted by magicdec-model calibrate on {date or 'this date'} from {origin or data.origin}: "
            f"{n} measured step(s) of {model.target.name} on {model.hardware.name}; scipy "
            f"least_squares on log step times")
    for k in keys:
        if k in ENGINE_TERMS:
            terms[k] = values[k]
        else:
            eff[k] = values[k]
        errs[k] = stderr[k]
        sources[k] = what
    for k in (set(prior.parameters) & set(why)):
        src = prior.sources.get(k, "")
        if not src.startswith("not fitted"):
            sources[k] = f"not fitted ({why[k]}); prior: {src}"
    calib = {
        "file": str(origin or data.origin),
        "date": date,
        "model": model.target.name,
        "hardware": model.hardware.name,
        "gpus": sorted({int(g) for g in data.gpus}),
        "points": n,
        "parameters": keys,
        "covariance": [[float(c) for c in row] for row in cov],
        "residual_sd_log": float(np.sqrt(s2)),
        "dof": dof,
        "t_quantile_80": t80,
        "mape_in_sample_pct": round(mape_in, 3),
        **({"mape_cv_pct": round(mape_cv, 3)} if np.isfinite(mape_cv) else {}),
        "cv": cv_method,
        "kept_prior": {k: why[k] for k in candidates if k in why},
        "prior_engine": prior.name,
    }
    engine = EngineProfile(name=name, description=description or f"{name}: calibrated engine",
                           terms=terms, efficiency=eff, stderr=errs, sources=sources,
                           calibration=calib, hardware=model.hardware.name if eff else "")
    return Calibration(engine, keys, {k: why[k] for k in candidates if k in why}, values, stderr, cov,
                       predicted, data.step_s, float(np.sqrt(s2)), dof, mape_in, mape_cv, cv_method,
                       cv_pred)


def distinct_points(data: StepData) -> int:
    """How many different (batch, seq_len, q, kv_len, gpus, kind) points the steps were measured at."""
    return len(set(zip(data.batch.tolist(), data.seq_len.tolist(), data.q.tolist(), data.kv_len.tolist(),
                       data.gpus.tolist(), data.kind.tolist(), strict=True)))


def _cross_validate(model: StepModel, data: StepData, keys: list[str], x: np.ndarray,
                    ) -> tuple[np.ndarray, str]:
    """Held-out predictions: leave-one-out up to 30 points, else 5-fold (fixed seed)."""
    n = len(data)
    if n <= _LOO_MAX:
        folds = np.arange(n)
        method = "leave-one-out"
    else:
        folds = np.random.default_rng(0).permutation(n) % _FOLDS
        method = f"{_FOLDS}-fold"
    pred = np.empty(n)
    for f in np.unique(folds):
        test = folds == f
        train = data.subset(~test)
        if len(train) <= len(keys):
            pred[test] = np.nan
            continue
        r = _solve(model, train, keys, x)
        pred[test] = model.times(data.subset(test), _engine_at(model, keys, r.x))
    return pred, method


def step_model(target: ModelArch, hardware: HardwareProfile, prior: EngineProfile,
               draft: str = "self") -> StepModel:
    """The :class:`StepModel` of a target (and the draft its ``draft`` rows ran)."""
    d = make_draft(draft, target, "streamingllm" if draft == "self" else "full")
    return StepModel(target, d.arch, hardware, prior)
