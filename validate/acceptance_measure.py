"""Acceptance measured by real speculative decoding: ``magicdec-model acceptance measure``.

For every text window the target prefills the longest context once, in chunks that end at each
asked context length, keeping at each of those ends the last-position logits and every layer's
last 32 rotated queries (SnapKV's observation window).  Contexts are then run from the longest
down: the full cache is truncated to the context (a length change: the prompt's K/V stay), every
(KV method, budget) draft cache is gathered from it (:func:`.speculative_loop.build_draft_cache`),
and the SD rounds run (:func:`.speculative_loop.speculative_continue`, greedy or sampled).
Generated tokens overwrite only slots past the context, which shorter contexts never read, so one
prefill serves every context of the window.  Several windows run together as the requests of
one batch (:func:`measure_windows`): a CPU step reads the weights once for all of them.

Self-speculation only: the draft is the target over its budget cache (SmolLM2 ships no smaller
draft model of its family).  A budget >= the context keeps the whole prompt (the draft is the
target itself); that run is shared by every method and budget at that context.  A StreamingLLM
draft keeps ``min(16, budget // 2)`` sink tokens and the most recent rest; a SnapKV draft uses an
observation window of ``min(32, budget // 2)`` tokens, pooling width 5; kept keys keep their
original positions (``DraftKV(positions="original")``).  Runs of one (batch of windows, context,
gamma, temperature) use the same sampling seed for every method and budget (common random
numbers).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .acceptance_table import run_key
from .results import utc_now
from .speculative_loop import DraftKV, build_draft_cache, speculative_continue

if TYPE_CHECKING:  # pragma: no cover
    from .decoder import Decoder

#: MagicDec's StreamingLLM sinks and SnapKV observation window (tokens), pooling width
SINK_TOKENS = 16
SNAP_WINDOW = 32
SNAP_KERNEL = 5
#: longest prefill chunk (tokens): bounds the attention mask and scores of one chunk
PREFILL_CHUNK = 512


@dataclass(frozen=True)
class MeasureGrid:
    """What one ``acceptance measure`` run covers (budgets and contexts in tokens)."""

    methods: tuple[str, ...]
    budgets: tuple[int, ...]
    seq_lens: tuple[int, ...]
    gammas: tuple[int, ...]
    temperatures: tuple[float, ...]
    new_tokens: int
    seed: int = 0

    def runs(self) -> list[tuple[str, int, int, int, float]]:
        """(method, budget, seq_len, gamma, temperature) of every run of one window, longest
        context first (the order :func:`measure_windows` needs)."""
        return [(m, b, s, g, t) for s in sorted(self.seq_lens, reverse=True) for g in self.gammas
                for t in self.temperatures for m in self.methods for b in self.budgets]


def draft_kv(method: str, budget: int, seq_len: int) -> DraftKV:
    """The draft cache of ``method`` at ``budget`` for a context of ``seq_len`` tokens."""
    if budget >= seq_len:
        return DraftKV("full")
    if method == "streamingllm":
        return DraftKV("streamingllm", budget=budget, sink_tokens=min(SINK_TOKENS, budget // 2))
    return DraftKV("snapkv", budget=budget, window=min(SNAP_WINDOW, budget // 2), kernel_size=SNAP_KERNEL)


def run_seed(seed: int, window: int, seq_len: int, gamma: int, temperature: float) -> int:
    """The sampling seed of the runs of one (window, context, gamma, temperature)."""
    text = f"{seed}|{window}|{seq_len}|{gamma}|{temperature!r}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")


@dataclass
class Prefilled:
    """Windows prefilled once: the full cache and, per context length, what its end gives."""

    cache: Any  # PagedKVCache holding the longest context of every window (one request each)
    logits: dict[int, torch.Tensor]  # seq_len -> [B, V] logits at position seq_len - 1
    queries: dict[int, list[torch.Tensor]]  # seq_len -> per layer [B, W, H, D] last queries


def prefill_windows(model: Decoder, windows: list[list[int]], seq_lens: list[int], spare: int,
                    *, backend: Any = "torch", chunk: int = PREFILL_CHUNK) -> Prefilled:
    """Prefill ``windows`` (one request each, their first ``max(seq_lens)`` tokens) once, in chunks
    of at most ``chunk`` tokens that end at every length of ``seq_lens``; ``spare`` free slots per
    request are left for generated tokens."""
    from .speculative_loop import _resolve_backend

    be = _resolve_backend(backend, model.device)
    ends = sorted(set(seq_lens))
    L = ends[-1]
    ids = torch.tensor([w[:L] for w in windows], device=model.device)
    cache = model.new_cache(len(windows), L + spare)
    logits: dict[int, torch.Tensor] = {}
    queries: dict[int, list[torch.Tensor]] = {}
    recent: list[torch.Tensor] | None = None
    start = 0
    for end in ends:
        while start < end:
            stop = min(start + chunk, end)
            out = model.forward(ids[:, start:stop], cache, be, last_only=True,
                                capture_queries=min(SNAP_WINDOW, stop - start))
            got = model.captured_queries
            recent = got if recent is None else [torch.cat([a, b], 1)[:, -SNAP_WINDOW:]
                                                 for a, b in zip(recent, got, strict=True)]
            start = stop
        logits[end] = out[:, -1]
        queries[end] = list(recent)
    model.captured_queries = []
    return Prefilled(cache, logits, queries)


def _counts(per_a: list[int]) -> dict[str, Any]:
    """Log fields of one request's rounds from its counts by accepted tokens (a = 0..gamma)."""
    gamma = len(per_a) - 1
    return {"rounds": sum(per_a), "accepted": sum(a * c for a, c in enumerate(per_a)),
            "rejections": sum(per_a[:gamma]), "accept_counts": " ".join(str(c) for c in per_a)}


def measure_windows(
    model: Decoder,
    windows: dict[int, list[int]],
    grid: MeasureGrid,
    *,
    done: set[str] | frozenset[str] = frozenset(),
    on_run: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    backend: Any = "torch",
) -> list[dict[str, Any]]:
    """Every run of the text ``windows`` (id -> tokens) not in ``done``, the windows as one batch.

    Each window is one request of a batch: one forward step serves them all (the weights are read
    once), and the counts are kept per request.  Keys are :func:`.acceptance_table.run_key`; a
    configuration is run when any window lacks it, and only the missing windows are reported.
    Returns the runs as log rows (:data:`.acceptance_table.RUN_COLUMNS`); ``on_run`` sees each as
    soon as it is measured, ``on_start`` a label before each configuration.
    """
    ids = sorted(windows)
    todo = [r for r in grid.runs() if any(run_key(w, *r) not in done for w in ids)]
    if not todo:
        return []
    for w in ids:
        if len(windows[w]) < max(grid.seq_lens):
            raise ValueError(f"window {w} has {len(windows[w])} tokens, fewer than {max(grid.seq_lens)}")
    spare = grid.new_tokens + 2 * max(grid.gammas) + 4
    label = f"windows {ids[0]}..{ids[-1]}" if len(ids) > 1 else f"window {ids[0]}"
    if on_start is not None:
        on_start(f"{label}: prefill {max(s for _, _, s, _, _ in todo):,} tokens")
    pre = prefill_windows(model, [windows[w] for w in ids], sorted({s for _, _, s, _, _ in todo}), spare,
                          backend=backend)
    cache = pre.cache
    B = len(ids)
    shared: dict[tuple, list[dict[str, Any]]] = {}  # (seq_len, gamma, temperature) -> full-cache runs
    rows = []
    for method, budget, seq_len, gamma, temp in todo:
        if on_start is not None:
            on_start(f"{label} {method} b{budget} s{seq_len} g{gamma} t{temp:g}")
        t0 = time.perf_counter()
        spec = draft_kv(method, budget, seq_len)
        full_key = (seq_len, gamma, temp)
        if spec.method == "full" and full_key in shared:
            per_request = shared[full_key]
        else:
            cache.truncate(torch.full((B,), seq_len, device=cache.device))
            dcache = build_draft_cache(model, cache, spec, spare, queries=pre.queries[seq_len])
            res = speculative_continue(
                model, cache, dcache, torch.tensor([windows[w][:seq_len] for w in ids]),
                pre.logits[seq_len], grid.new_tokens, gamma=gamma, temperature=temp,
                seed=run_seed(grid.seed, ids[0], seq_len, gamma, temp), backend=backend)
            del dcache
            per_request = [_counts(c) for c in res.request_counts]
            if spec.method == "full":
                shared[full_key] = per_request
        seconds = (time.perf_counter() - t0) / B
        for b, w in enumerate(ids):
            key = run_key(w, method, budget, seq_len, gamma, temp)
            if key in done:
                continue
            row = {"key": key, "window": w, "method": method, "budget": budget, "seq_len": seq_len,
                   "gamma": gamma, "temperature": temp, **per_request[b], "seconds": seconds,
                   "time_utc": utc_now()}
            rows.append(row)
            if on_run is not None:
                on_run(row)
    return rows
