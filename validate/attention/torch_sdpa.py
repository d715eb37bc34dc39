"""The torch attention backend: ``scaled_dot_product_attention`` (CPU and GPU)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .base import AttentionBackend

if TYPE_CHECKING:  # pragma: no cover
    from ..kvcache import PagedKVCache


class TorchSDPABackend(AttentionBackend):
    """``torch.nn.functional.scaled_dot_product_attention`` over a dense view of the paged cache.

    Because pages of one request are contiguous (static partition), the K/V of a layer are a free
    view ``[B, capacity, H_kv, D]``; no gather is needed.  A boolean mask (True = attend) encodes
    the bottom-right causal rule and per-request lengths; it is omitted for decode with equal
    lengths.
    """

    name = "torch"

    def __init__(self) -> None:
        self._mask: torch.Tensor | None = None
        self._kv_len = 0
        self._q_len = 0
        self._planned_for: tuple[int, int] | None = None

    def plan(self, cache: PagedKVCache, q_len: int, num_qo_heads: int) -> None:
        lens = cache.lens
        kv_len = int(lens.max())
        self._kv_len, self._q_len = kv_len, q_len
        self._planned_for = (id(cache), cache.version)
        if q_len == 1 and bool((lens == kv_len).all()):
            self._mask = None
            return
        kj = torch.arange(kv_len, device=cache.device)[None, None, :]
        qi = torch.arange(q_len, device=cache.device)[None, :, None]
        # query t of request b sees slots j <= lens[b] - q_len + t
        limit = (lens[:, None, None] - q_len) + qi
        self._mask = (kj <= limit)[:, None]  # [B, 1, T, S]

    def run(self, q: torch.Tensor, cache: PagedKVCache, layer: int) -> torch.Tensor:
        if self._planned_for != (id(cache), cache.version) or q.shape[1] != self._q_len:
            raise RuntimeError("TorchSDPABackend.run called without plan() for this cache state")
        dk, dv = cache.dense_view(layer)
        k = dk[:, : self._kv_len].transpose(1, 2)
        v = dv[:, : self._kv_len].transpose(1, 2)
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2).to(k.dtype),
            k,
            v,
            attn_mask=self._mask,
            scale=1.0 / math.sqrt(q.shape[-1]),
            enable_gqa=q.shape[2] != k.shape[1],
        )
        return out.transpose(1, 2).to(q.dtype)
