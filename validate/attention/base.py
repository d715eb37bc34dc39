"""The attention backend interface of the validator.

Every attention call of the validator is "the last ``T`` tokens of each request, already written
to a paged cache, attend to that request's cache with a bottom-right causal mask":

- decode (``T = 1``) over the full KV (the target's AR step),
- verify (``T = gamma + 1``, causal among the new tokens) over the full KV,
- decode over a budget KV (the draft step; a paged cache filled by a StreamingLLM or SnapKV
  selection, see :mod:`..kvcache`).

A backend is used as ``backend.plan(cache, q_len, num_qo_heads)`` once per forward step (metadata,
reused by every layer, like FlashInfer's ``plan``), then ``backend.run(q, cache, layer)`` per layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..kvcache import PagedKVCache


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
