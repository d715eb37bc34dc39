"""Decoder weights: the per-layer and whole-model records, and seeded synthetic weights.

Linear weights are ``[out, in]``; the fused QKV rows are Q, then K, then V; the fused gate/up rows
are gate, then up.  :func:`synthetic_weights` draws each tensor from (seed, its name, device type)
alone, so a slice of K layers equals the first K layers of the full model.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..perfmodel.architecture import ModelArch


@dataclass
class LayerWeights:
    """Weights of one layer (a rank's shard under TP, see :mod:`.tensor_parallel`); ``[out, in]``."""

    attn_norm: torch.Tensor  # [hidden]
    wqkv: torch.Tensor  # [q_dim + 2 kv_dim, hidden]  (Q rows, then K rows, then V rows)
    bqkv: torch.Tensor | None  # [q_dim + 2 kv_dim]
    wo: torch.Tensor  # [hidden, q_dim]
    mlp_norm: torch.Tensor  # [hidden]
    # [2 * inter, hidden] when gated (gate rows, then up rows); [inter, hidden] otherwise
    w_gate_up: torch.Tensor
    w_down: torch.Tensor  # [hidden, inter]


@dataclass
class DecoderWeights:
    """All weights: embedding ``[vocab, hidden]``, layers, final norm, LM head (None when tied)."""

    embedding: torch.Tensor
    layers: Iterable[LayerWeights]  # a list, or a one-shot iterator (built layer by layer)
    final_norm: torch.Tensor
    lm_head: torch.Tensor | None


def _seeded(
    shape: tuple[int, ...], seed: int, name: str, std: float, dtype: Any, device: Any = "cpu"
) -> torch.Tensor:
    """Normal(0, std) tensor depending only on (seed, name, shape, device type), built in chunks."""
    device = torch.device(device)
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    out = torch.empty(shape, dtype=dtype, device=device)
    flat = out.view(-1)
    chunk = 1 << 22
    for start in range(0, flat.numel(), chunk):
        n = min(chunk, flat.numel() - start)
        flat[start : start + n] = (
            torch.randn(n, generator=g, dtype=torch.float32, device=device) * std
        )
    return out


def synthetic_weights(
    arch: ModelArch,
    layers: int | None = None,
    seed: int = 0,
    dtype: Any = None,
    *,
    device: Any = "cpu",
    lazy: bool = False,
) -> DecoderWeights:
    """Full (unsharded) random weights; each tensor depends only on (seed, its name, device type).

    Linear weights are Normal(0, 1/sqrt(fan_in)), norms 1 + Normal(0, 0.05), embedding Normal(0, 1).
    So ``layers=K`` gives exactly the first K layers of the full model with the same seed.  CPU
    and CUDA random streams differ, so weights generated on a GPU differ from CPU ones.  With
    ``lazy=True`` the layers come as an iterator, generated one at a time (what
    :meth:`Decoder.synthetic` uses, so only one full layer exists before sharding).
    """
    dtype = dtype or torch.float32
    n_layers = arch.num_layers if layers is None else layers
    if not 1 <= n_layers <= arch.num_layers:
        raise ValueError(f"layers={layers} must be in 1..{arch.num_layers}")
    h, inter = arch.hidden_size, arch.intermediate_size
    qkv_out = arch.q_dim + 2 * arch.kv_dim
    up_out = 2 * inter if arch.gated_mlp else inter

    def lin(name: str, out_f: int, in_f: int) -> torch.Tensor:
        return _seeded((out_f, in_f), seed, name, 1.0 / math.sqrt(in_f), dtype, device)

    def norm(name: str) -> torch.Tensor:
        return (1.0 + _seeded((h,), seed, name, 0.05, torch.float32, device)).to(dtype)

    def layer(i: int) -> LayerWeights:
        p = f"layers.{i}."
        bias = _seeded((qkv_out,), seed, p + "bqkv", 0.02, dtype, device) if arch.qkv_bias else None
        return LayerWeights(
            attn_norm=norm(p + "attn_norm"),
            wqkv=lin(p + "wqkv", qkv_out, h),
            bqkv=bias,
            wo=lin(p + "wo", h, arch.q_dim),
            mlp_norm=norm(p + "mlp_norm"),
            w_gate_up=lin(p + "w_gate_up", up_out, h),
            w_down=lin(p + "w_down", h, inter),
        )

    layer_iter: Iterator[LayerWeights] = (layer(i) for i in range(n_layers))
    embedding = _seeded((arch.vocab_size, h), seed, "embedding", 1.0, dtype, device)
    lm_head = None if arch.tie_embeddings else lin("lm_head", arch.vocab_size, h)
    return DecoderWeights(
        embedding, layer_iter if lazy else list(layer_iter), norm("final_norm"), lm_head
    )
