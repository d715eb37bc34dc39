"""Which predicted points can run, and what would make one run.

A point is *feasible* when its weights and KV caches fit in the share of GPU memory an engine may
fill (``fits_memory``, :data:`sweep.MEMORY_UTILIZATION`) and its sequence plus the verified
tokens is within the model's maximum context (``within_context``, ``max_position_embeddings``).
Headlines, best configurations, verdicts and defaults consider feasible points only and say how
many were left out (:class:`Infeasible`).

For one workload whose target alone does not fit, :func:`target_fit` finds the largest batch that
does and the changes that would make the requested batch fit (an fp8 KV cache, fp8 weights, more
GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .architecture import get_model
from .errors import InputError
from .number_formats import KV_CHOICES, WEIGHT_CHOICES
from .parallel import shard
from .scenario import resolve
from .sweep import MEMORY_UTILIZATION, Query, target_memory

#: GPU counts tried when more GPUs would make a workload fit (tensor parallel within a node and
#: across two to eight nodes of eight)
GPU_COUNTS = (2, 4, 8, 16, 32, 64)


def feasible(df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows that fit in memory and are within the model's maximum context."""
    ok = df["fits_memory"].to_numpy(dtype=bool)
    if "within_context" in df:
        ok = ok & df["within_context"].to_numpy(dtype=bool)
    return ok


@dataclass
class Infeasible:
    """How many of ``total`` points do not fit in memory, and how many exceed the model's context."""

    total: int = 0
    no_memory: int = 0
    beyond_context: int = 0
    left_out: int = 0  # either or both

    @classmethod
    def of(cls, df: pd.DataFrame) -> Infeasible:
        """The counts over the rows of ``df``."""
        mem = ~df["fits_memory"].to_numpy(dtype=bool)
        ctx = (~df["within_context"].to_numpy(dtype=bool) if "within_context" in df
               else np.zeros(len(df), bool))
        return cls(len(df), int(mem.sum()), int(ctx.sum()), int((mem | ctx).sum()))

    def __add__(self, other: Infeasible) -> Infeasible:
        return Infeasible(self.total + other.total, self.no_memory + other.no_memory,
                          self.beyond_context + other.beyond_context, self.left_out + other.left_out)

    def describe(self, what: str = "points") -> str:
        """E.g. ``3 of 12 points do not fit in memory and 1 exceeds the model's maximum context``;
        ``""`` when every point is feasible."""
        if not self.left_out:
            return ""
        parts = []
        if self.no_memory:
            parts.append(f"{self.no_memory:,} do{'es' if self.no_memory == 1 else ''} not fit in memory "
                         f"(weights + KV caches > {MEMORY_UTILIZATION:.0%} of GPU memory)")
        if self.beyond_context:
            parts.append(f"{self.beyond_context:,} exceed{'s' if self.beyond_context == 1 else ''} the "
                         f"model's maximum context")
        return f"{self.left_out:,} of {self.total:,} {what} cannot run: " + " and ".join(parts)


def best(df: pd.DataFrame, column: str = "speedup") -> dict[str, Any] | None:
    """The feasible row of highest ``column`` as a dict; None when no row is feasible."""
    ok = feasible(df) & np.isfinite(df[column].to_numpy(dtype=float))
    if not ok.any():
        return None
    values = np.where(ok, df[column].to_numpy(dtype=float), -np.inf)
    return df.iloc[int(np.argmax(values))].to_dict()


@dataclass
class TargetFit:
    """Whether the target alone (weights + its KV cache) fits one workload, and what would."""

    fits: bool
    need_bytes: float  # per GPU, at the requested batch
    usable_bytes: float  # MEMORY_UTILIZATION x capacity per GPU
    max_batch: int  # largest batch whose target alone fits (0: not even one sequence)
    fixes: list[str] = field(default_factory=list)
    weights_bytes: float = 0.0  # per GPU
    #: the model's maximum context where seq_len (+1 decoded token) exceeds it, else 0
    context_limit: int = 0

    def describe(self, model: str, batch: int, seq_len: int, gpus: int, hardware: str) -> str:
        """One sentence: what does not fit, the largest batch that does, and the fixes."""
        text = (f"{model} alone does not fit at batch {batch}, seq_len {seq_len:,} on {gpus} x {hardware}: "
                f"its weights and KV cache need {self.need_bytes / 1e9:,.1f} GB per GPU, "
                f"{self.usable_bytes / 1e9:,.1f} GB are usable ({MEMORY_UTILIZATION:.0%} of memory)")
        if self.max_batch:
            text += f"; the largest batch that fits is {self.max_batch}"
        elif self.weights_bytes > self.usable_bytes:
            text += f"; not even its weights fit ({self.weights_bytes / 1e9:,.1f} GB per GPU)"
        else:
            text += "; not even one sequence of that length fits"
        if self.context_limit:
            text += f"; and seq_len {seq_len:,} is past the model's maximum context of {self.context_limit:,}"
        if self.fixes:
            text += f". It would fit with {' or '.join(self.fixes)}"
        return text + "."


def _target_alone(query: Query):
    """The query's first scenario with a draft that holds nothing (n-gram lookup): the target alone."""
    return resolve(replace(query, draft="ngram", kv_method="full", acceptance=0.5, accept_len=None,
                           position_acceptance=None, verify_tokens=None, draft_vocab=None,
                           gamma=[1]))[0]


def _max_batch(query: Query, seq_len: int) -> tuple[float, float, int, float]:
    """(bytes per GPU at the query's batch, usable bytes, largest batch that fits, weights bytes)
    for the target alone at ``seq_len`` (+1 decoded token) on the query's first GPU count."""
    scn = _target_alone(query)
    usable = MEMORY_UTILIZATION * scn.hardware.mem_capacity
    b = int(scn.batch[0])
    weights = float(target_memory(scn, 0.0, seq_len + 1))
    per_seq = float(target_memory(scn, 1.0, seq_len + 1)) - weights
    need = weights + b * per_seq
    top = int(np.floor((usable - weights) / per_seq)) if per_seq > 0 and usable > weights else 0
    return need, usable, max(top, 0), weights


def _fits(query: Query, seq_len: int) -> bool:
    need, usable, _, _ = _max_batch(query, seq_len)
    return need <= usable


def _fewest_gpus(query: Query, seq_len: int) -> int | None:
    """The fewest GPUs of :data:`GPU_COUNTS`, above the query's, that the model can be split over
    and on which the target alone fits; None if none."""
    arch = get_model(query.model)
    for g in GPU_COUNTS:
        if g <= int(query.gpus[0]):
            continue
        try:
            shard(arch, g, bool(query.expert_parallel))
        except InputError:
            continue
        if _fits(replace(query, gpus=[g]), seq_len):
            return g
    return None


def target_fit(query: Query) -> TargetFit:
    """For a one-point query (one batch, seq_len, GPU count): does the target alone fit, the
    largest batch that does, and which changes would fit the requested batch: an fp8 KV cache or
    fp8 weights (where not fp8 already), the fewest more GPUs the model can be split over, and,
    where none of these alone does, an fp8 KV cache on more GPUs."""
    seq_len = int(query.seq_len[0])
    batch = int(query.batch[0])
    need, usable, top, weights = _max_batch(query, seq_len)
    limit = get_model(query.model).max_positions
    beyond = limit if seq_len + 1 > limit else 0
    if need <= usable:
        return TargetFit(True, need, usable, max(top, batch), [], weights, beyond)
    fixes: list[str] = []
    fp8 = replace(query, kv_dtype="fp8") if _target_alone(query).formats.kv != KV_CHOICES["fp8"] else None
    if fp8 is not None and _fits(fp8, seq_len):
        fixes.append("an fp8 KV cache (--kv-dtype fp8)")
    fp8w = replace(query, weight_dtype="fp8")
    if _target_alone(query).formats.weight != WEIGHT_CHOICES["fp8"] and _fits(fp8w, seq_len):
        fixes.append("fp8 weights (--weight-dtype fp8)")
    more = _fewest_gpus(query, seq_len)
    if more:
        fixes.append(f"{more} GPUs (--gpus {more})")
    if fp8 is not None and not fixes:
        both = _fewest_gpus(fp8, seq_len)
        if both:
            fixes.append(f"an fp8 KV cache on {both} GPUs (--kv-dtype fp8 --gpus {both})")
        else:
            top8 = _max_batch(fp8, seq_len)[2]
            if top8 > top:
                fixes.append(f"an fp8 KV cache (--kv-dtype fp8), up to batch {top8} only")
    return TargetFit(False, need, usable, top, fixes, weights, beyond)


def largest_batch(base: Query, strategies: list, batch: int,
                  latency_budget_s: float | None = None) -> int:
    """The largest batch below ``batch`` at which at least one of ``strategies`` is feasible (and
    meets ``latency_budget_s`` seconds per token, if given); 0 if none.  Every batch 1..batch-1 is
    tried (at most :data:`MAX_BATCHES_TRIED`, geometrically spaced above that), point estimates only."""
    from .strategy import predict_strategies

    if batch <= 1:
        return 0
    if batch - 1 <= MAX_BATCHES_TRIED:
        batches = list(range(1, batch))
    else:
        batches = sorted({int(b) for b in np.geomspace(1, batch - 1, MAX_BATCHES_TRIED).round()})
    df = predict_strategies(replace(base, batch=batches, intervals=False), strategies)
    ok = feasible(df)
    if latency_budget_s is not None:
        ok = ok & (df["latency_sd_s"].to_numpy() <= latency_budget_s)
    return int(df["batch"].to_numpy()[ok].max()) if ok.any() else 0


#: most batch sizes :func:`largest_batch` evaluates
MAX_BATCHES_TRIED = 1024
