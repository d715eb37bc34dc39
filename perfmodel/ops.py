"""FLOPs and bytes of every op of a decoder step, per GPU, as array functions.

The single home of every cost formula.  Each op gets ``flops`` (FLOP) and ``bytes`` (HBM bytes
read + written) per GPU per occurrence, as numpy arrays broadcast over the inputs, plus how
often it occurs in a step (``count``: once per layer or once per step).  All-reduce ops carry
their message size in ``comm_bytes`` instead.

Notation: B batch, q new tokens per sequence in the step (1 for decode and draft, gamma+1 for
verify), n the KV length already cached that the step's attention reads, T = B*q tokens,
h hidden size, d head dim, G tensor-parallel degree, dt bytes per element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .architecture import ModelArch
from .parallel import Shard

LAYER_OPS = (
    "attn_norm",
    "qkv_proj",
    "rotary",
    "attention",
    "o_proj",
    "allreduce_attn",
    "mlp_norm",
    "gate_up_proj",
    "act",
    "down_proj",
    "allreduce_mlp",
)
STEP_OPS = ("embedding", "final_norm", "lm_head", "sampling", "allreduce_sampling")
OP_NAMES = LAYER_OPS + STEP_OPS


@dataclass
class OpCost:
    """Cost of one op per GPU per occurrence (FLOP, bytes) and its occurrences per step."""

    name: str
    op_class: str  # "gemm", "attention", "elementwise" or "allreduce"
    flops: np.ndarray
    bytes: np.ndarray
    count: int
    comm_bytes: np.ndarray = field(default_factory=lambda: np.zeros(()))
    weight_bytes: np.ndarray = field(default_factory=lambda: np.zeros(()))
    kv_read_bytes: np.ndarray = field(default_factory=lambda: np.zeros(()))


def _gemm(name: str, tokens: np.ndarray, k: int, m: int, dt: int, count: int) -> OpCost:
    """A (tokens x k) @ (k x m) projection: weights read once, activations read and written."""
    weights = float(k * m * dt)
    return OpCost(
        name=name,
        op_class="gemm",
        flops=2.0 * tokens * k * m,
        bytes=weights + tokens * (k + m) * dt,
        count=count,
        weight_bytes=np.asarray(weights),
    )


def step_ops(
    arch: ModelArch,
    sh: Shard,
    batch: np.ndarray,
    q: np.ndarray,
    kv_len: np.ndarray,
) -> list[OpCost]:
    """Per-GPU costs of every op in one forward step over ``q`` new tokens per sequence.

    ``batch``, ``q`` and ``kv_len`` (tokens already in the cache that attention reads) broadcast
    together.  Attention reads ``kv_len + q`` cached tokens (the new ones are appended first),
    causal within the new tokens: query i sees ``kv_len + i + 1`` keys.
    """
    B = np.asarray(batch, dtype=float)
    q = np.asarray(q, dtype=float)
    n = np.asarray(kv_len, dtype=float)
    T = B * q
    h, d, dt, L = arch.hidden_size, arch.head_dim, arch.dtype_bytes, arch.num_layers
    qd = sh.q_heads * d  # query width per GPU
    kvd = sh.kv_heads * d  # K (or V) width per GPU
    inter, vocab = sh.intermediate, sh.vocab
    G = sh.gpus

    def elementwise(name: str, flops, nbytes, count: int, weights: float = 0.0) -> OpCost:
        return OpCost(name, "elementwise", np.asarray(flops, float), np.asarray(nbytes, float),
                      count, weight_bytes=np.asarray(weights))

    def allreduce(name: str, message, count: int, active: bool = True) -> OpCost:
        zero = np.zeros_like(T)
        msg = np.asarray(message, float) if (G > 1 and active) else zero
        return OpCost(name, "allreduce", zero, zero, count, comm_bytes=msg)

    # Norms fuse the residual add: read x and residual, write both; 4 FLOP per element.
    norm_bytes = 4.0 * T * h * dt + h * dt
    qkv = _gemm("qkv_proj", T, h, qd + 2 * kvd, dt, L)
    if arch.qkv_bias:
        qkv.bytes = qkv.bytes + (qd + 2 * kvd) * dt
        qkv.weight_bytes = qkv.weight_bytes + (qd + 2 * kvd) * dt
    # Attention: read q, the cache (n + q tokens of K and V), write the new K/V and the output.
    kv_read = 2.0 * B * (n + q) * kvd * dt
    attn_pairs = q * n + q * (q + 1) / 2.0  # (query, key) pairs per sequence and head
    attention = OpCost(
        name="attention",
        op_class="attention",
        flops=4.0 * B * sh.q_heads * d * attn_pairs,
        bytes=kv_read + 2.0 * T * kvd * dt + 2.0 * T * qd * dt,
        count=L,
        kv_read_bytes=kv_read,
    )
    ops = [
        elementwise("attn_norm", 4.0 * T * h, norm_bytes, L, h * dt),
        qkv,
        elementwise("rotary", 3.0 * T * (qd + kvd), 2.0 * T * (qd + kvd) * dt, L),
        attention,
        _gemm("o_proj", T, qd, h, dt, L),
        allreduce("allreduce_attn", T * h * dt, L),
        elementwise("mlp_norm", 4.0 * T * h, norm_bytes, L, h * dt),
        _gemm("gate_up_proj", T, h, (2 if arch.gated_mlp else 1) * inter, dt, L),
        elementwise("act", 5.0 * T * inter, (3 if arch.gated_mlp else 2) * T * inter * dt, L),
        _gemm("down_proj", T, inter, h, dt, L),
        allreduce("allreduce_mlp", T * h * dt, L),
        # Per step: the embedding table is replicated, rows gathered; LM head vocab-parallel.
        elementwise("embedding", np.zeros_like(T), 2.0 * T * h * dt, 1),
        elementwise("final_norm", 4.0 * T * h, norm_bytes, 1, h * dt),
        _gemm("lm_head", T, h, vocab, dt, 1),
        elementwise("sampling", T * vocab, T * vocab * dt, 1),
        # Greedy argmax across vocab shards: two tiny all-reduces (value and index), as MagicDec.
        allreduce("allreduce_sampling", 2.0 * T * 4, 2),
    ]
    return ops


def weight_bytes_per_gpu(arch: ModelArch, sh: Shard) -> float:
    """Bytes of weights held by one GPU under the sharding ``sh`` (bytes)."""
    h, d, dt = arch.hidden_size, arch.head_dim, arch.dtype_bytes
    qd, kvd = sh.q_heads * d, sh.kv_heads * d
    per_layer = h * (qd + 2 * kvd) + qd * h + (3 if arch.gated_mlp else 2) * h * sh.intermediate
    per_layer += 2 * h + (qd + 2 * kvd if arch.qkv_bias else 0)
    embed = arch.vocab_size * h
    head = 0 if arch.tie_embeddings else sh.vocab * h
    return float((arch.num_layers * per_layer + embed + head + h) * dt)


def kv_bytes_per_token_per_gpu(arch: ModelArch, sh: Shard) -> float:
    """Bytes of K and V cache per token on one GPU, all layers (bytes)."""
    return float(2 * arch.num_layers * sh.kv_heads * arch.head_dim * arch.dtype_bytes)
