"""FLOPs and bytes of every op of a decoder step, per GPU, as array functions.

The single home of every cost formula.  Each op gets ``flops`` (FLOP) and ``bytes`` (HBM bytes
read + written) per GPU per occurrence, as numpy arrays broadcast over the inputs, plus how
often it occurs in a step (``count``: once per layer of its kind, or once per step).  All-reduce
ops carry their message size in ``comm_bytes`` instead.

Notation: B batch, q new tokens per sequence in the step (1 for decode and draft, gamma+1 for
verify), n the KV length already cached that the step's attention reads, T = B*q tokens,
h hidden size, d head dim, G tensor-parallel degree, dt bytes per activation element, wb bytes
per weight element, kvb bytes per KV element (:class:`number_formats.Formats`).

Layers differ only where the model says so (``docs/model.md`` §2): windowed layers read at most
their window of KV (op ``attention_window``), MLA layers attend over a latent (``q_proj``,
``kv_a_proj``, ``mla_absorb_q``, ``mla_absorb_o``), MoE layers route each token to k of E
experts (``router``, ``expert_*``, ``shared_*``) and dense layers of an MoE model keep the dense
MLP ops with their own count.  A dense LLaMA-family model has exactly :data:`OP_NAMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .architecture import ModelArch
from .number_formats import Formats, formats_for
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
#: The ops of a dense LLaMA-family step, in order.
OP_NAMES = LAYER_OPS + STEP_OPS
MLA_OPS = ("q_proj", "kv_a_proj", "mla_absorb_q", "mla_absorb_o")
MOE_OPS = ("router", "expert_gate_up", "expert_act", "expert_down", "shared_gate_up", "shared_act",
           "shared_down")
#: Every op name any step can have (draft_fc: the input fusion of an EAGLE or MTP head).
ALL_OP_NAMES = OP_NAMES + MLA_OPS + MOE_OPS + ("attention_window", "qk_norm", "post_norms", "draft_fc")


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
    #: activation rows per weight read of a projection (B*q); 0 for ops that are not projections
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(()))
    #: element size the op computes at (selects the tensor-core peak); 0: the model's activations
    compute_bytes: int = 0


def default_formats(arch: ModelArch) -> Formats:
    """The model's native formats: its checkpoint's weights and experts, KV as the activations."""
    return formats_for(arch.weight_format(), arch.weight_format(expert=True), arch.dtype_bytes)


def _gemm(name: str, tokens: np.ndarray, k: float, m: float, wb: float, dt: float, count: int,
          compute_bytes: int = 0) -> OpCost:
    """A (tokens x k) @ (k x m) projection: weights read once, activations read and written."""
    weights = float(k * m * wb)
    return OpCost(
        name=name,
        op_class="gemm",
        flops=2.0 * tokens * k * m,
        bytes=weights + tokens * (k + m) * dt,
        count=count,
        weight_bytes=np.asarray(weights),
        tokens=np.asarray(tokens, dtype=float),
        compute_bytes=compute_bytes,
    )


def experts_touched(tokens: np.ndarray, experts: int, top_k: int) -> np.ndarray:
    """Expected distinct experts of E that T tokens, each routed to k of them, touch: E(1-(1-k/E)^T).

    Uniform, independent routing (an assumption: real routers are skewed, which touches fewer).
    """
    T = np.asarray(tokens, dtype=float)
    return experts * (1.0 - (1.0 - top_k / experts) ** T)


def _attention_pairs(q: np.ndarray, n: np.ndarray, window: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(query, key) pairs per sequence and head, and KV tokens read per sequence.

    Query i (1..q) of the step sees n + i keys (causal within the new tokens); a windowed layer at
    most ``window`` of them, so the step reads min(n + q, window + q - 1) cached tokens.
    """
    if window is None:
        return q * n + q * (q + 1) / 2.0, n + q
    w = float(window)
    c = np.clip(w - n, 0.0, q)  # queries whose whole prefix fits in the window
    pairs = c * n + c * (c + 1) / 2.0 + (q - c) * w
    return pairs, np.minimum(n + q, w + q - 1.0)


#: Totals of a step's attention over its sequences for a window (None: global layers):
#: (query-key pairs, KV tokens read), each summed over the sequences (:func:`_attention_pairs`).
AttentionTotals = Callable[[float | None], tuple[np.ndarray, np.ndarray]]


def uniform_attention(batch: np.ndarray, q: np.ndarray, kv_len: np.ndarray) -> AttentionTotals:
    """The attention totals of ``batch`` equal sequences of ``q`` new and ``kv_len`` cached tokens."""
    B = np.asarray(batch, dtype=float)
    q = np.asarray(q, dtype=float)
    n = np.asarray(kv_len, dtype=float)

    def totals(window: float | None) -> tuple[np.ndarray, np.ndarray]:
        pairs, kv_tok = _attention_pairs(q, n, window)
        return B * pairs, B * kv_tok
    return totals


def ragged_attention(q_seq: np.ndarray, kv_seq: np.ndarray, count: np.ndarray | None = None
                     ) -> AttentionTotals:
    """The attention totals of a ragged batch: sequence i (last axis) has ``q_seq[..., i]`` new and
    ``kv_seq[..., i]`` cached tokens and occurs ``count[..., i]`` times (default once)."""
    q = np.asarray(q_seq, dtype=float)
    n = np.asarray(kv_seq, dtype=float)

    def totals(window: float | None) -> tuple[np.ndarray, np.ndarray]:
        pairs, kv_tok = _attention_pairs(q, n, window)
        if count is not None:
            c = np.asarray(count, dtype=float)
            pairs, kv_tok = c * pairs, c * kv_tok
        if np.shape(kv_tok) != pairs.shape:
            kv_tok = np.broadcast_to(kv_tok, pairs.shape)
        return pairs.sum(axis=-1), kv_tok.sum(axis=-1)
    return totals


def step_ops(
    arch: ModelArch,
    sh: Shard,
    batch: np.ndarray,
    q: np.ndarray,
    kv_len: np.ndarray,
    fmt: Formats | None = None,
    fuse_inputs: int = 0,
    all_experts: bool = False,
) -> list[OpCost]:
    """Per-GPU costs of every op in one forward step over ``q`` new tokens per sequence.

    ``batch``, ``q`` and ``kv_len`` (tokens already in the cache that attention reads) broadcast
    together.  Attention reads ``kv_len + q`` cached tokens (the new ones are appended first),
    causal within the new tokens: query i sees ``kv_len + i`` keys (at most the window of a
    windowed layer).  ``fmt`` sets the weight and KV formats (default: the model's native ones);
    ``fuse_inputs`` > 0 adds the input projection of a draft head (EAGLE, MTP) from
    ``fuse_inputs x h`` to ``h``; ``all_experts`` charges every routed expert's weights (what a
    GPU stores, :func:`weight_bytes_per_gpu`) instead of the expected touched ones.
    """
    T = np.asarray(batch, dtype=float) * np.asarray(q, dtype=float)
    return tokens_step_ops(arch, sh, T, uniform_attention(batch, q, kv_len), fmt, fuse_inputs,
                           all_experts)


def ragged_step_ops(
    arch: ModelArch,
    sh: Shard,
    q_seq: np.ndarray,
    kv_seq: np.ndarray,
    fmt: Formats | None = None,
    fuse_inputs: int = 0,
    count: np.ndarray | None = None,
) -> list[OpCost]:
    """Per-GPU costs of a step over a ragged batch: sequence i (the last axis) brings
    ``q_seq[..., i]`` new tokens and reads ``kv_seq[..., i]`` cached ones (decode, verify, draft or
    a prefill chunk), ``count[..., i]`` times (default once).

    Projections, norms and all-reduces run on the sum of the new tokens; attention on the sum over
    sequences of its pairs and KV reads (causal within each sequence's new tokens).  One group of
    ``count`` = B equal sequences is :func:`step_ops` exactly.
    """
    q = np.asarray(q_seq, dtype=float)
    T = (q if count is None else q * np.asarray(count, dtype=float)).sum(axis=-1)
    return tokens_step_ops(arch, sh, T, ragged_attention(q_seq, kv_seq, count), fmt, fuse_inputs)


def attention_ops(arch: ModelArch, sh: Shard, tokens: np.ndarray, attn: AttentionTotals,
                  fmt: Formats | None = None) -> list[OpCost]:
    """The attention kernels of a step (one op per window of the model's layers) over ``tokens``
    new tokens in all with the attention totals ``attn``."""
    fmt = fmt or default_formats(arch)
    T = np.asarray(tokens, dtype=float)
    d, dt, kvb, qh = arch.head_dim, arch.dtype_bytes, fmt.kv_bytes, sh.q_heads
    windows = arch.layer_windows()
    groups = {w: windows.count(w) for w in dict.fromkeys(windows)}
    ops = []
    for w, count in groups.items():
        pairs, kv_tok = attn(w)
        name = "attention" if w is None else "attention_window"
        if arch.is_mla:
            latent, lora = arch.kv_lora_rank + arch.qk_rope_head_dim, arch.kv_lora_rank
            kv_read = kv_tok * latent * kvb  # one latent per token, shared by every head
            ops.append(OpCost(
                name=name, op_class="attention", flops=2.0 * qh * pairs * (latent + lora),
                bytes=kv_read + T * latent * kvb + T * qh * (latent + lora) * dt,
                count=count, kv_read_bytes=kv_read))
        else:
            qd, kvd = qh * d, sh.kv_heads * d
            kv_read = 2.0 * kv_tok * kvd * kvb
            ops.append(OpCost(
                name=name, op_class="attention", flops=4.0 * qh * d * pairs,
                bytes=kv_read + 2.0 * T * kvd * kvb + 2.0 * T * qd * dt,
                count=count, kv_read_bytes=kv_read))
    return ops


def tokens_step_ops(
    arch: ModelArch,
    sh: Shard,
    tokens: np.ndarray,
    attn: AttentionTotals,
    fmt: Formats | None = None,
    fuse_inputs: int = 0,
    all_experts: bool = False,
) -> list[OpCost]:
    """The ops of a step over ``tokens`` new tokens in all and the attention totals ``attn``
    (:func:`uniform_attention` or :func:`ragged_attention`): what :func:`step_ops` and
    :func:`ragged_step_ops` both build on."""
    fmt = fmt or default_formats(arch)
    T = np.asarray(tokens, dtype=float)
    h, d, dt, L = arch.hidden_size, arch.head_dim, arch.dtype_bytes, arch.num_layers
    wb, eb = fmt.weight_bytes, fmt.expert_bytes
    cw, ce = fmt.compute_bytes(fmt.weight), fmt.compute_bytes(fmt.expert)
    qh = sh.q_heads
    inter, vocab = sh.intermediate, sh.vocab
    G = sh.gpus

    def elementwise(name: str, flops, nbytes, count: int, weights: float = 0.0) -> OpCost:
        return OpCost(name, "elementwise", np.asarray(flops, float), np.asarray(nbytes, float),
                      count, weight_bytes=np.asarray(weights))

    def allreduce(name: str, message, count: int) -> OpCost:
        zero = np.zeros_like(T)
        msg = np.asarray(message, float) if G > 1 else zero
        return OpCost(name, "allreduce", zero, zero, count, comm_bytes=msg)

    def gemm(name: str, k: float, m: float, count: int, tokens=T, w=wb, c=cw) -> OpCost:
        return _gemm(name, tokens, k, m, w, dt, count, c)

    # Norms fuse the residual add: read x and residual, write both; 4 FLOP per element.
    norm_bytes = 4.0 * T * h * dt + h * dt
    ops = [elementwise("attn_norm", 4.0 * T * h, norm_bytes, L, h * dt)]

    # ---- attention: projections, rotary, the attention kernels per window, output
    if arch.is_mla:
        nope, rope, lora, v = (arch.qk_nope_head_dim, arch.qk_rope_head_dim, arch.kv_lora_rank,
                               arch.v_head_dim)
        latent = lora + rope
        if arch.q_lora_rank:  # q_a (replicated) then q_b (heads split): one op, both weights
            ql = arch.q_lora_rank
            qp = gemm("q_proj", 1.0, h * ql + ql * qh * (nope + rope), L)
            qp.flops = 2.0 * T * (h * ql + ql * qh * (nope + rope))
            qp.bytes = qp.weight_bytes + T * (h + ql + qh * (nope + rope)) * dt
        else:
            qp = gemm("q_proj", h, qh * (nope + rope), L)
        ops += [qp, gemm("kv_a_proj", h, latent, L)]  # replicated: every GPU needs the latent
        ops.append(elementwise("rotary", 3.0 * T * (qh + 1) * rope, 2.0 * T * (qh + 1) * rope * dt, L))
        ops.append(gemm("mla_absorb_q", qh * nope, lora, L))  # W_UK folded into the queries
        ops += attention_ops(arch, sh, T, attn, fmt)
        ops.append(gemm("mla_absorb_o", qh * lora, v, L))  # W_UV back from the latent
        ops.append(gemm("o_proj", qh * v, h, L))
    else:
        qd, kvd = qh * d, sh.kv_heads * d
        qkv = gemm("qkv_proj", h, qd + 2 * kvd, L)
        if arch.qkv_bias:
            qkv.bytes = qkv.bytes + (qd + 2 * kvd) * dt
            qkv.weight_bytes = qkv.weight_bytes + (qd + 2 * kvd) * dt
        ops.append(qkv)
        if arch.qk_norm:  # per-head RMSNorm of queries and keys (Qwen3, Gemma-3)
            ops.append(elementwise("qk_norm", 4.0 * T * (qd + kvd), 2.0 * T * (qd + kvd) * dt, L,
                                   2 * d * dt))
        ops.append(elementwise("rotary", 3.0 * T * (qd + kvd), 2.0 * T * (qd + kvd) * dt, L))
        ops += attention_ops(arch, sh, T, attn, fmt)
        ops.append(gemm("o_proj", qd, h, L))
    ops.append(allreduce("allreduce_attn", T * h * dt, L))
    ops.append(elementwise("mlp_norm", 4.0 * T * h, norm_bytes, L, h * dt))
    if arch.norms_per_layer > 2:  # Gemma: norms after attention and after the MLP too
        extra = L * (arch.norms_per_layer - 2)
        ops.append(elementwise("post_norms", 4.0 * T * h, norm_bytes, extra, h * dt))

    # ---- MLP: dense layers, then MoE layers (routed and shared experts)
    up = 2 if arch.gated_mlp else 1
    n_dense = L - arch.num_moe_layers
    if n_dense:
        ops += [
            gemm("gate_up_proj", h, up * inter, n_dense),
            elementwise("act", 5.0 * T * inter, (up + 1) * T * inter * dt, n_dense),
            gemm("down_proj", inter, h, n_dense),
        ]
    n_moe = arch.num_moe_layers
    if n_moe:
        E, k, ei = arch.num_experts, arch.experts_per_token, sh.expert_intermediate
        ops.append(gemm("router", h, E, n_moe, w=dt, c=0))  # replicated, kept in 16 bits
        held = sh.experts  # experts on this GPU: all (TP) or E / G (EP)
        touched = np.full_like(T, float(held)) if all_experts else experts_touched(T, E, k) * held / E
        rows = T * k * held / E  # token-expert pairs this GPU computes
        for name, k_in, m_out in (("expert_gate_up", h, up * ei), ("expert_down", ei, h)):
            weights = touched * k_in * m_out * eb
            ops.append(OpCost(name, "gemm", 2.0 * rows * k_in * m_out,
                              weights + rows * (k_in + m_out) * dt, n_moe, weight_bytes=weights,
                              tokens=np.where(rows > 0, rows / np.maximum(touched, 1e-30), 0.0),
                              compute_bytes=ce))
            if name == "expert_gate_up":
                ops.append(elementwise("expert_act", 5.0 * rows * ei, (up + 1) * rows * ei * dt, n_moe))
        si = sh.shared_intermediate
        if si:
            ops += [
                gemm("shared_gate_up", h, up * si, n_moe),
                elementwise("shared_act", 5.0 * T * si, (up + 1) * T * si * dt, n_moe),
                gemm("shared_down", si, h, n_moe),
            ]
    ops.append(allreduce("allreduce_mlp", T * h * dt, L))

    # ---- per step: embedding (replicated, rows gathered), final norm, LM head (vocab-parallel,
    # kept at the activations' precision as quantised checkpoints do), greedy sampling
    if fuse_inputs:
        ops.insert(0, gemm("draft_fc", fuse_inputs * h, h, 1))
    ops += [
        elementwise("embedding", np.zeros_like(T), 2.0 * T * h * dt, 1),
        elementwise("final_norm", 4.0 * T * h, norm_bytes, 1, h * dt),
        gemm("lm_head", h, vocab, 1, w=dt, c=0),
        elementwise("sampling", T * vocab, T * vocab * dt, 1),
        # Greedy argmax across vocab shards: two tiny all-reduces (value and index), as MagicDec.
        allreduce("allreduce_sampling", 2.0 * T * 4, 2),
    ]
    return ops


def weight_bytes_per_gpu(arch: ModelArch, sh: Shard, fmt: Formats | None = None) -> float:
    """Bytes of weights one GPU stores under the sharding ``sh`` (bytes).

    The weights every op of a step holds, with every routed expert (``all_experts``), plus the
    replicated embedding table (a step reads only its rows) and, for a tied head, nothing more.
    """
    ops = step_ops(arch, sh, 1, 1, 0, fmt, all_experts=True)
    held = sum(float(np.max(op.weight_bytes)) * op.count for op in ops)
    if arch.tie_embeddings:
        held -= float(np.max(next(op for op in ops if op.name == "lm_head").weight_bytes))
    return held + float(arch.vocab_size * arch.hidden_size * arch.dtype_bytes)


def kv_bytes_per_token_per_layer_per_gpu(arch: ModelArch, sh: Shard, fmt: Formats | None = None
                                         ) -> float:
    """Bytes one token adds to one layer's KV cache on one GPU: the GPU's K/V heads, or MLA's
    whole latent (replicated on every GPU)."""
    fmt = fmt or default_formats(arch)
    full = arch.kv_bytes_per_token_per_layer(fmt.kv_bytes)
    return full if arch.is_mla else full * sh.kv_heads / arch.num_kv_heads


def kv_bytes_per_token_per_gpu(arch: ModelArch, sh: Shard, fmt: Formats | None = None) -> float:
    """Bytes of K and V cache per token on one GPU, all layers, no window applied (bytes)."""
    return arch.num_layers * kv_bytes_per_token_per_layer_per_gpu(arch, sh, fmt)
