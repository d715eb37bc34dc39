"""A forward step (target decode, verify, draft) as the sum of its ops; memory footprint.

Kernels of a step run one after another on each GPU, so the step time is the sum of the op
times (:mod:`roofline`); every GPU of a TP group does the same work at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .architecture import ModelArch
from .hardware import HardwareProfile
from .ops import kv_bytes_per_token_per_gpu, step_ops
from .parallel import Shard
from .roofline import OpTime, op_time


@dataclass
class StepTime:
    """Time of one forward step on one GPU (seconds), with its breakdown."""

    time: np.ndarray
    comm_time: np.ndarray
    kv_time: np.ndarray
    memory_bound_time: np.ndarray
    compute_bound_time: np.ndarray
    ops: dict[str, OpTime]

    @property
    def kv_fraction(self) -> np.ndarray:
        """Share of the step spent reading the KV cache (0..1)."""
        return self.kv_time / self.time

    @property
    def regime(self) -> np.ndarray:
        """'memory' where memory-bound kernels take at least half the kernel time, else 'compute'."""
        return np.where(
            self.memory_bound_time >= self.compute_bound_time, "memory", "compute"
        ).astype(object)


def step_time(
    arch: ModelArch,
    sh: Shard,
    hw: HardwareProfile,
    batch: np.ndarray,
    q: np.ndarray,
    kv_len: np.ndarray,
) -> StepTime:
    """Time (seconds) of one step over ``q`` new tokens per sequence with ``kv_len`` cached tokens."""
    times = {
        op.name: op_time(op, hw, sh.gpus, arch.dtype_bytes)
        for op in step_ops(arch, sh, batch, q, kv_len)
    }
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
    return StepTime(total, comm, kv, mem_bound, comp_bound, times)


def weight_time(arch: ModelArch, sh: Shard, hw: HardwareProfile, batch: np.ndarray) -> np.ndarray:
    """Time (seconds) of a decode step's parameter ops (projections, LM head) at ``batch``."""
    st = step_time(arch, sh, hw, batch, 1, 0)
    return sum(t.time for t in st.ops.values() if t.op_class == "gemm")


def critical_seq_len(
    arch: ModelArch, sh: Shard, hw: HardwareProfile, batch: np.ndarray
) -> np.ndarray:
    """Sequence length (tokens) at which a decode step's KV-read time equals its weight time."""
    B = np.asarray(batch, dtype=float)
    kv_per_token = kv_bytes_per_token_per_gpu(arch, sh) / (hw.mem_bw * hw.efficiency["attention_bw"])
    return weight_time(arch, sh, hw, B) / (B * kv_per_token)


def kv_cache_bytes(arch: ModelArch, sh: Shard, batch: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Bytes of KV cache on one GPU for ``batch`` sequences of ``tokens`` cached tokens each."""
    return np.asarray(batch, float) * np.asarray(tokens, float) * kv_bytes_per_token_per_gpu(arch, sh)

