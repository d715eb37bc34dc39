"""Paged KV caches: the target's full cache and the draft's budget caches.

Layout
------
One tensor per cache, ``kv[layer, 0|1, page, slot, kv_head, head_dim]`` (0 = K, 1 = V); per layer
``(kv[l, 0], kv[l, 1])`` is exactly FlashInfer's tuple form of an NHD paged cache
(``[max_pages, page_size, H_kv, D]`` each).  Pages are partitioned statically as in MagicDec:
request ``b`` owns pages ``[b * P, (b + 1) * P)`` with ``P = ceil(capacity / page_size)``.  The page
table that FlashInfer reads (``indptr``, ``indices``, ``last_page_len``, int32) is derived from the
per-request lengths; the torch backend reads the same storage as a free view
``[B, P * page_size, H_kv, D]``.

Lengths and positions
---------------------
``lens[b]`` is the number of filled slots of request ``b``.  ``pos_offset[b]`` is added to a slot
index to get the rotary position of the token stored there: 0 for the full cache; for a budget
cache it is ``(prompt length) - (kept slots)`` by default, so a token appended after the prompt
gets its *original* absolute position, and kept keys keep the rotation of their original
positions (SnapKV's semantics).  A StreamingLLM cache may instead be re-indexed as in MagicDec
(``DraftKV(positions="reindexed")``: keys re-rotated to their slot index, ``pos_offset`` 0); both
move the same bytes.  See docs/validate.md.

Appending is two-phase, matching FlashInfer: :meth:`PagedKVCache.reserve` advances the lengths for
``T`` new tokens once per step, then every layer writes its K/V with :meth:`PagedKVCache.write`.
Rollback (:meth:`PagedKVCache.truncate`) only moves lengths; stale K/V are overwritten later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PageTable:
    """A FlashInfer-style CSR page table (all int32, on the cache's device)."""

    indptr: torch.Tensor  # [B + 1] start of each request's page list in ``indices``
    indices: torch.Tensor  # [indptr[-1]] page ids
    last_page_len: torch.Tensor  # [B] filled slots in each request's last page (1..page_size)
    page_size: int


class PagedKVCache:
    """A paged K/V cache for ``num_layers`` layers and ``batch`` requests.

    Args:
        num_layers: layers held (the decoder's local layer count).
        batch: number of requests.
        capacity: slots per request (tokens); rounded up to whole pages.
        num_kv_heads: KV heads held by this process (the local share under tensor parallelism).
        head_dim: elements per head.
        page_size: slots per page (tokens); MagicDec uses 128, FlashInfer accepts any.
        device, dtype: where and how K/V are stored.
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        capacity: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        page_size: int = 16,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        if min(num_layers, batch, capacity, num_kv_heads, head_dim, page_size) <= 0:
            raise ValueError("cache dimensions must be positive")
        self.num_layers = num_layers
        self.batch = batch
        self.page_size = page_size
        self.pages_per_request = math.ceil(capacity / page_size)
        self.capacity = self.pages_per_request * page_size
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.device = torch.device(device)
        self.dtype = dtype if dtype is not None else torch.float32
        self.kv = torch.zeros(
            num_layers,
            2,
            batch * self.pages_per_request,
            page_size,
            num_kv_heads,
            head_dim,
            device=self.device,
            dtype=self.dtype,
        )
        self.lens = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.pos_offset = torch.zeros(batch, dtype=torch.long, device=self.device)
        # slots below ``floor`` were placed by a prefill selection and cannot be rolled back
        self.floor = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.last_append = 0
        self._version = 0

    # ------------------------------------------------------------------ views
    def layer_kv(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """FlashInfer's tuple form for one layer: ``([pages, page_size, H_kv, D],) * 2``."""
        return self.kv[layer, 0], self.kv[layer, 1]

    def dense_view(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of one layer as free views ``[B, capacity, H_kv, D]`` (past ``lens``: stale)."""
        shape = (self.batch, self.capacity, self.num_kv_heads, self.head_dim)
        return self.kv[layer, 0].view(shape), self.kv[layer, 1].view(shape)

    def positions(self, num_new: int) -> torch.Tensor:
        """Rotary positions ``[B, num_new]`` of the next ``num_new`` tokens (before reserving)."""
        base = self.lens + self.pos_offset
        return base[:, None] + torch.arange(num_new, device=self.device)[None, :]

    def page_table(self) -> PageTable:
        """The CSR page table of the current lengths (every request must hold >= 1 token)."""
        lens = self.lens.to(torch.int64)
        if bool((lens <= 0).any()):
            raise ValueError("page_table needs every request to hold at least one token")
        n_pages = (lens + self.page_size - 1) // self.page_size
        indptr = torch.zeros(self.batch + 1, dtype=torch.int64, device=self.device)
        indptr[1:] = torch.cumsum(n_pages, 0)
        starts = torch.arange(self.batch, device=self.device) * self.pages_per_request
        total = int(indptr[-1])
        owner = torch.repeat_interleave(torch.arange(self.batch, device=self.device), n_pages)
        local = torch.arange(total, device=self.device) - indptr[:-1][owner]
        indices = starts[owner] + local
        last = lens - (n_pages - 1) * self.page_size
        return PageTable(
            indptr=indptr.to(torch.int32),
            indices=indices.to(torch.int32),
            last_page_len=last.to(torch.int32),
            page_size=self.page_size,
        )

    # ----------------------------------------------------------------- append
    def reserve(self, num_new: int) -> torch.Tensor:
        """Advance every request by ``num_new`` slots; return their rotary positions ``[B, T]``.

        Call once per forward step, before the layers write with :meth:`write`.
        """
        if num_new <= 0:
            raise ValueError("num_new must be positive")
        pos = self.positions(num_new)
        if int((self.lens + num_new).max()) > self.capacity:
            raise ValueError(
                f"KV cache full: capacity {self.capacity} tokens, "
                f"need {int(self.lens.max()) + num_new}"
            )
        self.lens += num_new
        self.last_append = num_new
        self._version += 1
        return pos

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``, ``v`` ``[B, T, H_kv, D]`` of the last reserved ``T`` tokens of ``layer``."""
        n_new = k.shape[1]
        if n_new != self.last_append:
            raise ValueError(f"write of {n_new} tokens after reserve({self.last_append})")
        slots = (self.lens - n_new)[:, None] + torch.arange(n_new, device=self.device)[None, :]
        dk, dv = self.dense_view(layer)
        rows = torch.arange(self.batch, device=self.device)[:, None]
        dk[rows, slots] = k.to(self.dtype)
        dv[rows, slots] = v.to(self.dtype)

    # --------------------------------------------------------------- rollback
    def truncate(self, new_lens: torch.Tensor) -> None:
        """Roll back: keep only the first ``new_lens[b]`` slots of each request (metadata only)."""
        new_lens = torch.as_tensor(new_lens, device=self.device).to(torch.long)
        if bool((new_lens > self.lens).any()) or bool((new_lens < self.floor).any()):
            raise ValueError("truncate can only drop appended tokens, not add or cut the prefix")
        self.lens = new_lens.clone()
        self.last_append = 0
        self._version += 1

    def rollback(self, num_rejected: torch.Tensor | int) -> None:
        """Drop the last ``num_rejected`` (per request or scalar) appended tokens."""
        self.truncate(self.lens - num_rejected)

    # -------------------------------------------------------------- selection
    def load_selection(
        self, keys: list[torch.Tensor], values: list[torch.Tensor], next_pos: int
    ) -> None:
        """Fill the cache with selected K/V per layer ``[B, n, H_kv, D]`` (replacing everything).

        ``next_pos`` is the absolute position of the first token appended afterwards (the prompt
        length), so new tokens keep original positions.
        """
        n = keys[0].shape[1]
        if n > self.capacity:
            raise ValueError(f"selection of {n} tokens exceeds capacity {self.capacity}")
        self.lens.fill_(0)
        self.reserve(n)
        for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
            self.write(layer, k, v)
        self.pos_offset.fill_(next_pos - n)
        self.floor.fill_(n)
        self.last_append = 0

    def fill_random(self, length: int, *, seed: int = 0, pos_offset: int = 0) -> None:
        """Fill every request with ``length`` random K/V (Normal(0, 1)) in all layers.

        For timing at a given KV length without running a prefill: a target cache at context
        length L, or a budget cache of ``budget`` tokens (``pos_offset`` = L - budget so that new
        tokens get positions after L).  Data are random, not zeros (timings on zeros are faster).
        """
        if not 0 < length <= self.capacity:
            raise ValueError(f"length {length} must be in 1..{self.capacity}")
        g = torch.Generator(device=self.device).manual_seed(seed)
        self.lens.fill_(length)
        for layer in range(self.num_layers):
            dk, dv = self.dense_view(layer)
            for view in (dk, dv):
                view[:, :length] = torch.randn(
                    view[:, :length].shape, generator=g, device=self.device, dtype=torch.float32
                ).to(self.dtype)
        self.pos_offset.fill_(pos_offset)
        self.floor.fill_(0)
        self.last_append = 0
        self._version += 1

    @property
    def version(self) -> int:
        """Counter bumped by every length change (lets backends cache their plans)."""
        return self._version

    def nbytes_per_layer(self) -> int:
        """Bytes of K and V one layer reads at the current lengths (bytes, summed over requests)."""
        return int(self.lens.sum()) * 2 * self.num_kv_heads * self.head_dim * self.kv.element_size()


# --------------------------------------------------------------------------- budget selection
def streaming_indices(seq_len: int, budget: int, sink_tokens: int = 16) -> list[int]:
    """StreamingLLM kept positions: the first ``sink_tokens`` plus the most recent window.

    Returns ascending positions, ``min(budget, seq_len)`` of them.
    """
    if budget <= sink_tokens:
        raise ValueError(f"budget {budget} must exceed sink_tokens {sink_tokens}")
    if seq_len <= budget:
        return list(range(seq_len))
    return list(range(sink_tokens)) + list(range(seq_len - (budget - sink_tokens), seq_len))


def snapkv_indices(
    queries: torch.Tensor,
    keys: torch.Tensor,
    budget: int,
    window: int = 32,
    kernel_size: int = 5,
) -> torch.Tensor:
    """SnapKV kept positions per KV head from an observation window.

    Args:
        queries: ``[B, window, H, D]`` rotated queries of the last ``window`` prompt tokens.
        keys: ``[B, S, H_kv, D]`` rotated keys of the whole prompt.
        budget: kept tokens per head (the window included).
        window: observation-window length (tokens); always kept.
        kernel_size: width of the average pooling over key positions.

    Returns:
        ``[B, H_kv, min(budget, S)]`` long tensor of positions, ascending per head.  Scores are
        softmax attention of the window's queries (causal inside the window, fp32) summed over
        query rows, average-pooled, then summed over the query heads of each KV group; the top
        ``budget - window`` prefix positions are kept together with the window.
    """
    B, S, H_kv, D = keys.shape
    if budget <= window:
        raise ValueError(f"budget {budget} must exceed the observation window {window}")
    if not budget < S:
        return torch.arange(S, device=keys.device).expand(B, H_kv, S).clone()
    H = queries.shape[2]
    group = H // H_kv
    q = queries.float().permute(0, 2, 1, 3)  # [B, H, W, D]
    k = keys.float().permute(0, 2, 1, 3).repeat_interleave(group, dim=1)  # [B, H, S, D]
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # [B, H, W, S]
    W = q.shape[2]
    qi = torch.arange(W, device=keys.device)[:, None] + (S - W)
    kj = torch.arange(S, device=keys.device)[None, :]
    scores = scores.masked_fill(kj > qi, float("-inf"))
    probs = torch.softmax(scores, dim=-1).sum(dim=2)  # [B, H, S]
    prefix = probs[..., : S - window]
    pooled = torch.nn.functional.avg_pool1d(
        prefix.reshape(B * H, 1, -1), kernel_size, stride=1, padding=kernel_size // 2
    ).reshape(B, H, -1)
    per_kv = pooled.reshape(B, H_kv, group, -1).sum(dim=2)  # [B, H_kv, S - window]
    top = per_kv.topk(budget - window, dim=-1).indices
    win = torch.arange(S - window, S, device=keys.device).expand(B, H_kv, window)
    return torch.cat([top.sort(dim=-1).values, win], dim=-1)


def gather_per_head(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per head, pick positions ``idx`` ``[B, H_kv, n]`` of ``x`` ``[B, S, H_kv, D]``.

    Returns ``[B, n, H_kv, D]``.
    """
    B, S, H_kv, D = x.shape
    src = x.permute(0, 2, 1, 3)  # [B, H_kv, S, D]
    out = src.gather(2, idx[..., None].expand(-1, -1, -1, D))
    return out.permute(0, 2, 1, 3).contiguous()
