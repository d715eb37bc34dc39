"""Speculation policies: the gamma (draft tokens per sequence) of each engine step.

* ``off`` - no speculation: no draft loaded, so the KV pool has the draft's memory too;
* ``fixed:G`` - gamma G at every step (vLLM's ``num_speculative_tokens``);
* ``schedule:TABLE`` - gamma by the number of running requests.  TABLE is vLLM's inclusive
  ranges ``1-16:3,17-64:2,65-4096:0`` (``num_speculative_tokens_per_batch_size``, PR #32374: a
  batch between two ranges keeps the gamma of the range below it) or TensorRT-LLM's thresholds
  ``4:4,8:2,32:1`` (``draft_len_schedule``: batch <= 4 -> 4, <= 8 -> 2, <= 32 -> 1, above the
  last threshold speculation is off); 0 = off for that batch;
* ``optimal`` - at each step the gamma in 0..``gamma_max`` that maximises the expected decode
  tokens per second of that step for its batch composition, from the analytic model (the step
  times of :class:`.costs.ServingModel` and Omega at the mean acceptance; SmartSpec's goodput
  criterion, arXiv 2406.14066).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..speculative import GAMMA_MAX

POLICY_KINDS = ("off", "fixed", "schedule", "optimal")


@dataclass(frozen=True)
class Policy:
    """A speculation policy; ``table[b]`` is the gamma at b running requests (schedule)."""

    kind: str
    gamma: int = 0
    table: tuple[tuple[int, int, int], ...] = ()  # (lo, hi, gamma), inclusive, sorted
    text: str = ""
    gamma_max: int = 8

    @property
    def name(self) -> str:
        """The policy as its output rows name it: off, fixed:3, schedule:..., optimal."""
        return self.text or self.kind

    @property
    def speculative(self) -> bool:
        """Whether the draft is loaded (every policy but off)."""
        return self.kind != "off"

    @property
    def max_gamma(self) -> int:
        """The largest gamma a step can get (KV reservation bound)."""
        if self.kind == "fixed":
            return self.gamma
        if self.kind == "schedule":
            return max(g for _, _, g in self.table)
        if self.kind == "optimal":
            return self.gamma_max
        return 0

    def gamma_at(self, batch: int) -> int:
        """The gamma of a step with ``batch`` running requests (not for optimal)."""
        if self.kind == "fixed":
            return self.gamma
        if self.kind == "schedule":
            g = 0
            for lo, hi, gk in self.table:
                if batch < lo:
                    break
                g = gk
                if batch <= hi:
                    return gk
            return g if batch <= self.table[-1][1] else 0
        return 0


def _int(text: str, what: str, lo: int, hi: int, spec: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        raise InputError(f"--policy {spec!r}: {what} {text!r} must be an integer in {lo}..{hi}")
    return v


def parse_schedule(text: str, spec: str) -> tuple[tuple[int, int, int], ...]:
    """vLLM ranges ``A-B:G,...`` or TensorRT-LLM thresholds ``N:G,...`` as (lo, hi, gamma) rows."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"--policy {spec!r}: an empty schedule; allowed: 1-16:3,17-64:2 (vLLM ranges) "
                         f"or 4:4,8:2,32:1 (TensorRT-LLM thresholds)")
    rows = []
    ranges = "-" in items[0].split(":")[0]
    lo_next = 1
    for it in items:
        if it.count(":") != 1:
            raise InputError(f"--policy {spec!r}: {it!r} is not BATCH:GAMMA; allowed: 1-16:3 or 4:4")
        key, g = it.split(":")
        gamma = _int(g, "gamma", 0, GAMMA_MAX, spec)
        if ranges:
            if key.count("-") != 1:
                raise InputError(f"--policy {spec!r}: {key!r} is not a range A-B (do not mix ranges "
                                 f"and thresholds)")
            a, b = (_int(x, "batch", 1, 1_000_000, spec) for x in key.split("-"))
        else:
            a, b = lo_next, _int(key, "batch", 1, 1_000_000, spec)
        if b < a or (rows and a <= rows[-1][1]):
            raise InputError(f"--policy {spec!r}: batch ranges must increase without overlap ({it!r})")
        rows.append((a, b, gamma))
        lo_next = b + 1
    return tuple(rows)


def parse_policies(text: str, gammas: list[int], gamma_max: int = 8) -> list[Policy]:
    """``off,fixed,schedule:TABLE,optimal`` (``fixed`` alone: one per ``--gamma``; ``fixed:G``)."""
    out: list[Policy] = []
    # a schedule holds commas: split on commas not inside a schedule's table
    parts: list[str] = []
    for tok in [t.strip() for t in text.split(",")]:
        if parts and parts[-1].startswith("schedule:") and tok and tok.split(":")[0] not in POLICY_KINDS:
            parts[-1] += "," + tok
        elif tok:
            parts.append(tok)
    if not parts:
        raise InputError(f"--policy {text!r} names no policy; allowed: {', '.join(POLICY_KINDS)}")
    for p in parts:
        kind, _, arg = p.partition(":")
        kind = kind.lower()
        if kind == "off":
            out.append(Policy("off", text="off"))
        elif kind == "fixed":
            gs = [_int(arg, "gamma", 1, GAMMA_MAX, p)] if arg else list(gammas)
            out += [Policy("fixed", gamma=g, text=f"fixed:{g}") for g in gs]
        elif kind == "schedule":
            out.append(Policy("schedule", table=parse_schedule(arg, p), text=f"schedule:{arg}"))
        elif kind == "optimal":
            out.append(Policy("optimal", text="optimal", gamma_max=gamma_max))
        else:
            raise InputError(f"--policy {p!r} is not a policy; allowed: off, fixed, fixed:G, "
                             f"schedule:TABLE, optimal")
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise InputError(f"--policy {text!r} names a policy twice")
    return out


def choose_optimal(times: np.ndarray, omega: np.ndarray, n_decode: int) -> int:
    """The gamma (index of ``times``: 0, 1, ...) with the most expected decode tokens per second:
    ``n_decode`` sequences times ``omega[g]`` tokens each, over the step's ``times[g]`` seconds."""
    if n_decode == 0:
        return 0
    return int(np.argmax(n_decode * omega[: len(times)] / times))
