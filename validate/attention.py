"""Attention backends behind one interface, and automatic selection.

Every attention call of the validator is "the last ``T`` tokens of each request, already written
to a paged cache, attend to that request's cache with a bottom-right causal mask":

- decode (``T = 1``) over the full KV (the target's AR step),
- verify (``T = gamma + 1``, causal among the new tokens) over the full KV,
- decode over a budget KV (the draft step; a paged cache filled by a StreamingLLM or SnapKV
  selection, see :mod:`.kvcache`).

A backend is used as ``backend.plan(cache, q_len, num_qo_heads)`` once per forward step (metadata,
reused by every layer, like FlashInfer's ``plan``), then ``backend.run(q, cache, layer)`` per layer.

Backends: ``"torch"`` (``scaled_dot_product_attention``, CPU and GPU) here, and ``"flashinfer"``
(GPU only) in :mod:`magicdec_model.validate.flashinfer_backend`, the only module that imports it.
"""

from __future__ import annotations

import importlib.util
import math
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .kvcache import PagedKVCache

BACKEND_ENV = "MAGICDEC_ATTENTION_BACKEND"


class AttentionBackend(ABC):
    """Interface of an attention backend (see the module docstring for the call protocol)."""

    name: str = "abstract"

    @abstractmethod
    def plan(self, cache: PagedKVCache, q_len: int, num_qo_heads: int) -> None:
        """Prepare one forward step of ``q_len`` new tokens per request over ``cache``."""

    @abstractmethod
    def run(self, q: torch.Tensor, cache: PagedKVCache, layer: int) -> torch.Tensor:
        """Attention output ``[B, T, H, D]`` for queries ``q`` ``[B, T, H, D]`` at ``layer``."""

    def describe(self) -> dict[str, str]:
        """Labels to store with every timing record (backend name, library versions)."""
        return {"backend": self.name}


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
        import torch

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
        import torch

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


def flashinfer_usable(device: torch.device | str) -> bool:
    """True when FlashInfer can run on ``device``: CUDA, capability >= 7.5, package installed."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability(device) < (7, 5):
        return False
    try:
        return importlib.util.find_spec("flashinfer") is not None
    except (ImportError, ValueError):
        return False


def select_backend(
    name: str | None = "auto", device: torch.device | str = "cpu", **options: object
) -> AttentionBackend:
    """Return an attention backend.

    Args:
        name: ``"auto"`` (FlashInfer when :func:`flashinfer_usable`, else torch), ``"torch"`` or
            ``"flashinfer"``.  ``None`` reads the ``MAGICDEC_ATTENTION_BACKEND`` environment
            variable and falls back to ``"auto"``.
        device: the device the caches live on.
        options: passed to the FlashInfer backend (e.g. ``workspace_bytes``).
    """
    if name is None:
        name = os.environ.get(BACKEND_ENV, "auto")
    if name == "auto":
        name = "flashinfer" if flashinfer_usable(device) else "torch"
    if name == "torch":
        return TorchSDPABackend()
    if name == "flashinfer":
        from .flashinfer_backend import FlashInferBackend

        return FlashInferBackend(device=device, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown attention backend {name!r}; choose 'auto', 'torch' or 'flashinfer'")
