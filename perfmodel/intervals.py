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
