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
from .ops import (
    OpCost,
    attention_ops,
    kv_bytes_per_token_per_layer_per_gpu,
    ragged_attention,
    ragged_step_ops,
    step_ops,
    tokens_step_ops,
)
from .parallel import Shard
from .roofline import OpTime, kernel_time, op_time, rates

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
    tokens = np.asarray(batch, float) * np.asarray(q, float)
    return _sum_ops(ops, arch, sh, hw, batch, tokens, engine, draft)


def ragged_step_time(
    arch: ModelArch,
    sh: Shard,
    hw: HardwareProfile,
    q_seq: np.ndarray,
    kv_seq: np.ndarray,
    engine: EngineProfile | None = None,
    fmt: Formats | None = None,
    *,
    fuse_inputs: int = 0,
    draft: bool = False,
    count: np.ndarray | None = None,
) -> StepTime:
    """Time (seconds) of one step over a ragged batch (:func:`ops.ragged_step_ops`): sequence i
    (the last axis) brings ``q_seq[..., i]`` new tokens and reads ``kv_seq[..., i]`` cached ones,
    ``count[..., i]`` times (default once).  The engine charges the step per sequence (the number
    of sequences) and per token (the sum of the new tokens); one group of B equal sequences is
    :func:`step_time` exactly."""
    ops = ragged_step_ops(arch, sh, q_seq, kv_seq, fmt, fuse_inputs, count)
    q = np.asarray(q_seq, float)
    c = np.ones(q.shape) if count is None else np.broadcast_to(np.asarray(count, float), q.shape)
    seqs = np.where(q > 0, c, 0.0).sum(axis=-1)
    tokens = (q * c).sum(axis=-1)
    return _sum_ops(ops, arch, sh, hw, seqs, tokens, engine, draft)


def _sum_ops(ops: list[OpCost], arch: ModelArch, sh: Shard, hw: HardwareProfile, seqs: np.ndarray,
             tokens: np.ndarray, engine: EngineProfile | None, draft: bool) -> StepTime:
    """A step's time: its ops' roofline times one after another, plus the engine's software time
    for ``seqs`` sequences and ``tokens`` new tokens (the one place both are added up)."""
    times = {op.name: op_time(op, hw, sh.gpus, arch.dtype_bytes) for op in ops}
    kernels = _kernels(ops)
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
        extra = np.broadcast_to(engine.step_overhead(seqs, kernels, tokens, draft=draft), shape)
    return StepTime(total + extra, comm, kv, mem_bound, comp_bound, times, total, extra, kernels)


def _kernels(ops: list[OpCost]) -> int:
    """Kernel launches of a step: every occurrence of a compute op, and of an all-reduce that
    moves data."""
    return sum(op.count for op in ops
               if op.op_class != "allreduce" or np.any(np.asarray(op.comm_bytes) > 0))


class StepTable:
    """A step's time as a function of its totals, fast enough to call once per simulated step.

    A step's ops other than attention depend only on the new tokens T in the step: their summed
    roofline time is tabulated once over T = 0 .. ``max_tokens`` (grown on demand).  Attention
    FLOPs and bytes are linear in the step's attention totals (query-key pairs, KV tokens read,
    :func:`ops.ragged_attention`) and in T: their coefficients are read off
    :func:`ops.attention_ops` once, and each call puts the totals through
    :func:`roofline.kernel_time`.  The engine's time (:meth:`engine.EngineProfile.step_overhead`)
    is linear in sequences and tokens, read off the same way.  The result equals
    :func:`ragged_step_time` to rounding (tests/test_ragged_step.py): a cache, not a second model.
    """

    def __init__(self, arch: ModelArch, sh: Shard, hw: HardwareProfile, engine: EngineProfile | None,
                 fmt: Formats | None = None, *, fuse_inputs: int = 0, draft: bool = False,
                 max_tokens: int = 8192) -> None:
        self.arch, self.sh, self.hw, self.engine, self.fmt = arch, sh, hw, engine, fmt
        self.fuse_inputs, self.draft = fuse_inputs, draft
        one = tokens_step_ops(arch, sh, np.ones(()), ragged_attention(np.ones(1), np.zeros(1)), fmt,
                              fuse_inputs)
        self.kernels = _kernels(one)
        self.windows = list(dict.fromkeys(arch.layer_windows()))
        flops_rate, bw = rates(hw, "attention", arch.dtype_bytes)
        self.fixed = hw.efficiency["kernel_fixed_s"]

        def coeffs(tokens: float, pairs: float, kv: float) -> list[tuple[float, float, int]]:
            ops = attention_ops(arch, sh, np.asarray(tokens), lambda w: (np.asarray(pairs), np.asarray(kv)),
                                fmt)
            return [(float(op.flops), float(op.bytes), op.count) for op in ops]
        base = coeffs(0.0, 0.0, 0.0)
        per_pair = coeffs(0.0, 1.0, 0.0)
        per_kv = coeffs(0.0, 0.0, 1.0)
        per_tok = coeffs(1.0, 0.0, 0.0)
        #: per window: (seconds of FLOPs per pair, seconds of bytes per KV token, per new token,
        #: fixed bytes' seconds, occurrences per step)
        self.attn = [((p[0] - b[0]) / flops_rate, (k[1] - b[1]) / bw, (t[1] - b[1]) / bw, b[1] / bw, b[2])
                     for b, p, k, t in zip(base, per_pair, per_kv, per_tok, strict=True)]
        if engine is None:
            self.eng = (0.0, 0.0, 0.0)
        else:
            e0 = float(engine.step_overhead(0, self.kernels, 0, draft=draft))
            self.eng = (e0, float(engine.step_overhead(1, self.kernels, 0, draft=draft)) - e0,
                        float(engine.step_overhead(0, self.kernels, 1, draft=draft)) - e0)
        self._table = np.zeros(0)
        self._grow(max_tokens)

    def _grow(self, max_tokens: int) -> None:
        T = np.arange(max_tokens + 1, dtype=float)
        zero = np.zeros_like(T)
        ops = tokens_step_ops(self.arch, self.sh, T, lambda w: (zero, zero), self.fmt, self.fuse_inputs)
        total = np.zeros_like(T)
        for op in ops:
            if op.op_class != "attention":
                total = total + op_time(op, self.hw, self.sh.gpus, self.arch.dtype_bytes).time
        self._table = total

    def time(self, seqs: np.ndarray | int, tokens: np.ndarray | float, q_seq: np.ndarray,
             kv_seq: np.ndarray) -> np.ndarray:
        """Seconds of a step of ``seqs`` sequences and ``tokens`` new tokens in all whose
        sequences (last axis of ``q_seq``, ``kv_seq``) bring q and read kv cached tokens."""
        T = np.asarray(tokens)
        top = int(np.max(T)) if T.size else 0
        if top >= len(self._table):
            self._grow(max(2 * len(self._table), top + 1))
        t = self._table[T.astype(np.int64)]
        totals = ragged_attention(q_seq, kv_seq)
        for w, (c_pair, c_kv, c_tok, c0, count) in zip(self.windows, self.attn, strict=True):
            pairs, kv = totals(w)
            t = t + kernel_time(c_pair * pairs, c_kv * kv + c_tok * T + c0, self.fixed) * count
        e0, e_seq, e_tok = self.eng
        return t + (e0 + e_seq * np.asarray(seqs, float) + e_tok * T)


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
