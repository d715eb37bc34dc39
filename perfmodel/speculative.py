"""Speculative decoding: expected tokens per step, the SD iteration's time, speedup (Eq. 1).

With gamma draft steps per iteration, i.i.d. acceptance a, draft step time T_D, verify time T_V
(gamma+1 tokens, or the W nodes of a tree) and target decode time T_T (MagicDec, Eq. 1;
Leviathan et al.):

    Omega(gamma, a) = (1 - a^(gamma+1)) / (1 - a)       expected tokens per step, bonus included
    latency_sd      = (gamma T_D + T_phase + F T_V + (1 - F) T_T + T_loop) / Omega_F
    speedup         = T_T / latency_sd

T_loop is the engine's SD-loop bookkeeping per iteration (accept/reject, rollback, host syncs),
T_phase a draft phase's fixed cost (a head's, or n-gram lookup), F the fraction of iterations in
which the draft proposes at all (n-gram lookup finds no match in most steps: those verify one
token, a plain decode step) and Omega_F = F Omega + (1 - F) the tokens per iteration.  Omega may
instead come from per-position acceptance rates, r_i = P(the i-th draft token is accepted),
Omega = 1 + sum_{i<=gamma} r_i, or be given as a measured mean accepted length tau (tokens per
iteration over all iterations, bonus included, as EAGLE-family papers and traces report).
docs/model.md section 6 has the sources.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

GAMMA_MAX = 16


def expected_tokens(acceptance: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Omega = (1 - a^(gamma+1)) / (1 - a): expected tokens per verification step (tokens)."""
    a = np.asarray(acceptance, dtype=float)
    g = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = (1.0 - a ** (g + 1.0)) / (1.0 - a)
    return np.where(a >= 1.0, g + 1.0, omega)


def sd_cycle(
    t_draft: np.ndarray,
    t_verify: np.ndarray,
    gamma: np.ndarray,
    t_loop: np.ndarray | float = 0.0,
    *,
    t_phase: np.ndarray | float = 0.0,
    fraction: float = 1.0,
    t_target: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Seconds of one SD iteration: gamma draft steps and the draft phase's fixed cost, a verify
    step (a plain decode step in the 1 - ``fraction`` of iterations without proposals), and the
    loop's bookkeeping."""
    verify = t_verify if fraction == 1.0 else fraction * t_verify + (1.0 - fraction) * t_target
    return np.asarray(gamma, float) * t_draft + t_phase + verify + t_loop


def sd_latency(
    t_draft: np.ndarray,
    t_verify: np.ndarray,
    omega: np.ndarray,
    gamma: np.ndarray,
    t_loop: np.ndarray | float = 0.0,
    **cycle: object,
) -> np.ndarray:
    """Expected seconds per generated token per sequence under speculative decoding (Eq. 1);
    ``cycle`` passes ``t_phase``, ``fraction`` and ``t_target`` to :func:`sd_cycle`."""
    return sd_cycle(t_draft, t_verify, gamma, t_loop, **cycle) / omega  # type: ignore[arg-type]


def omega_positions(rates: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Omega = 1 + sum of the first gamma per-position acceptance rates (tokens per step).

    ``rates[i]`` = P(draft token i+1 is accepted), non-increasing (vLLM's per-position rate).
    """
    r = np.concatenate([[0.0], np.cumsum(np.asarray(rates, dtype=float))])
    g = np.asarray(gamma).astype(int)
    return 1.0 + r[np.clip(g, 0, len(r) - 1)]


def rate_from_accept_len(tau: float, gamma: int) -> float:
    """The i.i.d. per-token acceptance a whose Omega(gamma, a) equals ``tau`` (kept below 1).

    The conversion's home is :func:`acceptance_conventions.alpha_from_tokens_per_step`.
    """
    from .acceptance_conventions import alpha_from_tokens_per_step

    if not 1.0 <= tau <= gamma + 1:
        raise InputError(f"accepted length {tau} is outside 1..gamma+1 = {gamma + 1}")
    return min(float(alpha_from_tokens_per_step(tau, gamma)), 0.999999)


def check_gamma(gamma: int) -> int:
    """Validate a speculation length: an integer in 1..GAMMA_MAX."""
    if isinstance(gamma, bool) or int(gamma) != gamma or not 1 <= gamma <= GAMMA_MAX:
        raise InputError(f"--gamma {gamma!r} is outside 1..{GAMMA_MAX}; allowed: 1..{GAMMA_MAX} or auto")
    return int(gamma)
