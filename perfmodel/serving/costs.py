"""What the serving simulator asks the analytic model: step times of ragged engine steps, the KV
pool, the acceptance.

One :class:`ServingModel` per resolved :class:`~magicdec_model.perfmodel.scenario.Scenario`:

* an engine step is one target forward over every scheduled sequence - decode (q = 1), verify
  (q = gamma + 1) or a prefill chunk (q = the chunk, causal over it) - timed by
  :class:`~magicdec_model.perfmodel.step.StepTable` (the ragged step of :mod:`..step`), plus, when
  the step speculates, gamma draft steps over the proposing sequences (the draft's KV: its budget,
  capped at the context), the draft phase's fixed cost and the SD loop's bookkeeping, as
  :func:`..speculative.sd_cycle` composes them for ``predict``;
* the KV pool is the memory left after the weights within vLLM's ``gpu_memory_utilization``
  (:data:`..sweep.MEMORY_UTILIZATION`), in bytes, filled by paged blocks of ``block_size`` tokens
  of the target's cache and the draft's (:func:`..ops.kv_bytes_per_token_per_gpu`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ops import kv_bytes_per_token_per_gpu, weight_bytes_per_gpu
from ..scenario import Scenario
from ..speculative import expected_tokens
from ..step import StepTable
from ..sweep import MEMORY_UTILIZATION, draft_weight_bytes

#: vLLM's default KV block (tokens per block).
BLOCK_SIZE = 16


@dataclass
class ServingModel:
    """Step times, KV pool and acceptance of one scenario for the simulator (SI units)."""

    scenario: Scenario
    rate: float  # mean per-token acceptance (i.i.d.), the scenario's
    draft_fraction: float
    target: StepTable
    draft: StepTable | None
    draft_prefill: StepTable | None
    pool_bytes_sd: float  # KV pool with the draft loaded (weights and its caches)
    pool_bytes_ar: float  # KV pool without a draft (policy off)
    target_token_bytes: float
    draft_token_bytes: float
    block_size: int = BLOCK_SIZE
    loop_s: float = 0.0
    budget: float = 0.0
    _phase_cache: dict = field(default_factory=dict)

    @classmethod
    def from_scenario(cls, scn: Scenario, block_size: int = BLOCK_SIZE, max_tokens: int = 8192
                      ) -> ServingModel:
        """Build the model of one scenario (its first KV budget and acceptance)."""
        t, d, hw, eng = scn.target, scn.draft, scn.hardware, scn.engine
        target = StepTable(t, scn.shard_target, hw, eng, scn.formats, max_tokens=max_tokens)
        draft = draft_prefill = None
        tb = kv_bytes_per_token_per_gpu(t, scn.shard_target, scn.formats)
        db = 0.0
        weights = weight_bytes_per_gpu(t, scn.shard_target, scn.formats)
        extra = 0.0
        if d.has_forward:
            draft = StepTable(d.arch, scn.shard_draft, hw, eng, scn.draft_formats,
                              fuse_inputs=d.fuse_inputs, draft=True, max_tokens=1024)
            db = kv_bytes_per_token_per_gpu(d.arch, scn.shard_draft, scn.draft_formats)
            if not d.is_self:
                extra = draft_weight_bytes(d, t, scn.shard_draft, scn.shard_target, scn.draft_formats)
                # a separate draft (model or head) also prefills the prompt: kernels only
                draft_prefill = StepTable(d.arch, scn.shard_draft, hw, None, scn.draft_formats,
                                          fuse_inputs=d.fuse_inputs, max_tokens=max_tokens)
        usable = MEMORY_UTILIZATION * hw.mem_capacity
        return cls(
            scenario=scn, rate=float(scn.acceptance.flat[0]), draft_fraction=scn.draft_fraction,
            target=target, draft=draft, draft_prefill=draft_prefill,
            pool_bytes_sd=usable - weights - extra, pool_bytes_ar=usable - weights,
            target_token_bytes=tb, draft_token_bytes=db, block_size=block_size,
            loop_s=eng.sd_iteration_s, budget=float(scn.kv_budget[0]),
        )

    # ------------------------------------------------------------------ KV
    def draft_kv(self, ctx: np.ndarray) -> np.ndarray:
        """Tokens the draft's attention reads (and its cache holds) at context ``ctx`` (tokens)."""
        return self.scenario.draft.kv_len(self.budget, ctx)

    def kv_bytes(self, ctx: np.ndarray, reserve: np.ndarray | int, speculative: bool) -> np.ndarray:
        """Bytes of paged KV a sequence holds with ``ctx`` tokens cached and ``reserve`` slots
        reserved (gamma + 1 for a speculating sequence), in whole blocks of target and draft."""
        bs = self.block_size
        c = np.asarray(ctx, dtype=np.int64) + reserve
        out = -(-c // bs) * (bs * self.target_token_bytes)
        if speculative and self.draft_token_bytes:
            dk = self.draft_kv(np.asarray(ctx, float)).astype(np.int64) + reserve
            out = out + -(-dk // bs) * (bs * self.draft_token_bytes)
        return out

    def pool_bytes(self, speculative: bool) -> float:
        """Bytes of GPU memory for KV blocks (per GPU) with or without the draft loaded."""
        return self.pool_bytes_sd if speculative else self.pool_bytes_ar

    # ------------------------------------------------------------------ time
    def phase(self, proposing: int) -> float:
        """The draft phase's fixed cost for ``proposing`` sequences (seconds)."""
        if proposing not in self._phase_cache:
            self._phase_cache[proposing] = float(self.scenario.draft_phase(proposing))
        return self._phase_cache[proposing]

    def step_time(self, q: np.ndarray, kv: np.ndarray, gamma: np.ndarray | int, draft_ctx: np.ndarray,
                  n_decode: int, prefill_q: np.ndarray, prefill_kv: np.ndarray, sd: bool) -> np.ndarray:
        """Seconds of an engine step (over the leading axes of ``q``, e.g. candidate gammas).

        ``q``, ``kv``: the target forward's new and cached tokens per scheduled sequence (last
        axis); ``gamma`` draft steps over the proposing sequences, whose draft reads ``draft_ctx``
        tokens each (q = 1), and the draft phase of ``n_decode`` decoding sequences; the prefill
        chunks (``prefill_q`` new over ``prefill_kv`` cached tokens) also run through a separate
        draft's prefill while SD is on (``sd``).  gamma = 0: a plain step, no draft, no SD loop.
        """
        t = self.target.time(q.shape[-1], q.sum(axis=-1), q, kv)
        g = np.asarray(gamma, float)
        if np.any(g > 0):
            spec = g > 0
            if self.draft is not None and len(draft_ctx):
                k = np.asarray(draft_ctx, float)
                t = t + g * self.draft.time(len(k), float(len(k)), np.ones_like(k), k)
            t = t + np.where(spec, self.phase(n_decode) + self.loop_s, 0.0)
        if sd and self.draft_prefill is not None and len(prefill_q):
            t = t + self.draft_prefill.time(len(prefill_q), prefill_q.sum(), prefill_q, prefill_kv)
        return t

    def omega(self, gamma: np.ndarray) -> np.ndarray:
        """Expected tokens per decode sequence per step at ``gamma`` (bonus included; gamma 0: 1)."""
        F = self.draft_fraction
        om = expected_tokens(self.rate, np.asarray(gamma, float))
        return np.where(np.asarray(gamma) > 0, F * om + (1.0 - F), 1.0)


def serving_model(query, seq_len: int, block_size: int = BLOCK_SIZE) -> ServingModel:
    """The :class:`ServingModel` of a :class:`~magicdec_model.perfmodel.sweep.Query` (its first GPU
    count and KV budget), with the acceptance looked up at ``seq_len`` tokens of context."""
    from dataclasses import replace

    from ..scenario import resolve

    scn = resolve(replace(query, seq_len=[int(seq_len)], batch=[1], budget_policy="cap"))[0]
    return ServingModel.from_scenario(scn, block_size)
