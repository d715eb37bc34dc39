"""Acceptance conventions and the conversions between them (one home; docs/acceptance.md shows the
arithmetic).

With gamma draft tokens per speculative-decoding step (a chain), four numbers describe acceptance:

* ``alpha`` - MagicDec's Eq. 1 (Leviathan et al.): every draft token is accepted independently
  with probability alpha, testing stops at the first rejection, so the tokens per step (bonus
  included) are ``Omega = (1 - alpha^(gamma+1)) / (1 - alpha)``
  (:func:`speculative.expected_tokens`, the formula's home);
* ``rate`` - accepted / drafted, what engines (vLLM, SGLang, BLIS) report: every step drafts gamma
  tokens, so ``tokens per step = 1 + rate * gamma``;
* ``tokens per step`` (``tau``, EAGLE's "accept length"): mean tokens emitted per step, bonus
  included, 1 <= tau <= gamma + 1;
* per-position rates: unconditional ``r_i = P(draft token i accepted)`` (vLLM's per-position
  counter divided by the steps), non-increasing, with ``tau = 1 + sum_i r_i``; or conditional
  ``c_i = P(token i accepted | token i-1 accepted)``, ``r_i = c_1 c_2 ... c_i``.

Under the i.i.d. assumption ``c_i = alpha`` and ``r_i = alpha^i``.  Measured per-position rates
need not follow it; the conversions that go through tau (:func:`alpha_from_tokens_per_step`) are
exact for the mean tokens per step at the gamma they were measured at, whatever the positions do.
All functions take numpy arrays or scalars and broadcast; rates are dimensionless, tau in tokens.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .speculative import expected_tokens, omega_positions

#: bisection steps of :func:`alpha_from_tokens_per_step` (2^-60: exact to double precision)
_BISECT = 60


def tokens_per_step_from_alpha(alpha: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """Omega(gamma, alpha) = (1 - alpha^(gamma+1)) / (1 - alpha), tokens per step (Eq. 1)."""
    return expected_tokens(alpha, gamma)


def alpha_from_tokens_per_step(tau: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """The i.i.d. rate alpha whose Omega(gamma, alpha) equals ``tau`` (1 <= tau <= gamma + 1).

    Omega is strictly increasing in alpha on [0, 1], so the root is unique: found by vectorised
    bisection to double precision.
    """
    t = np.asarray(tau, dtype=float)
    g = np.asarray(gamma, dtype=float)
    bad = ~np.isfinite(t) | (t < 1.0) | (t > g + 1.0)
    if np.any(bad):
        tb, gb = np.broadcast_arrays(t, g)
        i = int(np.flatnonzero(np.broadcast_to(bad, tb.shape))[0])
        raise InputError(f"tokens per step {tb.flat[i]!r} is outside 1..gamma+1 = "
                         f"{gb.flat[i] + 1:g}; allowed: 1 <= tau <= gamma + 1")
    lo = np.zeros(np.broadcast_shapes(t.shape, g.shape))
    hi = np.ones_like(lo)
    for _ in range(_BISECT):
        mid = (lo + hi) / 2
        below = expected_tokens(mid, g) < t
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    # every token accepted: exactly 1 (Omega's closed form loses digits as alpha -> 1)
    return np.where(t >= g + 1.0, 1.0, (lo + hi) / 2)


def tokens_per_step_from_rate(rate: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """Tokens per step from accepted / drafted: ``1 + rate * gamma``."""
    r = np.asarray(rate, dtype=float)
    if np.any(~np.isfinite(r) | (r < 0) | (r > 1)):
        raise InputError(f"accepted/drafted rate {r!r} is outside [0, 1]")
    return 1.0 + r * np.asarray(gamma, dtype=float)


def rate_from_tokens_per_step(tau: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """Accepted / drafted from tokens per step: ``(tau - 1) / gamma``."""
    return (np.asarray(tau, dtype=float) - 1.0) / np.asarray(gamma, dtype=float)


def alpha_from_rate(rate: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """Eq. 1's alpha from an engine's accepted / drafted rate at ``gamma``."""
    return alpha_from_tokens_per_step(tokens_per_step_from_rate(rate, gamma), gamma)


def rate_from_alpha(alpha: np.ndarray | float, gamma: np.ndarray | int) -> np.ndarray:
    """An engine's accepted / drafted rate at ``gamma`` from Eq. 1's alpha: ``(Omega - 1) / gamma``."""
    return rate_from_tokens_per_step(tokens_per_step_from_alpha(alpha, gamma), gamma)


def positions_from_alpha(alpha: float, gamma: int, conditional: bool = False) -> np.ndarray:
    """Per-position rates of i.i.d. acceptance: ``alpha^i`` (unconditional) or ``alpha`` each
    (conditional), i = 1..gamma."""
    i = np.arange(1, int(gamma) + 1, dtype=float)
    return np.full(i.shape, float(alpha)) if conditional else float(alpha) ** i


def unconditional_from_conditional(conditional: np.ndarray) -> np.ndarray:
    """``r_i = c_1 c_2 ... c_i``: P(token i accepted) from P(i accepted | i-1 accepted)."""
    return np.cumprod(np.asarray(conditional, dtype=float))


def conditional_from_unconditional(unconditional: np.ndarray) -> np.ndarray:
    """``c_i = r_i / r_(i-1)`` (r_0 = 1); a position never reached (r_(i-1) = 0) gets 0."""
    r = np.asarray(unconditional, dtype=float)
    prev = np.concatenate([[1.0], r[:-1]])
    return np.divide(r, prev, out=np.zeros_like(r), where=prev > 0)


def tokens_per_step_from_positions(unconditional: np.ndarray) -> float:
    """``tau = 1 + sum_i r_i`` from unconditional per-position rates."""
    r = np.asarray(unconditional, dtype=float)
    return float(omega_positions(r, len(r)))
