"""Tensor parallelism applied to a built decoder from outside: Megatron-style shards, in place.

:func:`parallelize` takes a full-size :class:`~.decoder.Decoder` and keeps, for one rank, exactly
the shard :func:`magicdec_model.perfmodel.parallel.shard` costs (what perfmodel predicts is what
runs), then installs the collectives in place of the decoder's identity hooks:

- ``wqkv`` column-parallel: the rank's ``q_heads`` query heads and the ``kv_heads`` KV heads they
  read (a query head stays with its KV head).  With more ranks than KV heads each rank holds the
  one KV head of its query heads (KV heads replicated, as vLLM and SGLang do);
- ``wo`` row-parallel: the input columns of the rank's query heads; output summed by
  ``allreduce_attn``;
- ``w_gate_up`` column-parallel (the rank's slice of the gate rows and of the up rows) and
  ``w_down`` row-parallel, each rank ``ceil(intermediate / W)`` wide (zero padding on the last
  ranks, which adds nothing); output summed by ``allreduce_mlp``;
- norms and embedding replicated; the LM head split by vocabulary, ``ceil(vocab / W)`` rows per
  rank (zero rows as padding), the local logits all-gathered by ``gather_logits`` and the padding
  dropped.  MagicDec also splits the LM head but reduces only the argmax; gathering the logits
  moves more bytes (``B * T * V`` elements) but keeps sampling unchanged.

Each rank's KV cache then holds only its KV heads.  The process group comes from
:mod:`.distributed`.
"""

from __future__ import annotations

import torch

from ..perfmodel.architecture import ModelArch
from ..perfmodel.parallel import Shard, shard
from .decoder import Decoder
from .distributed import TensorParallel
from .weights import LayerWeights


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` with zero rows appended up to ``rows`` rows."""
    if t.shape[0] >= rows:
        return t
    return torch.cat([t, t.new_zeros((rows - t.shape[0], *t.shape[1:]))])


def _rows(t: torch.Tensor, rank: int, per_rank: int) -> torch.Tensor:
    """Rank ``rank``'s block of ``per_rank`` rows, zero-padded past the end of ``t``."""
    return _pad_rows(t[rank * per_rank:(rank + 1) * per_rank], per_rank)


def kv_head_start(arch: ModelArch, sh: Shard, rank: int) -> int:
    """The first KV head rank ``rank`` holds: the one its first query head reads."""
    group = arch.num_heads // arch.num_kv_heads  # query heads per KV head
    return rank * sh.q_heads // group


def shard_layer(lw: LayerWeights, arch: ModelArch, rank: int, world: int) -> LayerWeights:
    """Rank ``rank``'s shard of one layer's full weights (layout in the module docstring)."""
    sh = shard(arch, world)
    D = arch.head_dim
    q_rows = torch.arange(rank * sh.q_heads * D, (rank + 1) * sh.q_heads * D)
    kv0 = kv_head_start(arch, sh, rank) * D
    kv_rows = torch.arange(kv0, kv0 + sh.kv_heads * D)
    qkv_rows = torch.cat([q_rows, arch.q_dim + kv_rows, arch.q_dim + arch.kv_dim + kv_rows])
    inter, i_local = arch.intermediate_size, sh.intermediate
    if arch.gated_mlp:
        gate, up = lw.w_gate_up[:inter], lw.w_gate_up[inter:]
        gate_up = torch.cat([_rows(gate, rank, i_local), _rows(up, rank, i_local)])
    else:
        gate_up = _rows(lw.w_gate_up, rank, i_local)
    down = _rows(lw.w_down.T, rank, i_local).T
    return LayerWeights(
        attn_norm=lw.attn_norm,
        wqkv=lw.wqkv[qkv_rows],
        bqkv=None if lw.bqkv is None else lw.bqkv[qkv_rows],
        wo=lw.wo[:, q_rows],
        mlp_norm=lw.mlp_norm,
        w_gate_up=gate_up.contiguous(),
        w_down=down.contiguous(),
    )


def parallelize(decoder: Decoder, tp: TensorParallel) -> Decoder:
    """Shard ``decoder`` (full size) in place for ``tp.rank`` of ``tp.world_size``; return it.

    Raises :class:`~..perfmodel.errors.InputError` where perfmodel cannot split the model.  The
    decoder's ``allreduce_attn`` / ``allreduce_mlp`` become sums over the group and
    ``gather_logits`` gathers the vocabulary shards; with one process nothing changes.
    """
    world, rank = tp.world_size, tp.rank
    if world == 1:
        return decoder
    arch = decoder.arch
    sh = shard(arch, world)
    decoder.layers = [shard_layer(lw, arch, rank, world) for lw in decoder.layers]
    decoder.num_heads, decoder.num_kv_heads = sh.q_heads, sh.kv_heads
    decoder.head = _rows(decoder.head, rank, sh.vocab).contiguous()
    vocab = arch.vocab_size

    def gather_logits(logits: torch.Tensor) -> torch.Tensor:
        return tp.all_gather_last(logits)[..., :vocab]

    decoder.allreduce_attn = tp.all_reduce  # type: ignore[method-assign]
    decoder.allreduce_mlp = tp.all_reduce  # type: ignore[method-assign]
    decoder.gather_logits = gather_logits  # type: ignore[method-assign]
    return decoder
