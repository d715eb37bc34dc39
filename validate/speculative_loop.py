"""The speculative-decoding loop with a sparse-KV draft, and the autoregressive baseline.

One round (chain speculation, greedy, as in MagicDec):

1. **draft**: the draft decoder runs over its budget cache, first on the tokens it has not seen
   yet (1, or 2 after a fully accepted round: the last draft token and the bonus token), then on
   each new draft token, proposing ``gamma`` tokens by argmax;
2. **verify**: the target runs ``[last emitted token, d_1 .. d_gamma]`` (``gamma + 1`` tokens,
   causal among themselves) over its full cache;
3. **accept**: greedy acceptance keeps the longest prefix of draft tokens equal to the target's
   argmax (cumulative-product rule), then emits the target's token after it (correction or bonus);
   a synthetic mode replaces the comparison by Bernoulli trials of a given rate and seed (for
   timing runs on random weights; its label says so in every result);
4. **roll back**: both caches drop the K/V of rejected tokens (metadata only).

With greedy acceptance the emitted tokens equal :func:`autoregressive_generate`'s exactly, whatever
the draft proposes (lossless).  Requests of a batch accept different counts; caches hold per-request
lengths.  When requests need different numbers of catch-up tokens in the next draft step, the
shorter ones re-run one already-cached token (after rolling it back) so that the batch keeps a
single query length; this only repeats a computation whose result is identical.

Draft options: self-speculation (``draft=None``: the target itself over a budget cache) or a
standalone registry decoder (``draft=Decoder``) over a budget or full cache.  Budget caches are
filled at prefill by :class:`DraftKV` (StreamingLLM sink + recent window, or SnapKV top-k per KV
head + observation window); tokens generated afterwards are appended to them (the window does not
slide during decoding, as in MagicDec).

Every forward step is recorded as a :class:`StepRecord` (kind, query length, KV length, seconds),
and ``on_step`` sees each as it happens, so the timing work can attribute time to draft, verify and
decode steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..perfmodel.acceptance import KV_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from .attention import AttentionBackend
    from .decoder import Decoder
    from .kvcache import PagedKVCache

GREEDY = "greedy"
DRAFT_METHODS = KV_METHODS  # perfmodel's list: the validator builds every one of them


@dataclass(frozen=True)
class SyntheticAcceptance:
    """Acceptance by Bernoulli trials: each draft token is accepted with probability ``rate``.

    Not a measurement: reported as ``synthetic-bernoulli(rate=..., seed=...)``.
    """

    rate: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"acceptance rate {self.rate} must be in [0, 1]")

    @property
    def label(self) -> str:
        """How results produced with it are labelled."""
        return f"synthetic-bernoulli(rate={self.rate:g}, seed={self.seed})"


@dataclass(frozen=True)
class DraftKV:
    """How the draft's KV cache is built from the prompt.

    Attributes:
        method: ``"streamingllm"`` (``sink_tokens`` first tokens + most recent tokens),
            ``"snapkv"`` (per KV head, top ``budget - window`` prompt positions by the observation
            window's attention, plus the window) or ``"full"`` (the whole prompt).
        budget: kept prompt tokens per request (and per KV head for SnapKV).
        sink_tokens: StreamingLLM attention sinks (tokens); MagicDec uses 16.
        window: SnapKV observation window (tokens); MagicDec uses 32.
        kernel_size: SnapKV average-pooling width (tokens); MagicDec uses 5.
        positions: ``"original"`` (kept keys and later tokens use their absolute positions; the
            default, and SnapKV's semantics) or ``"reindexed"`` (StreamingLLM / MagicDec: kept keys
            are re-rotated to their slot index in the draft cache and later tokens continue from
            there).  ``"reindexed"`` is refused for SnapKV, whose heads keep different tokens.
    """

    method: str = "streamingllm"
    budget: int = 256
    sink_tokens: int = 16
    window: int = 32
    kernel_size: int = 5
    positions: str = "original"

    def __post_init__(self) -> None:
        if self.method not in DRAFT_METHODS:
            raise ValueError(f"draft KV method {self.method!r} not in {DRAFT_METHODS}")
        if self.positions not in ("original", "reindexed"):
            raise ValueError(f"positions must be 'original' or 'reindexed', not {self.positions!r}")
        if self.positions == "reindexed" and self.method == "snapkv":
            raise ValueError("SnapKV keeps different tokens per head: use positions='original'")


@dataclass
class StepRecord:
    """One forward step of the loop.

    Attributes:
        kind: ``prefill``, ``draft_prefill`` (standalone draft), ``draft_select`` (budget selection,
            no forward), ``draft``, ``verify``, ``decode``, or ``sd_loop`` (no forward: one round's
            bookkeeping outside its draft and verify steps - catch-up, acceptance, rollback).
        q_len: new tokens per request.
        batch: requests.
        kv_len: tokens in the attended cache after the step (max over requests).
        seconds: wall time of the step (s), from the loop's clock.
        accepted: accepted draft tokens per request (verify steps only).
        active: per request, whether it still generates (verify steps only); finished requests
            keep computing so the batch shape stays fixed, but their results are discarded.
    """

    kind: str
    q_len: int
    batch: int
    kv_len: int
    seconds: float
    accepted: list[int] | None = None
    active: list[bool] | None = None


@dataclass
class GenerationResult:
    """Tokens and counters of one generation run.

    ``tokens`` is ``[B, max_new_tokens]``.  ``acceptance_mode`` is ``"greedy"`` (real argmax
    agreement), a synthetic label, or ``"none"`` for the AR baseline.
    """

    tokens: torch.Tensor
    steps: list[StepRecord] = field(default_factory=list)
    acceptance_mode: str = "none"
    gamma: int = 0
    rounds: int = 0
    request_rounds: int = 0
    accepted_tokens: int = 0
    rejected_rounds: int = 0

    @property
    def proposed_tokens(self) -> int:
        """Draft tokens proposed to active requests over all rounds."""
        return self.request_rounds * self.gamma

    @property
    def acceptance_rate(self) -> float:
        """Per-token acceptance rate alpha (i.i.d. estimate): accepted / draft tokens tested.

        In a round with ``a < gamma`` accepted, ``a + 1`` tokens were tested (the first rejection
        ends the round); with ``a = gamma`` all ``gamma`` were tested and accepted.  Returns NaN
        without rounds.
        """
        tested = self.accepted_tokens + self.rejected_rounds
        return self.accepted_tokens / tested if tested else float("nan")

    @property
    def mean_accepted(self) -> float:
        """Mean accepted draft tokens per active request per round (emitted = this + 1)."""
        n = self.request_rounds
        return self.accepted_tokens / n if n else float("nan")

    def seconds(self, kind: str | None = None) -> float:
        """Total recorded time (s) of steps of ``kind`` (all steps when None)."""
        return sum(s.seconds for s in self.steps if kind is None or s.kind == kind)


def _resolve_backend(
    backend: AttentionBackend | str | None, device: torch.device
) -> AttentionBackend:
    from .attention import AUTO, AttentionBackend, get_backend

    if isinstance(backend, AttentionBackend):
        return backend
    return get_backend(backend if backend is not None else AUTO, device)


def default_clock(device: torch.device) -> Callable[[], float]:
    """``time.perf_counter`` (s), after ``torch.cuda.synchronize`` when ``device`` is CUDA."""
    if device.type == "cuda":

        def clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return clock
    return time.perf_counter


class _Recorder:
    def __init__(self, clock: Callable[[], float], on_step: Callable[[StepRecord], None] | None,
                 before_step: Callable[[], None] | None = None):
        self.clock, self.on_step, self.steps = clock, on_step, []
        self.before_step = before_step
        self.t0 = 0.0

    def start(self) -> None:
        """Mark the start of a forward step, after ``before_step`` (not timed)."""
        if self.before_step is not None:
            self.before_step()
        self.t0 = self.clock()

    def stop(self, kind: str, q_len: int, cache: PagedKVCache, accepted=None, active=None):
        self.add(kind, q_len, cache, self.clock() - self.t0, accepted, active)

    def add(self, kind: str, q_len: int, cache: PagedKVCache, seconds: float, accepted=None,
            active=None):
        rec = StepRecord(kind, q_len, cache.batch, int(cache.lens.max()), seconds, accepted, active)
        self.steps.append(rec)
        if self.on_step is not None:
            self.on_step(rec)


def autoregressive_generate(
    target: Decoder,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    backend: AttentionBackend | str | None = None,
    page_size: int = 16,
    clock: Callable[[], float] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    before_step: Callable[[], None] | None = None,
) -> GenerationResult:
    """Greedy AR baseline: prefill ``prompt`` ``[B, S]``, then ``max_new_tokens - 1`` decode steps.

    Returns the ``max_new_tokens`` greedy tokens per request (the first comes from the prefill).
    """
    be = _resolve_backend(backend, target.device)
    rec = _Recorder(clock or default_clock(target.device), on_step, before_step)
    prompt = prompt.to(target.device)
    B, S = prompt.shape
    cache = target.new_cache(B, S + max_new_tokens, page_size=page_size)
    rec.start()
    tok = target.sampling(target.prefill(prompt, cache, be))
    rec.stop("prefill", S, cache)
    out = [tok]
    for _ in range(max_new_tokens - 1):
        rec.start()
        tok = target.sampling(target.decode_step(tok[:, None], cache, be))[:, 0]
        rec.stop("decode", 1, cache)
        out.append(tok)
    return GenerationResult(tokens=torch.stack(out, dim=1), steps=rec.steps)


def build_draft_cache(
    source: Decoder,
    full_cache: PagedKVCache,
    spec: DraftKV,
    spare: int,
    *,
    page_size: int = 16,
) -> PagedKVCache:
    """Budget cache for ``source`` from a prefilled full cache (same decoder, same prompt length).

    ``source.captured_queries`` must hold the observation-window queries for SnapKV.  The new
    cache holds the selection plus ``spare`` free slots per request for generated tokens.
    """
    from .kvcache import gather_per_head, snapkv_indices, streaming_indices

    S = int(full_cache.lens.max())
    if bool((full_cache.lens != S).any()):
        raise ValueError("budget selection needs equal prompt lengths")
    keys, values = [], []
    for layer in range(source.num_layers):
        dk, dv = full_cache.dense_view(layer)
        k, v = dk[:, :S], dv[:, :S]
        if spec.method == "snapkv":
            if len(source.captured_queries) != source.num_layers:
                raise ValueError("SnapKV needs the prefill's observation-window queries")
            idx = snapkv_indices(
                source.captured_queries[layer], k, spec.budget, spec.window, spec.kernel_size
            )
            keys.append(gather_per_head(k, idx))
            values.append(gather_per_head(v, idx))
        else:
            if spec.method == "streamingllm":
                pos = streaming_indices(S, spec.budget, spec.sink_tokens)
            else:
                pos = list(range(S))
            sel = torch.tensor(pos, device=k.device)
            k_sel = k[:, sel]
            if spec.positions == "reindexed":  # rotate from position p to slot index j
                k_sel = source.rerotate_keys(k_sel, torch.arange(len(pos), device=k.device) - sel)
            keys.append(k_sel)
            values.append(v[:, sel])
    kept = keys[0].shape[1]
    cache = source.new_cache(full_cache.batch, kept + spare, page_size=page_size)
    cache.load_selection(keys, values, next_pos=kept if spec.positions == "reindexed" else S)
    return cache


def _bernoulli_accepts(gen: torch.Generator, rate: float, batch: int, gamma: int) -> torch.Tensor:
    trials = torch.rand(batch, gamma, generator=gen) < rate
    return trials.to(torch.long).cumprod(dim=1).sum(dim=1)


def speculative_generate(
    target: Decoder,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    gamma: int = 4,
    draft: Decoder | None = None,
    draft_kv: DraftKV | None = None,
    acceptance: str | SyntheticAcceptance = GREEDY,
    backend: AttentionBackend | str | None = None,
    page_size: int = 16,
    clock: Callable[[], float] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    before_step: Callable[[], None] | None = None,
) -> GenerationResult:
    """Speculative decoding of ``max_new_tokens`` tokens per request after ``prompt`` ``[B, S]``.

    Args:
        target: the verifying model.
        gamma: draft tokens per round (>= 1).
        draft: a standalone draft decoder (same vocabulary), or None for self-speculation.
        draft_kv: how the draft's cache is built (default: StreamingLLM, budget 256).
        acceptance: ``"greedy"`` or a :class:`SyntheticAcceptance`.
        backend: attention backend object or name (``"auto"``, ``"torch"``, ``"flashinfer"``).
        page_size: tokens per KV page.
        clock: time source in seconds (default: :func:`default_clock`).
        on_step: called with every :class:`StepRecord`.
        before_step: called, untimed, before every timed forward step (the validator evicts the
            caches there, so that steps are timed in the cache state their kernels were fitted in).
    """
    if gamma < 1:
        raise ValueError("gamma must be >= 1")
    spec = draft_kv or DraftKV()
    drafter = draft if draft is not None else target
    if drafter.arch.vocab_size != target.arch.vocab_size:
        raise ValueError("draft and target must share the vocabulary size")
    synthetic = isinstance(acceptance, SyntheticAcceptance)
    if not synthetic and acceptance != GREEDY:
        raise ValueError(f"acceptance must be 'greedy' or SyntheticAcceptance, got {acceptance!r}")
    gen = torch.Generator().manual_seed(acceptance.seed) if synthetic else None

    dev = target.device
    be = _resolve_backend(backend, dev)
    rec = _Recorder(clock or default_clock(dev), on_step, before_step)
    prompt = prompt.to(dev)
    B, S = prompt.shape
    capture = spec.window if spec.method == "snapkv" else 0
    # finished requests may hold up to gamma tokens past max_new_tokens, plus a round in flight
    tcache = target.new_cache(B, S + max_new_tokens + 2 * gamma + 2, page_size=page_size)
    rec.start()
    first = target.sampling(target.prefill(prompt, tcache, be, capture_queries=capture))
    rec.stop("prefill", S, tcache)
    spare = max_new_tokens + 2 * gamma + 4
    if draft is None:
        rec.start()
        dcache = build_draft_cache(target, tcache, spec, spare, page_size=page_size)
        rec.stop("draft_select", 0, dcache)
    else:
        full = draft.new_cache(B, S, page_size=page_size)
        rec.start()
        draft.prefill(prompt, full, be, capture_queries=capture)
        rec.stop("draft_prefill", S, full)
        rec.start()
        dcache = build_draft_cache(draft, full, spec, spare, page_size=page_size)
        rec.stop("draft_select", 0, dcache)
        del full

    seqs = [prompt[b].tolist() + [int(first[b])] for b in range(B)]
    dpos = [S] * B  # next absolute position the draft cache has not seen
    last = first.clone()
    result = GenerationResult(
        tokens=first.new_zeros(B, 0),
        acceptance_mode=acceptance.label if synthetic else GREEDY,
        gamma=gamma,
    )
    while min(len(s) for s in seqs) - S < max_new_tokens:
        t_prep = rec.clock()
        active = [len(s) - S < max_new_tokens for s in seqs]
        act = torch.tensor(active, device=dev)
        # ---- draft: catch up on unseen tokens, then propose gamma tokens
        pend = [len(seqs[b]) - dpos[b] for b in range(B)]
        P = max(pend)
        extra = torch.tensor([P - p for p in pend], device=dev)
        if bool(extra.any()):
            dcache.rollback(extra)
            dpos = [dpos[b] - (P - pend[b]) for b in range(B)]
        inp = torch.tensor([seqs[b][dpos[b] : dpos[b] + P] for b in range(B)], device=dev)
        loop_s = rec.clock() - t_prep
        rec.start()
        d = drafter.sampling(drafter.draft_step(inp, dcache, be)[:, -1])
        rec.stop("draft", P, dcache)
        drafts = [d]
        for _ in range(gamma - 1):
            rec.start()
            d = drafter.sampling(drafter.draft_step(d[:, None], dcache, be)[:, -1])
            rec.stop("draft", 1, dcache)
            drafts.append(d)
        dtok = torch.stack(drafts, dim=1)  # [B, gamma]
        # ---- verify
        rec.start()
        vlog = target.verify_step(torch.cat([last[:, None], dtok], dim=1), tcache, be)
        g = target.sampling(vlog)  # [B, gamma + 1]
        if synthetic:
            acc = _bernoulli_accepts(gen, acceptance.rate, B, gamma).to(dev)
        else:
            acc = (dtok == g[:, :gamma]).to(torch.long).cumprod(dim=1).sum(dim=1)
        rec.stop("verify", gamma + 1, tcache, acc.tolist(), active)
        t_post = rec.clock()
        # ---- accept and roll back; finished requests undo the whole round
        tcache.rollback(torch.where(act, gamma - acc, gamma + 1))
        kept_draft = torch.clamp(acc, max=gamma - 1)
        dcache.rollback(torch.where(act, (gamma - 1) - kept_draft, P + gamma - 1))
        acc_l = acc.tolist()
        for b in range(B):
            if not active[b]:
                continue
            a = acc_l[b]
            dpos[b] += P + min(a, gamma - 1)
            seqs[b].extend(dtok[b, :a].tolist() + [int(g[b, a])])
        last = torch.where(act, g.gather(1, acc[:, None])[:, 0], last)
        result.rounds += 1
        result.request_rounds += sum(active)
        result.accepted_tokens += int(acc[act].sum())
        result.rejected_rounds += int((acc[act] < gamma).sum())
        rec.add("sd_loop", 0, tcache, loop_s + rec.clock() - t_post)
    result.tokens = torch.tensor([s[S : S + max_new_tokens] for s in seqs], device=dev)
    result.steps = rec.steps
    return result
