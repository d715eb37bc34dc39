"""Prediction intervals of step times and speedup from the engine's parameter uncertainty.

A predicted quantity X (a step time, or the speedup) depends on the engine's uncertain
parameters theta (terms and calibrated efficiencies) with covariance C.  To first order (the delta
method), in log space,

    var(log X) = g' C g + r * s^2,      g_i = d log X / d theta_i

where s is the residual spread of the calibration (standard deviation of its log-time
residuals: the scatter a new measurement shows around the fitted model) and r the number of
independently predicted step times X rests on (1 for a step time; 2 for the speedup, the ratio
of the target step to the SD iteration).  The central interval at level 80 % is

    [X exp(-z sd), X exp(+z sd)],   sd = sqrt(var(log X))

with z the engine's quantile: Student's t at the calibration's degrees of freedom, or the
normal 1.2816 for declared (uncalibrated) uncertainties, where s = 0.  Derivatives are taken
numerically by the caller (one extra evaluation of the step times per parameter).

The speedup also rests on the acceptance alpha (measured with a standard error, or from the
acceptance model with its parameter and residual uncertainty).  The speedup is proportional to the
tokens per iteration Omega_F = F Omega(gamma, alpha) + 1 - F, and alpha is independent of the
engine's parameters, so its part adds in quadrature (:func:`acceptance_log_sd`, :func:`combine`):

    var(log speedup) = [engine part above] + (F dOmega/dalpha / Omega_F)^2 sd_alpha^2,
    dOmega/dalpha = sum_{k=1..gamma} k alpha^(k-1).
"""

from __future__ import annotations

import numpy as np

#: Central probability of the reported intervals.
LEVEL = 0.8


def log_sd(grads: list[np.ndarray], cov: np.ndarray, residual_var: float) -> np.ndarray:
    """Standard deviation of log X from relative gradients ``grads[i] = d log X / d theta_i``."""
    if not grads:
        return np.sqrt(np.asarray(residual_var, dtype=float))
    shape = np.broadcast_shapes(*(np.shape(g) for g in grads))
    var = np.full(shape, float(residual_var))
    n = len(grads)
    for i in range(n):
        for j in range(n):
            c = cov[i, j]
            if c != 0.0:
                var = var + c * grads[i] * grads[j]
    return np.sqrt(np.maximum(var, 0.0))


def bounds(x: np.ndarray, sd: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the central interval of ``x`` with log-space spread ``sd``."""
    x = np.asarray(x, dtype=float)
    spread = np.exp(z * np.asarray(sd, dtype=float))
    return x / spread, x * spread


def acceptance_log_sd(alpha: np.ndarray, sd_alpha: np.ndarray, gamma: np.ndarray,
                      fraction: float = 1.0) -> np.ndarray:
    """Standard deviation of log Omega_F (hence of log speedup) from alpha's standard error."""
    from .speculative import expected_tokens

    a = np.asarray(alpha, dtype=float)
    g = np.asarray(gamma, dtype=float)
    d_omega = np.zeros(np.broadcast_shapes(a.shape, g.shape, np.shape(sd_alpha)))
    for k in range(1, int(np.max(g)) + 1):
        d_omega = d_omega + np.where(k <= g, k * a ** (k - 1), 0.0)
    omega_f = fraction * expected_tokens(a, g) + (1.0 - fraction)
    return np.abs(fraction * d_omega / omega_f) * np.asarray(sd_alpha, dtype=float)


def combine(*log_sds: np.ndarray) -> np.ndarray:
    """Independent parts of a log-space standard deviation, added in quadrature."""
    return np.sqrt(sum(np.square(np.asarray(s, dtype=float)) for s in log_sds))
