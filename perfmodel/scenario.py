"""A query resolved once: models, shards, formats, hardware, engine, axes, acceptance; the SD steps.

Everything that turns user input into what the cost model needs happens in :func:`resolve`, and
the three forward steps of speculative decoding are defined in one place, :func:`step_shape`:

* ``target`` - the autoregressive decode step of the target: q = 1 new token, reading S cached;
* ``verify`` - the target over gamma + 1 tokens (a chain: the last emitted and gamma drafted) or
  the W nodes of a draft tree (``verify_tokens``), reading S;
* ``draft``  - one draft step over the draft's KV (its budget, capped at S; S for a full-KV
  draft): q = 1 for a chain, the tree's frontier width ceil((W - 1) / gamma) for a tree, with the
  target's weights (self-speculation), the draft model's, or a head's one-layer slice
  (:mod:`drafts`).  An n-gram draft has no forward step.

Sweep, breakdown, report, advise and the validator's microbenchmarks and checks all take their
step shapes from here, and their step times from :meth:`Scenario.step_time` (kernels plus the
engine's cost per step, :func:`step.step_time`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .acceptance import check_acceptance, load_table
from .architecture import ModelArch, get_model
from .drafts import Draft, make_draft
from .engine import EngineProfile, resolve_engine
from .errors import InputError
from .hardware import HardwareProfile, load_profile
from .inputs import check_int
from .method_acceptance import lookup_method
from .number_formats import RUNS_IN, Formats, formats_for
from .parallel import Shard, shard
from .speculative import GAMMA_MAX, check_gamma, expected_tokens, omega_positions
from .step import StepTime, step_time

if TYPE_CHECKING:  # pragma: no cover
    from .sweep import Query

STEP_KINDS = ("target", "verify", "draft")
#: How the expected tokens per iteration are given (:meth:`Scenario.omega`).
ACCEPT_MODES = ("rate", "accept_len", "positions")


def step_shape(
    kind: str, draft: Draft, gamma: Any, seq_len: Any, budget: Any, verify_tokens: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(q, kv_len)`` of a step: new tokens per sequence and KV tokens its attention reads.

    Arrays broadcast together; ``gamma`` draft steps (the chain length, or a tree's depth),
    ``seq_len`` tokens in the target's cache, ``budget`` tokens kept by the draft's sparse KV,
    ``verify_tokens`` the nodes of a draft tree (None: a chain of gamma + 1).
    """
    S = np.asarray(seq_len, dtype=float)
    if kind == "target":
        return np.ones(()), S
    if kind == "verify":
        if verify_tokens:
            return np.asarray(float(verify_tokens)), S
        return np.asarray(gamma, dtype=float) + 1.0, S
    if kind == "draft":
        if verify_tokens:
            return np.ceil((verify_tokens - 1.0) / np.asarray(gamma, dtype=float)), draft.kv_len(budget, S)
        return np.ones(()), draft.kv_len(budget, S)
    raise InputError(f"--step {kind!r} is not one of: {', '.join(STEP_KINDS)}")


def _positive_ints(values: Sequence[int], flag: str) -> np.ndarray:
    out = []
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer() or v <= 0:
            raise InputError(f"{flag} {v!r} must be a positive integer")
        out.append(int(v))
    if not out:
        raise InputError(f"{flag} needs at least one value")
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class Scenario:
    """One resolved setting at one GPU count, over the query's axes (all SI units).

    ``base_hardware`` is the profile after ``--ideal``; ``hardware`` adds the engine's
    overrides (all-reduce implementation, calibrated efficiencies).  ``acceptance`` and
    ``acceptance_source`` have shape ``(len(seq_len), len(kv_budget))``: the per-token rate
    (for ``accept_len`` the rate equivalent to tau at the chain's gamma, for display).
    """

    target: ModelArch
    draft: Draft
    base_hardware: HardwareProfile
    hardware: HardwareProfile
    engine: EngineProfile
    gpus: int
    shard_target: Shard
    shard_draft: Shard
    batch: np.ndarray
    seq_len: np.ndarray
    kv_budget: np.ndarray
    gammas: np.ndarray
    gamma_auto: bool
    acceptance: np.ndarray
    acceptance_source: np.ndarray
    ideal: bool
    notes: tuple[str, ...] = ()
    formats: Formats | None = None
    draft_formats: Formats | None = None
    accept_mode: str = "rate"
    accept_len: float = 0.0
    positions: tuple[float, ...] = ()
    draft_fraction: float = 1.0
    verify_tokens: int | None = None
    #: standard error of ``acceptance`` (0 where given by the user or unknown) and what each value
    #: rests on: ``measured``, ``model``, ``default`` or ``given`` (same shape as ``acceptance``)
    acceptance_sd: np.ndarray | None = None
    acceptance_basis: np.ndarray | None = None

    def step_model(self, kind: str) -> tuple[ModelArch, Shard]:
        """The model record and its shard that run a step of ``kind``."""
        if kind == "draft":
            if self.draft.arch is None:
                raise InputError("an n-gram draft has no forward step")
            return self.draft.arch, self.shard_draft
        return self.target, self.shard_target

    def shape(self, kind: str, gamma: Any, seq_len: Any, budget: Any) -> tuple[np.ndarray, np.ndarray]:
        """:func:`step_shape` of this scenario's draft and verification shape."""
        return step_shape(kind, self.draft, gamma, seq_len, budget, self.verify_tokens)

    def step_time(self, kind: str, batch: Any, seq_len: Any, budget: Any, gamma: Any) -> StepTime:
        """Time of one step of ``kind`` on one GPU (seconds): kernels plus the engine's cost.

        An n-gram draft's step is empty (its host cost is :meth:`draft_phase`).
        """
        q, n = self.shape(kind, gamma, seq_len, budget)
        if kind == "draft" and not self.draft.has_forward:
            zero = np.zeros(np.broadcast_shapes(np.shape(batch), np.shape(n), np.shape(q)))
            return StepTime(zero, zero, zero, zero, zero, {}, zero, zero, 0)
        arch, sh = self.step_model(kind)
        fmt = self.draft_formats if kind == "draft" else self.formats
        fuse = self.draft.fuse_inputs if kind == "draft" else 0
        return step_time(arch, sh, self.hardware, batch, q, n, self.engine, fmt, fuse_inputs=fuse,
                         draft=kind == "draft")

    def draft_phase(self, batch: Any) -> np.ndarray:
        """Fixed software cost of one drafting phase (seconds): a head's, or n-gram lookup's."""
        B = np.asarray(batch, dtype=float)
        if self.draft.kind == "ngram":
            return self.engine.term("ngram_lookup_s") * B
        if self.draft.is_head:
            return np.full(B.shape, self.engine.term("draft_phase_s"))
        return np.zeros(B.shape)

    def omega(self, gamma: np.ndarray) -> np.ndarray:
        """Expected tokens per SD iteration, bonus included, at ``gamma`` ((1, nS, nK, nG))."""
        g = np.asarray(gamma, dtype=float)
        F = self.draft_fraction
        if self.accept_mode == "accept_len":
            return np.broadcast_to(np.asarray(self.accept_len), np.broadcast_shapes(
                g.shape, (1,) + self.acceptance.shape + (1,))).copy()
        if self.accept_mode == "positions":
            om = omega_positions(np.asarray(self.positions), g)
            om = np.broadcast_to(om, np.broadcast_shapes(om.shape, (1,) + self.acceptance.shape + (1,)))
        else:
            om = expected_tokens(self.acceptance[None, :, :, None], g)
        return F * om + (1.0 - F)

    def with_engine(self, engine: EngineProfile) -> Scenario:
        """The same scenario under another engine (its overrides applied to the base hardware)."""
        hw, notes = engine.apply_to(self.base_hardware)
        return replace(self, engine=engine, hardware=hw, notes=tuple(notes))



def runs_in(arch: ModelArch, weight_dtype: str) -> ModelArch:
    """``arch`` as it runs under ``--weight-dtype``: with fp32 weights the activations (and the
    native KV format) are fp32 too (:data:`number_formats.RUNS_IN`); otherwise unchanged."""
    size = RUNS_IN.get(weight_dtype)
    if size is None or arch.dtype_bytes == size:
        return arch
    return replace(arch, dtype_bytes=size)


def check_budgets(kv_budget: Sequence[int], seq_len: Sequence[int], *, full_allowed: bool = True) -> None:
    """Refuse a KV budget (tokens) that is not smaller than every sequence length (tokens).

    ``full_allowed`` adds the hint ``--kv-method full`` to the message (where that method exists).
    """
    shortest = int(min(seq_len))
    for k in kv_budget:
        if k >= shortest:
            raise InputError(
                f"--kv-budget {k} is not smaller than --seq-len {shortest}: the draft would "
                f"read the full KV cache; allowed: budgets below every sequence length"
                + (" (or --kv-method full)" if full_allowed else "")
            )


def resolve(query: Query) -> list[Scenario]:
    """Validate ``query`` and resolve it into one :class:`Scenario` per GPU count."""
    target = runs_in(get_model(query.model), query.weight_dtype)
    draft = make_draft(query.draft, target, query.kv_method, query.draft_vocab)
    if draft.kind == "model":
        draft = replace(draft, arch=runs_in(draft.arch, query.weight_dtype))
    hw = query.hardware if isinstance(query.hardware, HardwareProfile) else load_profile(query.hardware)
    if query.ideal:
        hw = hw.ideal()
    engine = resolve_engine(query.engine, query.ideal)
    fmt = formats_for(target.weight_format(), target.weight_format(expert=True), target.dtype_bytes,
                      query.weight_dtype, query.kv_dtype)
    d_fmt = fmt
    if draft.kind == "model":
        d_fmt = formats_for(draft.arch.weight_format(), draft.arch.weight_format(expert=True),
                            draft.arch.dtype_bytes, query.weight_dtype, query.kv_dtype)
    B = _positive_ints(query.batch, "--batch")
    S = _positive_ints(query.seq_len, "--seq-len")
    gpus_list = _positive_ints(query.gpus, "--gpus")
    if draft.kv_method == "full":
        K = np.asarray([0], dtype=np.int64)
    else:
        K = _positive_ints(query.kv_budget, "--kv-budget")
    auto = isinstance(query.gamma, str)
    if auto and query.gamma != "auto":
        raise InputError(f"--gamma {query.gamma!r} must be 'auto' or integers in 1..{GAMMA_MAX}")
    gammas = np.arange(1, GAMMA_MAX + 1) if auto else np.asarray([check_gamma(g) for g in query.gamma])
    F = query.draft_fraction
    if isinstance(F, bool) or not isinstance(F, (int, float)) or not 0 < F <= 1:
        raise InputError(f"--draft-fraction {F!r} is outside (0, 1]; allowed: the fraction of "
                         f"iterations in which the draft proposes, 0 < F <= 1")
    mode, tau, positions, gammas = _accept_mode(query, gammas, auto)
    W = query.verify_tokens
    if W is not None:
        # tree nodes verified: 2..MAX_VERIFY_TOKENS
        W = check_int(int(W) if isinstance(W, np.integer) else W, "--verify-tokens")
        if auto:
            raise InputError("--verify-tokens (a tree) needs a fixed --gamma: the tree's depth")
        if mode == "rate":
            raise InputError("--verify-tokens (a tree) needs --accept-len TAU (tokens per step of that "
                             "tree) or --position-acceptance; an i.i.d. rate does not describe a tree")
        for g in gammas:
            if W < g + 1:
                raise InputError(f"--verify-tokens {W} is smaller than a chain of --gamma {g} "
                                 f"(gamma + 1 = {g + 1}); allowed: W >= gamma + 1")
        if mode == "accept_len" and tau > W:
            raise InputError(f"--accept-len {tau} exceeds the {W} tokens a step verifies")
    if query.acceptance is not None:
        check_acceptance(query.acceptance)
    if draft.kv_method != "full" and query.budget_policy == "error":
        check_budgets(K, S)
    acc, acc_src, acc_sd, acc_basis = _acceptance(query, target, draft, S, K, mode, tau, positions, gammas)
    applied, notes = engine.apply_to(hw)
    unsupported = engine.cannot_run(draft.name if draft.kind == "model" else draft.kind, draft.kv_method)
    if unsupported:
        notes.append(unsupported)
    ep = bool(query.expert_parallel)
    out = []
    for G in gpus_list:
        sh_t = shard(target, int(G), ep)
        if draft.is_self or not draft.has_forward:
            sh_d = sh_t
        else:
            sh_d = shard(draft.arch, int(G), ep and draft.arch.is_moe)
        out.append(Scenario(
            target=target, draft=draft, base_hardware=hw, hardware=applied, engine=engine,
            gpus=int(G), shard_target=sh_t, shard_draft=sh_d, batch=B, seq_len=S, kv_budget=K,
            gammas=gammas, gamma_auto=auto, acceptance=acc, acceptance_source=acc_src,
            ideal=bool(query.ideal), notes=tuple(notes), formats=fmt, draft_formats=d_fmt,
            accept_mode=mode, accept_len=tau, positions=positions, draft_fraction=float(F),
            verify_tokens=None if W is None else int(W), acceptance_sd=acc_sd,
            acceptance_basis=acc_basis,
        ))
    return out


def _accept_mode(query: Query, gammas: np.ndarray, auto: bool
                 ) -> tuple[str, float, tuple[float, ...], np.ndarray]:
    """Which of --acceptance, --accept-len, --accept-rate, --position-acceptance gives Omega;
    gammas to search.  --accept-rate (accepted / drafted at one gamma) becomes the tokens per step
    1 + rate x gamma (:mod:`acceptance_conventions`)."""
    given = [n for n, v in (("--acceptance", query.acceptance), ("--accept-len", query.accept_len),
                            ("--accept-rate", query.accept_rate),
                            ("--position-acceptance", query.position_acceptance)) if v is not None]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)} both set the acceptance; allowed: one of them")
    if query.accept_rate is not None:
        from .acceptance_conventions import tokens_per_step_from_rate

        r = query.accept_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise InputError(f"--accept-rate {r!r} is outside [0, 1]; allowed: accepted / drafted "
                             f"tokens, 0 <= r <= 1")
        if auto or len(gammas) != 1:
            raise InputError("--accept-rate is measured at one gamma: give that --gamma (one "
                             "integer), not auto or a list")
        if query.verify_tokens is not None:
            raise InputError("--accept-rate describes a chain; for a tree (--verify-tokens) give "
                             "--accept-len")
        return "accept_len", float(tokens_per_step_from_rate(r, int(gammas[0]))), (), gammas
    if query.accept_len is not None:
        tau = query.accept_len
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 1:
            raise InputError(f"--accept-len {tau!r} must be a number >= 1 (tokens per step, bonus "
                             f"included)")
        if auto:
            raise InputError("--accept-len is measured at one draft shape: give the --gamma (and "
                             "--verify-tokens of a tree) it was measured at, not auto")
        for g in gammas:  # a chain or a tree of depth gamma: gamma drafted tokens + 1 bonus at most
            if tau > g + 1:
                shape = "chain" if query.verify_tokens is None else "tree of depth"
                raise InputError(f"--accept-len {tau:g} exceeds the gamma + 1 = {g + 1} tokens a "
                                 f"{shape} --gamma {g} can emit per step; allowed: 1..{g + 1}")
        return "accept_len", float(tau), (), gammas
    if query.position_acceptance is not None:
        rates = tuple(float(r) for r in query.position_acceptance)
        if not rates or any(not (0.0 <= r <= 1.0) for r in rates):
            raise InputError(f"--position-acceptance {list(rates)} must be rates in [0, 1], one per "
                             f"draft position")
        if any(b > a + 1e-12 for a, b in zip(rates, rates[1:], strict=False)):
            raise InputError(f"--position-acceptance {list(rates)} must not increase: position i+1 "
                             f"is accepted only if position i is")
        if auto:
            gammas = np.arange(1, len(rates) + 1)
        elif int(gammas.max()) > len(rates):
            raise InputError(f"--gamma {int(gammas.max())} exceeds the {len(rates)} positions of "
                             f"--position-acceptance")
        return "positions", 0.0, rates, gammas
    return "rate", 0.0, (), gammas


def _acceptance(query: Query, target: ModelArch, draft: Draft, S: np.ndarray, K: np.ndarray,
                mode: str, tau: float, positions: tuple[float, ...], gammas: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Acceptance, its source, standard error and basis at each (seq_len, budget)."""
    from .acceptance_model import estimate, model_for_table

    shape = (len(S), len(K))
    zero = np.zeros(shape)
    given = np.full(shape, "given", dtype=object)
    if mode == "accept_len":
        from .speculative import rate_from_accept_len

        g = int(gammas[0])
        rate = rate_from_accept_len(min(tau, g + 1.0), g) if query.verify_tokens is None else float("nan")
        text = f"--accept-len {tau:g} tokens per step"
        if query.accept_rate is not None:
            text = (f"--accept-rate {query.accept_rate:g} accepted/drafted at gamma {g}: "
                    f"1 + {query.accept_rate:g} x {g} = {tau:g} tokens per step")
        return np.full(shape, rate), np.full(shape, text, dtype=object), zero, given
    if mode == "positions":
        text = "--position-acceptance " + ",".join(f"{r:g}" for r in positions)
        return np.full(shape, positions[0]), np.full(shape, text, dtype=object), zero, given
    if query.acceptance is not None:
        return (np.full(shape, float(query.acceptance)),
                np.full(shape, "given by --acceptance", dtype=object), zero, given)
    if draft.kind in ("eagle", "mtp", "ngram"):
        found = lookup_method(target.name, draft.kind)
        basis = "measured" if found.measured else "default"
        return (np.full(shape, found.rate), np.full(shape, found.source, dtype=object), zero,
                np.full(shape, basis, dtype=object))
    table = load_table(query.acceptance_table)
    fitted = model_for_table(query.acceptance_table) if draft.is_self else None
    acc = np.empty(shape)
    sd = np.empty(shape)
    src = np.empty(shape, dtype=object)
    basis = np.empty(shape, dtype=object)
    for j, budget in enumerate(K):
        found = estimate(table, target.name, draft.name, draft.kv_method, int(budget), S, fitted)
        acc[:, j] = found.value
        sd[:, j] = found.sd
        src[:, j] = found.source
        basis[:, j] = found.basis
    return acc, src, sd, basis
