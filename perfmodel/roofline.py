"""Time of one op from its FLOPs, bytes and the hardware profile (a roofline per kernel).

For a compute/memory op of class c (gemm, attention, elementwise), per occurrence:

    t_compute = FLOPs / (peak_flops * c_flops)
    t_memory  = bytes / (mem_bw * c_bw)      (gemv_bw for a projection over one token, if set)
    t         = max(t_compute, t_memory) + kernel_fixed_s

Within one kernel, loads and math overlap (the max); kernels of a step run one after another (the
step sums them, in :mod:`step`).  All-reduce ops use :func:`parallel.allreduce_time`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hardware import HardwareProfile
from .ops import OpCost
from .parallel import allreduce_time


@dataclass
class OpTime:
    """Time of one op per step (seconds, all occurrences) and its parts."""

    name: str
    op_class: str
    time: np.ndarray  # seconds per step, count included
    compute_time: np.ndarray  # FLOP term, seconds per step
    memory_time: np.ndarray  # byte term, seconds per step
    kv_time: np.ndarray  # seconds per step spent reading the KV cache
    memory_bound: np.ndarray  # bool: byte term >= FLOP term

    @property
    def regime(self) -> np.ndarray:
        """'memory', 'compute' or 'comm' per point."""
        if self.op_class == "allreduce":
            return np.full(np.shape(self.time), "comm", dtype=object)
        return np.where(self.memory_bound, "memory", "compute").astype(object)


def rates(hw: HardwareProfile, op_class: str, dtype_bytes: int = 2) -> tuple[float, float]:
    """Achieved FLOP/s and bytes/s of an op class: the peaks times the profile's efficiencies.

    Element-wise ops run on the fp32 non-tensor peak, GEMMs and attention on the tensor-core peak
    of ``dtype_bytes``-sized elements.
    """
    eff = hw.efficiency
    peak = hw.datasheet["peak_flops_fp32"] if op_class == "elementwise" else hw.peak_flops(dtype_bytes)
    return peak * eff[f"{op_class}_flops"], hw.mem_bw * eff[f"{op_class}_bw"]


def attainable_flops(hw: HardwareProfile, op_class: str, intensity: np.ndarray,
                     dtype_bytes: int = 2) -> np.ndarray:
    """The roofline: FLOP/s an op class attains at ``intensity`` FLOP per byte (no fixed cost)."""
    flops_rate, bw = rates(hw, op_class, dtype_bytes)
    return np.minimum(np.asarray(intensity, float) * bw, flops_rate)


def kernel_time(t_compute: np.ndarray, t_memory: np.ndarray, fixed_s: float) -> np.ndarray:
    """One kernel's time (seconds): its FLOP and byte terms overlap (the max), plus its fixed cost."""
    return np.maximum(t_compute, t_memory) + fixed_s


def op_time(op: OpCost, hw: HardwareProfile, gpus: int, dtype_bytes: int = 2) -> OpTime:
    """Roofline time of ``op`` on one GPU of ``hw`` within a ``gpus``-way TP group (seconds)."""
    eff = hw.efficiency
    if op.op_class == "allreduce":
        t = allreduce_time(op.comm_bytes, gpus, hw) * op.count
        t = np.where(np.asarray(op.comm_bytes) > 0, t, 0.0)
        zero = np.zeros_like(t)
        return OpTime(op.name, op.op_class, t, zero, zero, zero, np.zeros(t.shape, bool))
    flops_rate, bw = rates(hw, op.op_class, op.compute_bytes or dtype_bytes)
    if op.op_class == "gemm" and "gemv_bw" in eff:
        # one activation row per weight read runs as a matrix-vector kernel (hardware.py)
        bw = np.where(np.asarray(op.tokens) == 1, hw.mem_bw * eff["gemv_bw"], bw)
    t_c = np.asarray(op.flops, float) / flops_rate
    t_m = np.asarray(op.bytes, float) / bw
    t_c, t_m = np.broadcast_arrays(t_c, t_m)
    t = kernel_time(t_c, t_m, eff["kernel_fixed_s"]) * op.count
    kv = np.asarray(op.kv_read_bytes, float) / bw * op.count
    return OpTime(
        op.name,
        op.op_class,
        t,
        t_c * op.count,
        t_m * op.count,
        np.broadcast_to(kv, t.shape),
        t_m >= t_c,
    )
