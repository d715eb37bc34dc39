"""The speculative-decoding loop with a sparse-KV draft, and the autoregressive baseline.

One round (chain speculation, greedy, as in MagicDec):

1. **draft**: the draft decoder runs over its budget cache, first on the tokens it has not seen
   yet (1, or 2 after a fully accepted round: the last draft token and the bonus token), then on
   each new draft token, proposing ``gamma`` tokens by argmax;
2. **verify**: the target runs ``[last emitted token, d_1 .. d_gamma]`` (``gamma + 1`` tokens,
   causal among themselves) over its full cache;
3. **accept**: greedy acceptance keeps the longest prefix of draft tokens equal to the target's
   argmax (cumulative-product rule), then emits the target's token after it (correction or bonus);
   with a temperature > 0 it is standard speculative sampling instead (the draft samples from q,
   each draft token is accepted with probability min(1, p/q), the first rejected one is replaced
   by a draw from normalise(max(0, p - q)), and a bonus token is drawn from p after gamma
   accepts), whose output follows the target's own sampling distribution; a synthetic mode
   replaces the comparison by Bernoulli trials of a given rate and seed (for timing runs on random
   weights; its label says so in every result);
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
    agreement), ``"sampled(temperature=...)"``, a synthetic label, or ``"none"`` for the AR
    baseline.  ``accept_counts[a]`` counts the rounds of active requests that accepted exactly
    ``a`` draft tokens (a = 0..gamma); ``request_counts[b]`` the same for request ``b`` alone.
    """

    tokens: torch.Tensor
    steps: list[StepRecord] = field(default_factory=list)
    acceptance_mode: str = "none"
    gamma: int = 0
    rounds: int = 0
    request_rounds: int = 0
    accepted_tokens: int = 0
    rejected_rounds: int = 0
    accept_counts: list[int] = field(default_factory=list)
    request_counts: list[list[int]] = field(default_factory=list)

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
    queries: list[torch.Tensor] | None = None,
) -> PagedKVCache:
    """Budget cache for ``source`` from a prefilled full cache (same decoder, same prompt length).

    SnapKV needs the observation-window queries of every layer (``[B, W, H, D]``, the last W
    prompt positions): ``queries``, or else ``source.captured_queries``; when W exceeds
    ``spec.window`` the last ``spec.window`` rows are used.  The new cache holds the selection
    plus ``spare`` free slots per request for generated tokens.
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
            obs = source.captured_queries if queries is None else queries
            if len(obs) != source.num_layers or obs[layer].shape[1] < spec.window:
                raise ValueError("SnapKV needs the prefill's observation-window queries")
            idx = snapkv_indices(
                obs[layer][:, -spec.window:], k, spec.budget, spec.window, spec.kernel_size
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


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / temperature) in fp64 (``[..., V]``)."""
    return torch.softmax(logits.double() / temperature, dim=-1)


def _sample(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One token per row of ``probs`` ``[B, V]`` (drawn on the CPU from ``gen``)."""
    return torch.multinomial(probs.cpu(), 1, generator=gen)[:, 0].to(probs.device)


class _Acceptor:
    """How draft tokens are proposed and verified: greedy, synthetic Bernoulli, or sampled.

    Sampled (``temperature > 0``) is standard speculative sampling (Leviathan et al. 2023, Chen et
    al. 2023): the draft samples ``d_i ~ q_i``; the target accepts ``d_i`` with probability
    ``min(1, p_i(d_i) / q_i(d_i))``; at the first rejection it draws from
    ``normalise(max(0, p_i - q_i))``; after ``gamma`` accepts it draws a bonus token from
    ``p_{gamma+1}``.  ``p`` and ``q`` are the softmax of the logits divided by the temperature.
    """

    def __init__(self, acceptance: str | SyntheticAcceptance, temperature: float, seed: int):
        self.synthetic = isinstance(acceptance, SyntheticAcceptance)
        if not self.synthetic and acceptance != GREEDY:
            raise ValueError(f"acceptance must be 'greedy' or SyntheticAcceptance, got {acceptance!r}")
        if not (temperature >= 0.0 and temperature < float("inf")):
            raise ValueError(f"temperature {temperature} must be a finite number >= 0")
        if self.synthetic and temperature > 0:
            raise ValueError("synthetic acceptance is greedy: use temperature 0")
        self.temperature = float(temperature)
        self.rate = acceptance.rate if self.synthetic else 1.0
        if self.synthetic:
            self.gen = torch.Generator().manual_seed(acceptance.seed)
            self.label = acceptance.label
        else:
            self.gen = torch.Generator().manual_seed(seed)
            self.label = GREEDY if temperature == 0 else f"sampled(temperature={temperature:g})"

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    def first(self, sampling: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor):
        """The token after the prompt from the prefill's logits ``[B, V]``."""
        if self.sampled:
            return _sample(_probs(logits, self.temperature), self.gen)
        return sampling(logits)

    def propose(self, sampling, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A draft token per request from the draft's last logits ``[B, V]``, and q when sampled."""
        if self.sampled:
            q = _probs(logits, self.temperature)
            return _sample(q, self.gen), q
        return sampling(logits), None

    def verify(self, sampling, vlog: torch.Tensor, dtok: torch.Tensor, qs: list) -> tuple:
        """(accepted count ``[B]``, token after the accepted prefix ``[B]``) from the verify logits
        ``[B, gamma + 1, V]`` and the draft tokens ``[B, gamma]``."""
        B, gamma = dtok.shape
        if not self.sampled:
            g = sampling(vlog)  # [B, gamma + 1]
            if self.synthetic:
                acc = _bernoulli_accepts(self.gen, self.rate, B, gamma).to(dtok.device)
            else:
                acc = (dtok == g[:, :gamma]).to(torch.long).cumprod(dim=1).sum(dim=1)
            return acc, g.gather(1, acc[:, None])[:, 0]
        p = _probs(vlog, self.temperature)  # [B, gamma + 1, V]
        q = torch.stack(qs, dim=1)  # [B, gamma, V]
        p_d = p[:, :gamma].gather(2, dtok[..., None])[..., 0]
        q_d = q.gather(2, dtok[..., None])[..., 0]
        u = torch.rand(B, gamma, generator=self.gen, dtype=torch.float64).to(p.device)
        ok = u * q_d < p_d  # u < p/q without dividing (q_d > 0: d was drawn from q)
        acc = ok.to(torch.long).cumprod(dim=1).sum(dim=1)
        rows = torch.arange(B, device=p.device)
        p_at = p[rows, acc]  # [B, V]: p after the accepted prefix
        q_at = torch.cat([q, torch.zeros_like(q[:, :1])], dim=1)[rows, acc]  # 0 after gamma accepts
        resid = torch.clamp(p_at - q_at, min=0.0)
        total = resid.sum(dim=-1, keepdim=True)
        resid = torch.where(total > 0, resid / total.clamp(min=1e-300), p_at)
        return acc, _sample(resid, self.gen)


def speculative_generate(
    target: Decoder,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    gamma: int = 4,
    draft: Decoder | None = None,
    draft_kv: DraftKV | None = None,
    acceptance: str | SyntheticAcceptance = GREEDY,
    temperature: float = 0.0,
    seed: int = 0,
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
        temperature: 0 for greedy; > 0 for speculative sampling at that temperature (the output
            then follows the target's sampling distribution; see :class:`_Acceptor`).
        seed: seed of the sampling draws (temperature > 0).
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
    rule = _Acceptor(acceptance, temperature, seed)

    dev = target.device
    be = _resolve_backend(backend, dev)
    rec = _Recorder(clock or default_clock(dev), on_step, before_step)
    prompt = prompt.to(dev)
    B, S = prompt.shape
    capture = spec.window if spec.method == "snapkv" else 0
    tcache = target.new_cache(B, S + max_new_tokens + 2 * gamma + 2, page_size=page_size)
    rec.start()
    first = rule.first(target.sampling, target.prefill(prompt, tcache, be, capture_queries=capture))
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
    return _rounds(target, drafter, tcache, dcache, prompt, first, max_new_tokens, gamma, rule, be, rec)


def speculative_continue(
    target: Decoder,
    tcache: PagedKVCache,
    dcache: PagedKVCache,
    prompt: torch.Tensor,
    first_logits: torch.Tensor,
    max_new_tokens: int,
    *,
    gamma: int = 4,
    draft: Decoder | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    backend: AttentionBackend | str | None = None,
) -> GenerationResult:
    """The SD rounds after a prefill done elsewhere (``acceptance measure`` prefills each text once).

    ``tcache`` holds exactly the prompt ``[B, S]`` (lengths S, room for ``max_new_tokens + 2 *
    gamma + 2`` more), ``dcache`` the draft's budget cache built from it (:func:`build_draft_cache`
    with at least ``max_new_tokens + 2 * gamma + 4`` spare slots); ``first_logits`` ``[B, V]`` are
    the target's logits at the last prompt position.  Both caches are left holding the generated
    tokens: truncate ``tcache`` back to S to reuse its prompt.  Timing is not recorded.
    """
    if gamma < 1:
        raise ValueError("gamma must be >= 1")
    rule = _Acceptor(GREEDY, temperature, seed)
    be = _resolve_backend(backend, target.device)
    rec = _Recorder(time.perf_counter, None)
    prompt = prompt.to(target.device)
    if bool((tcache.lens != prompt.shape[1]).any()):
        raise ValueError("the target cache must hold exactly the prompt")
    first = rule.first(target.sampling, first_logits)
    drafter = draft if draft is not None else target
    return _rounds(target, drafter, tcache, dcache, prompt, first, max_new_tokens, gamma, rule, be, rec)


def _rounds(target, drafter, tcache, dcache, prompt, first, max_new_tokens, gamma, rule, be, rec):
    """The draft / verify / accept / roll-back rounds until every request has its tokens."""
    dev = target.device
    B, S = prompt.shape
    seqs = [prompt[b].tolist() + [int(first[b])] for b in range(B)]
    dpos = [S] * B  # next absolute position the draft cache has not seen
    last = first.clone()
    result = GenerationResult(tokens=first.new_zeros(B, 0), acceptance_mode=rule.label, gamma=gamma,
                              accept_counts=[0] * (gamma + 1),
                              request_counts=[[0] * (gamma + 1) for _ in range(B)])
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
        d, q = rule.propose(drafter.sampling, drafter.draft_step(inp, dcache, be)[:, -1])
        rec.stop("draft", P, dcache)
        drafts, qs = [d], [q]
        for _ in range(gamma - 1):
            rec.start()
            d, q = rule.propose(drafter.sampling, drafter.draft_step(d[:, None], dcache, be)[:, -1])
            rec.stop("draft", 1, dcache)
            drafts.append(d)
            qs.append(q)
        dtok = torch.stack(drafts, dim=1)  # [B, gamma]
        # ---- verify
        rec.start()
        vlog = target.verify_step(torch.cat([last[:, None], dtok], dim=1), tcache, be)
        acc, nxt = rule.verify(target.sampling, vlog, dtok, qs)
        rec.stop("verify", gamma + 1, tcache, acc.tolist(), active)
        t_post = rec.clock()
        # ---- accept and roll back; finished requests undo the whole round
        tcache.rollback(torch.where(act, gamma - acc, gamma + 1))
        kept_draft = torch.clamp(acc, max=gamma - 1)
        dcache.rollback(torch.where(act, (gamma - 1) - kept_draft, P + gamma - 1))
        acc_l, nxt_l = acc.tolist(), nxt.tolist()
        for b in range(B):
            if not active[b]:
                continue
            a = acc_l[b]
            dpos[b] += P + min(a, gamma - 1)
            seqs[b].extend(dtok[b, :a].tolist() + [nxt_l[b]])
            result.accept_counts[a] += 1
            result.request_counts[b][a] += 1
        last = torch.where(act, nxt, last)
        result.rounds += 1
        result.request_rounds += sum(active)
        result.accepted_tokens += int(acc[act].sum())
        result.rejected_rounds += int((acc[act] < gamma).sum())
        rec.add("sd_loop", 0, tcache, loop_s + rec.clock() - t_post)
    result.tokens = torch.tensor([s[S : S + max_new_tokens] for s in seqs], device=dev)
    result.steps = rec.steps
    return result
