"""A forward step (target decode, verify, draft) as the sum of its ops plus the engine's cost.

Kernels of a step run one after another on each GPU, so the kernel time is the sum of the op
times (:mod:`roofline`); every GPU of a TP group does the same work at the same time.  The
serving engine then adds its software time per step (:meth:`engine.EngineProfile.step_overhead`:
host work per step and per sequence, kernel launches) - here, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .architecture import ModelArch
from .engine import EngineProfile
from .hardware import HardwareProfile
from .number_formats import Formats
from .ops import kv_bytes_per_token_per_layer_per_gpu, step_ops
from .parallel import Shard
from .roofline import OpTime, op_time

#: The regimes of a step, in the order of :attr:`StepTime.regime_code`.
REGIMES = ("memory", "compute")


@dataclass
class StepTime:
    """Time of one forward step on one GPU (seconds), with its breakdown.

    ``time = kernel_time + engine_time``: the kernels (all-reduces included) and the engine's
    software cost of the step; ``kernels`` is the number of kernel launches in the step.
    """

    time: np.ndarray
    comm_time: np.ndarray
    kv_time: np.ndarray
    memory_bound_time: np.ndarray
    compute_bound_time: np.ndarray
    ops: dict[str, OpTime]
    kernel_time: np.ndarray
    engine_time: np.ndarray
    kernels: int

    @property
    def kv_fraction(self) -> np.ndarray:
        """Share of the step spent reading the KV cache (0..1)."""
        return self.kv_time / self.time

    @property
    def regime_code(self) -> np.ndarray:
        """Index into :data:`REGIMES`: 0 ('memory') where memory-bound kernels take at least half
        the kernel time, else 1 ('compute')."""
        return (self.memory_bound_time < self.compute_bound_time).astype(np.int8)

    @property
    def regime(self) -> np.ndarray:
        """'memory' or 'compute' (object array; see :attr:`regime_code`)."""
        return np.asarray(REGIMES, dtype=object)[self.regime_code]


def step_time(
    arch: ModelArch,
    sh: Shard,
    hw: HardwareProfile,
    batch: np.ndarray,
    q: np.ndarray,
    kv_len: np.ndarray,
    engine: EngineProfile | None = None,
    fmt: Formats | None = None,
    *,
    fuse_inputs: int = 0,
    draft: bool = False,
) -> StepTime:
    """Time (seconds) of one step over ``q`` new tokens per sequence with ``kv_len`` cached tokens.

    ``engine`` adds its software time per step (a draft step's when ``draft``); None charges the
    kernels only.  ``fmt`` and ``fuse_inputs`` as :func:`ops.step_ops`.
    """
    ops = step_ops(arch, sh, batch, q, kv_len, fmt, fuse_inputs)
    times = {op.name: op_time(op, hw, sh.gpus, arch.dtype_bytes) for op in ops}
    # kernel launches: every occurrence of a compute op, and of an all-reduce that moves data
    kernels = sum(op.count for op in ops
                  if op.op_class != "allreduce" or np.any(np.asarray(op.comm_bytes) > 0))
    shape = np.broadcast_shapes(*(t.time.shape for t in times.values()))
    total = np.zeros(shape)
    comm = np.zeros(shape)
    kv = np.zeros(shape)
    mem_bound = np.zeros(shape)
    comp_bound = np.zeros(shape)
    for t in times.values():
        total = total + t.time
        if t.op_class == "allreduce":
            comm = comm + t.time
            continue
        kv = kv + t.kv_time
        mem_bound = mem_bound + np.where(t.memory_bound, t.time, 0.0)
        comp_bound = comp_bound + np.where(t.memory_bound, 0.0, t.time)
    if engine is None:
        extra = np.zeros(shape)
    else:
        tokens = np.asarray(batch, float) * np.asarray(q, float)
        extra = np.broadcast_to(engine.step_overhead(batch, kernels, tokens, draft=draft), shape)
    return StepTime(total + extra, comm, kv, mem_bound, comp_bound, times, total, extra, kernels)


def weight_time(arch: ModelArch, sh: Shard, hw: HardwareProfile, batch: np.ndarray,
                fmt: Formats | None = None) -> np.ndarray:
    """Time (seconds) of a decode step's parameter ops (projections, experts, LM head) at ``batch``."""
    st = step_time(arch, sh, hw, batch, 1, 0, fmt=fmt)
    return sum(t.time for t in st.ops.values() if t.op_class == "gemm")


def critical_seq_len(
    arch: ModelArch, sh: Shard, hw: HardwareProfile, batch: np.ndarray, fmt: Formats | None = None
) -> np.ndarray:
    """Sequence length (tokens) at which a decode step's KV-read time equals its weight time.

    Past their windows, windowed layers read no more KV, so the KV that grows with S is that of
    the global layers; a model whose every layer is windowed has none (infinite).
    """
    B = np.asarray(batch, dtype=float)
    growing = sum(1 for w in arch.layer_windows() if w is None)
    if not growing:
        return np.full(np.shape(B), np.inf)
    per_token = growing * kv_bytes_per_token_per_layer_per_gpu(arch, sh, fmt)
    kv_per_token = per_token / (hw.mem_bw * hw.efficiency["attention_bw"])
    return weight_time(arch, sh, hw, B, fmt) / (B * kv_per_token)


def kv_cache_bytes(arch: ModelArch, sh: Shard, batch: np.ndarray, tokens: np.ndarray,
                   fmt: Formats | None = None) -> np.ndarray:
    """Bytes of KV cache on one GPU for ``batch`` sequences of ``tokens`` cached tokens each.

    Windowed layers keep at most their window (``ModelArch.layer_kv_tokens``).
    """
    per_layer = kv_bytes_per_token_per_layer_per_gpu(arch, sh, fmt)
    return np.asarray(batch, float) * arch.layer_kv_tokens(tokens).sum(axis=0) * per_layer
