"""Fit a hardware profile's efficiency parameters to microbenchmark times (scipy least_squares).

The model of a measured point is the one perfmodel predicts with (:func:`perfmodel.roofline.
op_time` for gemm/attention/elementwise ops, :func:`perfmodel.parallel.allreduce_time` for
all-reduces), evaluated with a candidate ``[efficiency]`` table; the datasheet stays fixed.

Residuals are ``log(t_model) - log(t_measured)`` (relative errors), each weighted by
``sqrt(t_measured / mean t_measured)``: the profile predicts step times, which are sums of op
times, so an op's relative error matters in proportion to its share of a step.  Unweighted, a
10 us kernel weighed as much as a 10 ms LM head, and on a CPU whose small GEMMs stream at 50-70%
of the bandwidth its large ones reach, the compromise over-predicted the LM head (two thirds of a
small model's step) by ~20% and every AR step with it.  Parameters are searched in transformed
coordinates with bounds: fractions as ``log f`` in ``[log 1e-4, 0]`` (so ``0 < f <= 1``), the
all-reduce bus bandwidth as ``log busbw``, times in microseconds in ``[0, 1e6]``.  The loss is
soft-L1 (robust to the odd disturbed timing) and the fit starts from the starting profile and two
other points, keeping the best.

A parameter the data cannot determine keeps its starting value and is reported as not fitted:
an op class with no measured point, the all-reduce terms without multi-GPU points, the per-hop
all-reduce latency unless two or more GPU counts were measured, and any parameter on which no
point's modelled time depends at the solution (e.g. a FLOP fraction when every point of its
class is memory-bound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..perfmodel.hardware import EFFICIENCY_KEYS, OP_CLASSES, OPTIONAL_EFFICIENCY, HardwareProfile
from ..perfmodel.ops import OpCost
from ..perfmodel.roofline import op_time

FRACTION_MIN = 1e-4
TIME_MAX_US = 1e6


@dataclass
class FitData:
    """Measured points: op class, per-GPU FLOPs/bytes/message bytes, GPU count, median seconds."""

    op_class: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    comm_bytes: np.ndarray
    gpus: np.ndarray
    measured: np.ndarray
    dtype_bytes: int = 2
    labels: list[str] = field(default_factory=list)
    #: activation rows per weight read of GEMM points (batch x q); 0 where not a projection
    tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = np.zeros(len(self.measured))

    def subset(self, mask: np.ndarray) -> FitData:
        """The points where ``mask`` holds."""
        return FitData(self.op_class[mask], self.flops[mask], self.bytes[mask], self.comm_bytes[mask],
                       self.gpus[mask], self.measured[mask], self.dtype_bytes,
                       [lab for lab, m in zip(self.labels, mask, strict=False) if m], self.tokens[mask])

    @classmethod
    def from_costs(
        cls,
        costs: Sequence[OpCost],
        gpus: Sequence[int],
        measured: Sequence[float],
        dtype_bytes: int,
        labels: Sequence[str] = (),
    ) -> FitData:
        def arr(attr: str) -> np.ndarray:
            return np.asarray([float(np.asarray(getattr(c, attr)).reshape(-1)[0]) for c in costs])

        return cls(
            op_class=np.asarray([c.op_class for c in costs], dtype=object),
            flops=arr("flops"),
            bytes=arr("bytes"),
            comm_bytes=arr("comm_bytes"),
            gpus=np.asarray(gpus, dtype=int),
            measured=np.asarray(measured, dtype=float),
            dtype_bytes=dtype_bytes,
            labels=list(labels),
            tokens=arr("tokens"),
        )

    def __len__(self) -> int:
        return len(self.measured)


def model_times(profile: HardwareProfile, data: FitData) -> np.ndarray:
    """Time (seconds) perfmodel assigns to each point of ``data`` under ``profile``."""
    out = np.zeros(len(data))
    for cls in (*OP_CLASSES, "allreduce"):
        mask = data.op_class == cls
        if not mask.any():
            continue
        if cls == "allreduce":
            for g in np.unique(data.gpus[mask]):
                m = mask & (data.gpus == g)
                zero = np.zeros(int(m.sum()))
                op = OpCost("fit", cls, zero, zero, 1, comm_bytes=data.comm_bytes[m])
                out[m] = op_time(op, profile, int(g), data.dtype_bytes).time
        else:
            op = OpCost("fit", cls, data.flops[mask], data.bytes[mask], 1, tokens=data.tokens[mask])
            out[mask] = op_time(op, profile, 1, data.dtype_bytes).time
    return out


@dataclass
class FitResult:
    """A fitted profile, what was fitted and how well it matches the data."""

    profile: HardwareProfile
    fitted: list[str]
    not_fitted: dict[str, str]
    predicted: np.ndarray
    log_residuals: np.ndarray
    success: bool
    message: str

    @property
    def rms_log_residual(self) -> float:
        r = self.log_residuals
        return float(np.sqrt(np.mean(r**2))) if r.size else float("nan")

    def mape(self, data: FitData, cls: str | None = None) -> float:
        """Mean absolute percentage error of the fit on its own data (%), optionally one class."""
        m = np.ones(len(data), bool) if cls is None else (data.op_class == cls)
        if not m.any():
            return float("nan")
        return float(np.mean(np.abs(self.predicted[m] / data.measured[m] - 1.0)) * 100)


def _kind(key: str) -> str:
    if key.endswith("_bw") or key.endswith("_flops"):
        return "fraction"
    if key == "allreduce_busbw":
        return "log"
    return "time"


def _to_x(key: str, v: float) -> float:
    kind = _kind(key)
    if kind == "fraction":
        return math.log(min(max(v, FRACTION_MIN * 1.01), 1.0 - 1e-9))
    if kind == "log":
        return math.log(max(v, 1.0))
    return min(max(v * 1e6, 1e-6), TIME_MAX_US * 0.99)


def _from_x(key: str, x: float) -> float:
    kind = _kind(key)
    if kind in ("fraction", "log"):
        return min(math.exp(x), 1.0) if kind == "fraction" else math.exp(x)
    return max(x, 0.0) * 1e-6


def _bounds(key: str) -> tuple[float, float]:
    kind = _kind(key)
    if kind == "fraction":
        return math.log(FRACTION_MIN), 0.0
    if kind == "log":
        return math.log(1e3), math.log(1e15)
    return 0.0, TIME_MAX_US


def identifiable(data: FitData) -> tuple[list[str], dict[str, str]]:
    """Parameters the data can determine, and for the others why not."""
    free: list[str] = []
    fixed: dict[str, str] = {}
    for cls in OP_CLASSES:
        n = int((data.op_class == cls).sum())
        for k in (f"{cls}_bw", f"{cls}_flops"):
            if n:
                free.append(k)
            else:
                fixed[k] = f"no {cls} point measured"
    gemm = data.op_class == "gemm"
    if (gemm & (data.tokens == 1)).any() and (gemm & (data.tokens > 1)).any():
        free.append("gemv_bw")  # one-row projections run as matrix-vector kernels
    if (data.op_class != "allreduce").any():
        free.append("kernel_fixed_s")
    else:
        fixed["kernel_fixed_s"] = "no kernel point measured"
    ar = (data.op_class == "allreduce") & (data.gpus > 1)
    if ar.any():
        free += ["allreduce_latency_s", "allreduce_busbw"]
        if len(np.unique(data.gpus[ar])) >= 2:
            free.append("allreduce_hop_latency_s")
        else:
            fixed["allreduce_hop_latency_s"] = (
                "all-reduce measured at one GPU count only: the per-hop latency cannot be told "
                "apart from the base latency"
            )
    else:
        for k in ("allreduce_latency_s", "allreduce_hop_latency_s", "allreduce_busbw"):
            fixed[k] = "no multi-GPU all-reduce point measured"
    return free, fixed


def fit_profile(start: HardwareProfile, data: FitData) -> FitResult:
    """Fit ``start``'s efficiency parameters to ``data`` (points with positive measured times)."""
    from scipy.optimize import least_squares

    ok = np.isfinite(data.measured) & (data.measured > 0)
    if not ok.all():
        data = data.subset(ok)
    free, fixed = identifiable(data)
    if not len(data) or not free:
        pred = model_times(start, data)
        return FitResult(start, [], fixed | dict.fromkeys(free, "no data"), pred,
                         np.log(pred / data.measured) if len(data) else np.zeros(0), False, "no data")
    base = dict(start.efficiency)
    if "gemv_bw" in free and "gemv_bw" not in base:
        base["gemv_bw"] = base["gemm_bw"]  # start from the profile's GEMM bandwidth
    log_meas = np.log(data.measured)
    weight = np.sqrt(data.measured / data.measured.mean())
    lo, hi = zip(*(_bounds(k) for k in free), strict=True)

    def profile_at(x: np.ndarray) -> HardwareProfile:
        eff = dict(base)
        eff.update({k: _from_x(k, float(v)) for k, v in zip(free, x, strict=True)})
        return replace(start, efficiency=eff)

    def residuals(x: np.ndarray) -> np.ndarray:
        t = model_times(profile_at(x), data)
        return (np.log(np.maximum(t, 1e-15)) - log_meas) * weight

    starts = [np.asarray([_to_x(k, base[k]) for k in free])]
    for frac in (0.5, 0.1):
        alt = {k: (frac if _kind(k) == "fraction" else base[k]) for k in free}
        if "kernel_fixed_s" in alt:
            alt["kernel_fixed_s"] = float(np.min(data.measured)) / 2
        starts.append(np.asarray([_to_x(k, alt[k]) for k in free]))
    best = None
    for x0 in starts:
        x0 = np.clip(x0, np.asarray(lo) + 1e-9, np.asarray(hi) - 1e-9)
        res = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.25,
                            x_scale="jac", max_nfev=400 * len(free))
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    # parameters on which no point depends at the solution keep their starting values
    col = np.linalg.norm(best.jac, axis=0)
    x = best.x.copy()
    fitted = []
    for i, k in enumerate(free):
        if col[i] <= 1e-9 * max(col.max(), 1e-30):
            x[i] = _to_x(k, base[k])
            fixed[k] = "no measured point depends on it at the fitted values"
        else:
            fitted.append(k)
    profile = profile_at(x)
    pred = model_times(profile, data)
    return FitResult(
        profile=profile,
        fitted=fitted,
        not_fitted={k: fixed[k] for k in EFFICIENCY_KEYS + OPTIONAL_EFFICIENCY if k in fixed},
        predicted=pred,
        log_residuals=np.log(pred) - log_meas,
        success=bool(best.success),
        message=str(best.message),
    )


def fitted_profile(
    result: FitResult,
    data: FitData,
    *,
    name: str,
    description: str,
    device: str,
    date: str,
    extra_meta: dict | None = None,
) -> HardwareProfile:
    """The fitted profile with sources per fitted value and a ``[meta]`` table (device, residuals)."""
    start = result.profile
    sources = dict(start.sources)
    for k in result.fitted:
        sources[k] = (
            f"fitted by magicdec-model validate on {date}, {device}: scipy least_squares on "
            f"{len(data)} microbenchmark points"
        )
    for k, why in result.not_fitted.items():
        prior = start.sources.get(k, "starting profile")
        sources[k] = f"not fitted ({why}); kept from the starting profile: {prior}"
    meta = {
        "fitted": True,
        "device": device,
        "date": date,
        "points": len(data),
        "fitted_parameters": list(result.fitted),
        "not_fitted": list(result.not_fitted),
        "rms_log_residual": round(result.rms_log_residual, 6),
        "fit_mape_percent": round(result.mape(data), 3),
        "fit_mape_percent_by_class": {
            c: round(result.mape(data, c), 3)
            for c in (*OP_CLASSES, "allreduce")
            if (data.op_class == c).any()
        },
        "optimizer": f"scipy.optimize.least_squares (soft_l1, log-time residuals): {result.message}",
    }
    meta.update(extra_meta or {})
    return replace(start, name=name, description=description, sources=sources, meta=meta, path="")
