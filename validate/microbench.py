"""Microbenchmark points: GEMMs, attention and elementwise ops of one layer, and all-reduces.

A point names a perfmodel op (:data:`magicdec_model.perfmodel.ops.OP_NAMES`) and the step shape
it runs at (batch, new tokens ``q``, cached KV length); its FLOPs and bytes come from
:func:`perfmodel.ops.step_ops` for that op — one formula, one place — so the fit compares the
measured time with exactly what the model charges for it.

Kernels run through the validator's decoder (:mod:`.decoder`), op by op, on one GPU's shard of
the model: under G-way tensor parallelism each rank holds ``shard(arch, G)`` sized weights.
All-reduces run over ``torch.distributed`` with a fixed repetition count on every rank (a
collective needs all ranks), and a point's time is the maximum over ranks of the per-rank median
(the slowest rank sets the step time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from ..perfmodel.architecture import ModelArch
from ..perfmodel.ops import OpCost, step_ops
from ..perfmodel.parallel import Shard, shard

if TYPE_CHECKING:  # pragma: no cover
    from .decoder import Decoder
    from .timing import Timer, Timing

GEMM_OPS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head")
ELEMENTWISE_OPS = ("attn_norm", "rotary", "act", "sampling")
#: token counts of the all-reduce ladder (message = tokens x hidden x dtype bytes)
ALLREDUCE_TOKENS = (1, 4, 16, 64, 256, 1024, 4096)


@dataclass(frozen=True)
class MicroPoint:
    """One microbenchmark: ``op`` at ``batch`` x ``q`` new tokens over ``kv_len`` cached tokens."""

    op: str
    variant: str  # decode, verify, draft (attention); q1 / verify (GEMMs...); ladder (all-reduce)
    batch: int
    q: int
    kv_len: int
    gpus: int = 1

    @property
    def key(self) -> str:
        """Unique id of the point in measurements.csv (what --resume skips)."""
        return f"micro|{self.op}|{self.variant}|B={self.batch}|q={self.q}|kv={self.kv_len}|G={self.gpus}"

    @property
    def tokens(self) -> int:
        return self.batch * self.q

    def label(self) -> str:
        text = f"{self.op} ({self.variant}) B={self.batch} q={self.q}"
        return text + (f" kv={self.kv_len}" if self.kv_len else "")


def point_cost(arch: ModelArch, sh: Shard, point: MicroPoint) -> OpCost:
    """FLOPs, bytes (and all-reduce message bytes) of one occurrence of ``point.op`` per GPU."""
    for op in step_ops(arch, sh, point.batch, point.q, point.kv_len):
        if op.name == point.op:
            return replace(op, count=1)
    raise KeyError(point.op)


def plan_points(
    arch: ModelArch,
    gpus: int,
    batches: Sequence[int],
    seq_lens: Sequence[int],
    budgets: Sequence[int],
    gammas: Sequence[int],
) -> list[MicroPoint]:
    """Microbenchmark points for the asked grid (what the fit sees).

    GEMMs and elementwise ops at every batch for decode (q = 1) and verify (q = gamma + 1);
    attention for decode and verify over every sequence length and for the draft over every
    budget; all-reduces (G > 1 only) over a ladder of message sizes plus the decode sizes.
    """
    qs = sorted({1, *(g + 1 for g in gammas)})
    points: list[MicroPoint] = []
    for B in batches:
        for q in qs:
            variant = "decode" if q == 1 else "verify"
            points += [MicroPoint(op, variant, B, q, 0, gpus) for op in GEMM_OPS]
            points += [MicroPoint(op, variant, B, q, 0, gpus) for op in ELEMENTWISE_OPS]
    for B in batches:
        for S in seq_lens:
            points.append(MicroPoint("attention", "decode", B, 1, S, gpus))
            points += [MicroPoint("attention", "verify", B, g + 1, S, gpus) for g in sorted(set(gammas))]
        for K in budgets:
            points.append(MicroPoint("attention", "draft", B, 1, K, gpus))
    if gpus > 1:
        tokens = sorted({*ALLREDUCE_TOKENS, *batches})
        points += [MicroPoint("allreduce_attn", "ladder", T, 1, 0, gpus) for T in tokens]
    # de-duplicate (draft budget == a sequence length), keep order
    seen: set[str] = set()
    return [p for p in points if not (p.key in seen or seen.add(p.key))]


class MicroBench:
    """Runs :class:`MicroPoint` s on one rank with a decoder of one layer of the rank's shard."""

    def __init__(self, decoder: Decoder, backend: Any, timer: Timer, dist_group: Any = None):
        self.dec = decoder
        self.backend = backend
        self.timer = timer
        self.group = dist_group  # torch.distributed in use (None: single process)

    def measure(self, point: MicroPoint) -> Timing:
        """Time one point (seconds); under TP the maximum over ranks of the per-rank median."""
        if point.op.startswith("allreduce"):
            return self._allreduce(point)
        fn = self._callable(point)
        # weights and KV stream from memory in a real step (flush); an elementwise op's input was
        # just written by the previous op, so it is timed with a warm cache
        timing = self.timer(fn, flush=point.op not in ELEMENTWISE_OPS)
        if self.group is not None:
            timing = _max_over_ranks(timing, self.dec.device)
        return timing

    # ------------------------------------------------------------------ kernels
    def _rand(self, *shape: int) -> Any:
        return torch.randn(*shape, device=self.dec.device, dtype=self.dec.dtype)

    def _callable(self, p: MicroPoint) -> Any:
        d, B, q = self.dec, p.batch, p.q
        h = d.arch.hidden_size
        qd = d.num_heads * d.head_dim
        inter = d.layers[0].w_down.shape[1]
        if p.op == "qkv_proj":
            x = self._rand(B, q, h)
            return lambda: d.qkv_proj(0, x)
        if p.op == "o_proj":
            x = self._rand(B, q, qd)
            return lambda: d.o_proj(0, x)
        if p.op == "gate_up_proj":
            x = self._rand(B, q, h)
            return lambda: d.gate_up_proj(0, x)
        if p.op == "down_proj":
            x = self._rand(B, q, inter)
            return lambda: d.down_proj(0, x)
        if p.op == "lm_head":
            x = self._rand(B, q, h)
            return lambda: d.lm_head(x)
        if p.op == "attn_norm":
            x = self._rand(B, q, h)
            return lambda: d.attn_norm(0, x)
        if p.op == "rotary":
            qt = self._rand(B, q, d.num_heads, d.head_dim)
            kt = self._rand(B, q, d.num_kv_heads, d.head_dim)
            pos = torch.arange(q, device=d.device)[None, :].expand(B, q) + p.kv_len
            cos, sin = d.rotary_tables(pos)
            return lambda: d.rotary(qt, kt, cos, sin)
        if p.op == "act":
            gu = self._rand(B, q, d.layers[0].w_gate_up.shape[0])
            return lambda: d.act(gu)
        if p.op == "sampling":
            logits = self._rand(B, q, d.head.shape[0])
            return lambda: d.sampling(logits)
        if p.op == "attention":
            cache = d.new_cache(B, p.kv_len + q)
            cache.fill_random(p.kv_len)  # kv_len cached tokens of random K/V (never time on zeros)
            cache.reserve(q)
            self.backend.plan(cache, q, d.num_heads)  # planning stays outside the timed call
            qt = self._rand(B, q, d.num_heads, d.head_dim)
            kt = self._rand(B, q, d.num_kv_heads, d.head_dim)
            vt = self._rand(B, q, d.num_kv_heads, d.head_dim)
            # writes the q new K/V into the same reserved slots every call, then attends
            return lambda: d.attention(0, qt, kt, vt, cache, self.backend)
        raise KeyError(f"no microbenchmark for op {p.op!r}")

    def _allreduce(self, p: MicroPoint) -> Timing:
        """All-reduce of ``tokens x hidden`` elements, fixed repetitions on every rank, max over ranks."""
        from .timing import Timing

        if self.group is None:
            raise RuntimeError("all-reduce points need torch.distributed (run with --gpus N or torchrun)")
        d = self.dec
        t = self._rand(p.tokens, d.arch.hidden_size)
        reps, warm = 20, 3
        cuda = d.device.type == "cuda"
        for _ in range(warm):
            dist.all_reduce(t)
        samples = []
        dist.barrier()
        if cuda:
            torch.cuda.synchronize(d.device)
            ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(reps)]
            for s, e in ev:
                s.record()
                dist.all_reduce(t)
                e.record()
            torch.cuda.synchronize(d.device)
            samples = [s.elapsed_time(e) * 1e-3 for s, e in ev]
        else:
            import time

            for _ in range(reps):
                t0 = time.perf_counter()
                dist.all_reduce(t)
                samples.append(time.perf_counter() - t0)
        return _max_over_ranks(Timing.of(samples), d.device)


def _max_over_ranks(timing: Timing, device: Any) -> Timing:
    """Element-wise maximum of (median, p25, p75) over all ranks."""
    from .timing import Timing

    dev = device if dist.get_backend() == "nccl" else "cpu"
    v = torch.tensor([timing.median, timing.p25, timing.p75], dtype=torch.float64, device=dev)
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    m, a, b = (float(x) for x in v.cpu())
    return Timing(m, a, b, timing.reps)


def costs_table(arch: ModelArch, gpus: int, points: Iterable[MicroPoint]) -> dict[str, OpCost]:
    """``{point.key: OpCost}`` for many points (per GPU, one occurrence)."""
    sh = shard(arch, gpus)
    return {p.key: point_cost(arch, sh, p) for p in points}


def scalar(x: Any) -> float:
    """A 0-d (or size-1) array as a float."""
    return float(np.asarray(x, dtype=float).reshape(-1)[0])
