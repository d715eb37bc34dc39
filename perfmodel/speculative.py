"""Speculative decoding: draft strategies, expected tokens per step, speedup, gamma search.

With gamma drafted tokens per step, i.i.d. acceptance a, draft step time T_D, verify time T_V
(gamma+1 tokens) and target decode time T_T (MagicDec, Eq. 1; Leviathan et al.):

    Omega(gamma, a) = (1 - a^(gamma+1)) / (1 - a)       expected tokens per step, bonus included
    latency_sd      = (gamma * T_D + T_V) / Omega       seconds per token per sequence
    speedup         = T_T / latency_sd
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .acceptance import KV_METHODS
from .architecture import ModelArch, get_model, tokenizer_family
from .errors import InputError

GAMMA_MAX = 16


@dataclass(frozen=True)
class Draft:
    """A draft strategy: ``self`` (the target with a budget KV) or a standalone registry model."""

    name: str  # "self" or the draft model's name
    arch: ModelArch
    kv_method: str  # "streamingllm", "snapkv" or "full"

    @property
    def is_self(self) -> bool:
        """True for self-speculation (the target's own weights)."""
        return self.name == "self"

    def kv_len(self, budget: np.ndarray, seq_len: np.ndarray) -> np.ndarray:
        """Tokens of KV the draft's attention reads: the budget, capped at the sequence (tokens)."""
        S = np.asarray(seq_len, dtype=float)
        if self.kv_method == "full":
            return S
        return np.minimum(np.asarray(budget, dtype=float), S)


def make_draft(spec: str, target: ModelArch, kv_method: str) -> Draft:
    """Resolve ``--draft`` (``self`` or a registry name/config path) and ``--kv-method``."""
    method = kv_method.lower()
    if method not in KV_METHODS:
        raise InputError(f"--kv-method {kv_method!r} is not one of: {', '.join(KV_METHODS)}")
    if spec == "self":
        if method == "full":
            raise InputError(
                "--draft self with --kv-method full is the target itself: no speculation; "
                "allowed: --kv-method streamingllm or snapkv"
            )
        return Draft("self", target, method)
    arch = get_model(spec)
    if tokenizer_family(arch) != tokenizer_family(target):
        raise InputError(
            f"--draft {spec!r} has vocabulary {arch.vocab_size}, the target {target.name!r} has "
            f"{target.vocab_size}; a draft must share the target's tokenizer"
        )
    return Draft(arch.name, arch, method)


def expected_tokens(acceptance: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Omega = (1 - a^(gamma+1)) / (1 - a): expected tokens per verification step (tokens)."""
    a = np.asarray(acceptance, dtype=float)
    g = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = (1.0 - a ** (g + 1.0)) / (1.0 - a)
    return np.where(a >= 1.0, g + 1.0, omega)


def sd_latency(
    t_draft: np.ndarray, t_verify: np.ndarray, omega: np.ndarray, gamma: np.ndarray
) -> np.ndarray:
    """Expected seconds per generated token per sequence under speculative decoding."""
    return (np.asarray(gamma, float) * t_draft + t_verify) / omega


def check_gamma(gamma: int) -> int:
    """Validate a speculation length: an integer in 1..GAMMA_MAX."""
    if isinstance(gamma, bool) or int(gamma) != gamma or not 1 <= gamma <= GAMMA_MAX:
        raise InputError(f"--gamma {gamma!r} is outside 1..{GAMMA_MAX}; allowed: 1..{GAMMA_MAX} or auto")
    return int(gamma)
