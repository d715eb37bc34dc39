"""Whole grids of predictions as a DataFrame: the API that the CLI, reports and validate share.

The grid is the cross product batch x seq_len x kv_budget x gamma (x GPU count).  Everything is
computed with numpy broadcasting over orthogonal axes, so that each op is evaluated only over the
axes it depends on (a projection does not depend on the sequence length, for example) and no
Python loop runs per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .architecture import ModelArch
from .drafts import Draft
from .engine import EngineProfile
from .hardware import HardwareProfile
from .intervals import acceptance_log_sd, bounds, combine, log_sd
from .number_formats import Formats
from .ops import weight_bytes_per_gpu
from .parallel import Shard
from .physical import check_predictions
from .scenario import Scenario, resolve
from .speculative import sd_cycle, sd_latency
from .step import REGIMES, critical_seq_len, kv_cache_bytes

#: Share of GPU memory a serving engine may fill with weights and KV caches (vLLM's default
#: ``gpu_memory_utilization=0.9``); the rest is CUDA context, activations and workspace.
MEMORY_UTILIZATION = 0.9

RESULT_COLUMNS = (
    "model",
    "draft",
    "kv_method",
    "kv_budget",
    "hardware",
    "engine",
    "gpus",
    "batch",
    "seq_len",
    "gamma",
    "acceptance",
    "acceptance_source",
    "acceptance_sd",
    "acceptance_basis",
    "t_target_s",
    "t_draft_s",
    "t_verify_s",
    "t_sd_loop_s",
    "t_draft_phase_s",
    "expected_tokens",
    "speedup",
    "speedup_lo",
    "speedup_hi",
    "throughput_ar_tok_s",
    "throughput_sd_tok_s",
    "latency_ar_s",
    "latency_sd_s",
    "regime",
    "kv_fraction",
    "fits_memory",
    "within_context",
    "regime_verify",
    "regime_draft",
    "kv_fraction_verify",
    "comm_fraction",
    "critical_seq_len",
    "memory_per_gpu_bytes",
    "memory_capacity_bytes",
    "t_target_s_lo",
    "t_target_s_hi",
    "t_draft_s_lo",
    "t_draft_s_hi",
    "t_verify_s_lo",
    "t_verify_s_hi",
    "verify_tokens",
    "draft_fraction",
    "formats",
    "ideal",
    "notes",
)


@dataclass
class Query:
    """What to predict: one target/draft/hardware/engine setting over lists of the grid axes.

    ``engine`` is a shipped engine name, a TOML path or a profile (None: the default engine;
    ``ideal`` charges none).  ``intervals`` adds the 80 % prediction intervals (``*_lo``,
    ``*_hi``); without it those columns equal the point estimate.
    """

    model: str | ModelArch
    batch: Sequence[int]
    seq_len: Sequence[int]
    draft: str = "self"
    kv_method: str = "auto"
    kv_budget: Sequence[int] = (512,)
    hardware: str | HardwareProfile = "a100-80gb-sxm"
    gpus: Sequence[int] = (1,)
    gamma: Sequence[int] | str = "auto"
    acceptance: float | None = None
    acceptance_table: str | None = None
    ideal: bool = False
    #: "error": a budget >= a sequence length is bad input; "cap": the draft reads the full KV
    budget_policy: str = "cap"
    engine: str | EngineProfile | None = None
    intervals: bool = True
    #: number formats (``number_formats.WEIGHT_CHOICES`` / ``KV_CHOICES``): "native" = the checkpoint's
    weight_dtype: str = "native"
    kv_dtype: str = "native"
    #: acceptance given as a mean accepted length (tokens per step) or per-position rates
    accept_len: float | None = None
    #: acceptance as an engine reports it, accepted / drafted tokens at the one --gamma
    accept_rate: float | None = None
    position_acceptance: Sequence[float] | None = None
    #: fraction of iterations in which the draft proposes (n-gram lookup: those with a match)
    draft_fraction: float = 1.0
    #: tree verification: nodes verified per sequence per step (None: a chain of gamma + 1)
    verify_tokens: int | None = None
    #: an EAGLE head's reduced draft vocabulary (None: the target's)
    draft_vocab: int | None = None
    expert_parallel: bool = False


def predict(query: Query) -> pd.DataFrame:
    """Evaluate the SD model over the query's grid; one row per point (see RESULT_COLUMNS)."""
    frames = [evaluate(scn, intervals=query.intervals) for scn in resolve(query)]
    return check_predictions(pd.concat(frames, ignore_index=True), inputs=input_files(query))


def query_files(query: Query) -> dict[str, str | None]:
    """The inputs of a query that may be files, by flag (registry names among them are no files)."""
    return {flag: value if isinstance(value, str) else None
            for flag, value in (("--acceptance-table", query.acceptance_table), ("--model", query.model),
                                ("--hardware", query.hardware), ("--engine", query.engine))}


def input_files(query: Query) -> str:
    """The hardware and engine a query names, as flags (for messages about their values)."""
    named = [f"{flag} {value}" for flag, value in (("--hardware", query.hardware), ("--engine", query.engine))
             if isinstance(value, str)]
    return ", ".join(named)


def _axes(scn: Scenario) -> tuple[np.ndarray, ...]:
    """The grid axes as orthogonal broadcasting arrays (batch, seq_len, budget, gamma)."""
    b = scn.batch.astype(float)[:, None, None, None]
    s = scn.seq_len.astype(float)[None, :, None, None]
    k = scn.kv_budget.astype(float)[None, None, :, None]
    g = scn.gammas.astype(float)[None, None, None, :]
    return b, s, k, g


def _step_times(scn: Scenario, b, s, k, g):
    """Target (nB, nS, 1, 1), draft (nB, nS, nK, 1) and verify (nB, nS, 1, nG) step times."""
    return (scn.step_time("target", b, s, k, g), scn.step_time("draft", b, s, k, g),
            scn.step_time("verify", b, s, k, g))


def _perturbation(engine: EngineProfile, key: str) -> float:
    """A small step in one parameter for numerical derivatives (kept inside (0, 1] for fractions)."""
    theta = engine.value(key)
    delta = max(abs(theta), 1e-9) * 1e-4
    if key in engine.efficiency and theta + delta > 1.0:
        delta = -delta
    return delta


def evaluate(scn: Scenario, intervals: bool = True) -> pd.DataFrame:
    """Every point of one resolved scenario as a DataFrame (RESULT_COLUMNS)."""
    target, draft, hw, engine, G = scn.target, scn.draft, scn.hardware, scn.engine, scn.gpus
    sh_t, sh_d = scn.shard_target, scn.shard_draft
    nB, nS, nK, nG = len(scn.batch), len(scn.seq_len), len(scn.kv_budget), len(scn.gammas)
    b, s, k, g = _axes(scn)
    st_t, st_d, st_v = _step_times(scn, b, s, k, g)
    acc = scn.acceptance[None, :, :, None]  # (1, nS, nK, 1)
    acc_src = scn.acceptance_source[None, :, :, None]
    omega = scn.omega(g)  # (1, nS, nK, nG)
    t_loop = engine.sd_iteration_s
    t_phase = scn.draft_phase(b)  # (nB, 1, 1, 1)
    cycle = _cycle(scn, st_t.time, st_d.time, st_v.time, g, t_phase) + t_loop  # s per SD iteration
    latency_sd = sd_latency(st_d.time, st_v.time, omega, g, t_loop, t_phase=t_phase,
                            fraction=scn.draft_fraction, t_target=st_t.time)
    speedup = st_t.time / latency_sd  # (nB, nS, nK, nG)

    full = np.broadcast_shapes(speedup.shape, (nB, nS, nK, nG))

    def bc(x):
        return np.broadcast_to(x, full)

    if scn.gamma_auto:
        pick = np.argmax(bc(speedup), axis=-1)[..., None]

        def sel(x):
            return np.take_along_axis(bc(x), pick, axis=-1)
    else:

        def sel(x):
            return bc(x)

    gamma_sel = sel(g)
    omega_sel = sel(omega)
    t_verify = sel(st_v.time)
    latency = sel(latency_sd)
    out_shape = gamma_sel.shape

    def flat(x):
        return np.broadcast_to(x, out_shape).reshape(-1)

    sd = _interval_sds(scn, b, s, k, g, st_t.time, st_d.time, st_v.time, cycle, sel,
                       (st_t, st_d, st_v)) if intervals else None
    acc_sd = scn.acceptance_sd[None, :, :, None] if scn.acceptance_sd is not None else None
    if sd is not None and acc_sd is not None and scn.accept_mode == "rate" and np.any(acc_sd > 0):
        part = sel(acceptance_log_sd(acc, acc_sd, g, scn.draft_fraction))
        sd["speedup"] = combine(sd["speedup"], part) if "speedup" in sd else part
    z = engine.interval_quantile

    def ends(x, key):
        if sd is None or key not in sd:
            return flat(x), flat(x)
        lo, hi = bounds(x, sd[key], z)
        return flat(lo), flat(hi)

    sp_sel = st_t.time / latency
    sp_lo, sp_hi = ends(sp_sel, "speedup")
    tt_lo, tt_hi = ends(st_t.time, "target")
    td_lo, td_hi = ends(st_d.time, "draft")
    tv_lo, tv_hi = ends(t_verify, "verify")

    draft_kv = scn.shape("draft", g, s, k)[1]
    verified = scn.verify_tokens or (gamma_sel + 1)
    mem = target_memory(scn, b, s + verified)
    if draft.is_self:
        mem = mem + kv_cache_bytes(target, sh_t, b, draft_kv + verified, scn.formats)
    elif draft.has_forward:
        mem = mem + draft_weight_bytes(draft, target, sh_d, sh_t, scn.draft_formats)
        mem = mem + kv_cache_bytes(draft.arch, sh_d, b, draft_kv + verified, scn.draft_formats)
    capacity = hw.mem_capacity

    notes = list(scn.notes)
    if sh_t.kv_replicated:
        notes.append(f"target {sh_t.describe()}")
    if not draft.is_self and sh_d.kv_replicated:
        notes.append(f"draft {sh_d.describe()}")
    base_note = "; ".join(notes)
    # per-row notes: a budget capped at the sequence, a context past the model's positions
    capped = np.broadcast_to((k >= s) & (draft.kv_method != "full"), out_shape).reshape(-1)
    beyond = np.broadcast_to(s + verified > target.max_positions, out_shape).reshape(-1)
    row_notes = ["budget >= seq_len: the draft reads the full KV",
                 f"seq_len + verified tokens exceed {target.name}'s max_position_embeddings "
                 f"{target.max_positions:,}: predicted as if it ran there"]
    note_texts = ["; ".join([n for n in [base_note] if n] + [t for t, on in zip(row_notes, (c, b),
                                                                                 strict=True) if on])
                  for b in (False, True) for c in (False, True)]
    note_codes = (capped.astype(np.int8) + 2 * beyond.astype(np.int8))

    t_target = flat(st_t.time)
    n = t_target.size

    # text columns as categoricals built from the small arrays before broadcasting (a string per
    # row would cost more than the model itself); CSV and JSON output are the same text
    def const(value: str) -> pd.Categorical:
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), pd.Index([value], dtype=object))

    def cat(small: np.ndarray) -> pd.Categorical:
        small = np.asarray(small, dtype=object)
        uniq, inv = np.unique(small, return_inverse=True)
        codes = flat(inv.reshape(small.shape).astype(np.int16))
        return pd.Categorical.from_codes(codes, pd.Index(list(uniq), dtype=object))

    def regime(code: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(flat(code), pd.Index(list(REGIMES), dtype=object))

    df = pd.DataFrame(
        {
            "model": const(target.name),
            "draft": const(draft.name),
            "kv_method": const(draft.kv_method),
            "kv_budget": flat(np.broadcast_to(k, out_shape)).astype(np.int64),
            "hardware": const(hw.name),
            "engine": const(engine.name),
            "gpus": np.full(n, G, dtype=np.int64),
            "batch": flat(b).astype(np.int64),
            "seq_len": flat(s).astype(np.int64),
            "gamma": flat(gamma_sel).astype(np.int64),
            "acceptance": flat(acc),
            "acceptance_source": cat(acc_src),
            "acceptance_sd": flat(acc_sd if acc_sd is not None else np.zeros(acc.shape)),
            "acceptance_basis": cat(scn.acceptance_basis[None, :, :, None]
                                    if scn.acceptance_basis is not None else np.full(acc.shape, "given")),
            "t_target_s": t_target,
            "t_draft_s": flat(st_d.time),
            "t_verify_s": flat(t_verify),
            "t_sd_loop_s": np.full(n, t_loop),
            "t_draft_phase_s": flat(t_phase),
            "expected_tokens": flat(omega_sel),
            "speedup": flat(sp_sel),
            "speedup_lo": sp_lo,
            "speedup_hi": sp_hi,
            "throughput_ar_tok_s": flat(b / st_t.time),
            "throughput_sd_tok_s": flat(b / latency),
            "latency_ar_s": t_target,
            "latency_sd_s": flat(latency),
            "regime": regime(st_t.regime_code),
            "kv_fraction": flat(st_t.kv_fraction),
            "fits_memory": flat(mem <= MEMORY_UTILIZATION * capacity),
            "within_context": ~beyond,
            "regime_verify": regime(sel(st_v.regime_code)),
            "regime_draft": regime(st_d.regime_code) if draft.has_forward else const("none"),
            "kv_fraction_verify": flat(sel(st_v.kv_fraction)),
            "comm_fraction": flat(st_t.comm_time / st_t.time),
            "critical_seq_len": flat(critical_seq_len(target, sh_t, hw, b, scn.formats)),
            "memory_per_gpu_bytes": flat(mem),
            "memory_capacity_bytes": np.full(n, capacity),
            "t_target_s_lo": tt_lo,
            "t_target_s_hi": tt_hi,
            "t_draft_s_lo": td_lo,
            "t_draft_s_hi": td_hi,
            "t_verify_s_lo": tv_lo,
            "t_verify_s_hi": tv_hi,
            "verify_tokens": flat(np.asarray(verified)).astype(np.int64),
            "draft_fraction": np.full(n, scn.draft_fraction),
            "formats": const(scn.formats.describe()),
            "ideal": np.full(n, bool(scn.ideal)),
            "notes": _notes(note_codes, note_texts),
        }
    )
    return df


def target_memory(scn: Scenario, batch, tokens) -> np.ndarray:
    """Bytes one GPU holds for the target alone: its weights plus the KV caches of ``batch``
    sequences of ``tokens`` cached tokens each (the draft's weights and caches come on top)."""
    return weight_bytes_per_gpu(scn.target, scn.shard_target, scn.formats) \
        + kv_cache_bytes(scn.target, scn.shard_target, batch, tokens, scn.formats)


def _notes(codes: np.ndarray, texts: list[str]) -> pd.Categorical:
    """A categorical of the texts the codes pick (texts may repeat: the used ones are unique)."""
    used = sorted(set(codes.tolist())) if codes.size < 64 else list(np.unique(codes))
    cats = list(dict.fromkeys(texts[int(c)] for c in used))
    remap = np.asarray([cats.index(texts[i]) if texts[i] in cats else 0 for i in range(len(texts))],
                       dtype=np.int8)
    return pd.Categorical.from_codes(remap[codes], pd.Index(cats, dtype=object))


def _cycle(scn: Scenario, t_target, t_draft, t_verify, g, t_phase) -> np.ndarray:
    """Seconds of one SD iteration without the loop term (linear in every time: its derivative too)."""
    return sd_cycle(t_draft, t_verify, g, 0.0, t_phase=t_phase, fraction=scn.draft_fraction,
                    t_target=t_target)


def draft_weight_bytes(draft: Draft, target: ModelArch, sh_d: Shard, sh_t: Shard,
                       fmt: Formats | None) -> float:
    """Bytes of weights a draft adds on one GPU: a model's own, or a head's layer and input
    projection (plus its own LM head over a reduced vocabulary) without the target's shared ones."""
    own = weight_bytes_per_gpu(draft.arch, sh_d, fmt)
    if not draft.is_head:
        return own
    fuse = 2.0 * draft.arch.hidden_size * draft.arch.hidden_size * (fmt.weight_bytes if fmt else 2)
    shared = draft.arch.vocab_size * draft.arch.hidden_size * draft.arch.dtype_bytes  # embedding
    if draft.shares_head:
        shared += sh_d.vocab * draft.arch.hidden_size * draft.arch.dtype_bytes  # the target's LM head
    return own - shared + fuse


#: Engine terms that add to the times linearly (their derivatives are exact without re-evaluation).
_ADDITIVE = ("host_step_s", "host_per_seq_s", "per_token_s", "launch_s", "sd_iteration_s",
             "draft_step_s", "draft_phase_s", "ngram_lookup_s")


def _additive_derivatives(scn: Scenario, key: str, b, g, steps):
    """d(T_target, T_draft, T_verify, T_phase, T_loop) / d(term) of one additive engine term.

    The same terms as :meth:`engine.EngineProfile.step_overhead` and :meth:`Scenario.draft_phase`,
    differentiated: per step 1 (host), B (per sequence), B q (per token), kernels (launch).
    """
    st_t, st_d, st_v = steps
    forward = scn.draft.has_forward
    own_draft_host = "draft_step_s" in scn.engine.terms
    zero = np.zeros(())
    if key in ("host_step_s", "draft_step_s"):
        on_target = 1.0 if key == "host_step_s" else 0.0
        on_draft = float(forward and (key == "draft_step_s" or not own_draft_host))
        return on_target, np.asarray(on_draft), on_target, zero, 0.0
    if key == "host_per_seq_s":
        return b, b * forward, b, zero, 0.0
    if key == "per_token_s":
        q_v = scn.shape("verify", g, 1, 1)[0]
        q_d = scn.shape("draft", g, 1, 1)[0]
        return b, b * q_d * forward, b * q_v, zero, 0.0
    if key == "launch_s":
        return float(st_t.kernels), np.asarray(float(st_d.kernels)), float(st_v.kernels), zero, 0.0
    if key == "sd_iteration_s":
        return 0.0, zero, 0.0, zero, 1.0
    if key == "draft_phase_s":
        return 0.0, zero, 0.0, np.asarray(float(scn.draft.is_head)), 0.0
    return 0.0, zero, 0.0, b * (scn.draft.kind == "ngram"), 0.0  # ngram_lookup_s


def _interval_sds(scn: Scenario, b, s, k, g, tt, td, tv, cycle, sel, steps) -> dict[str, np.ndarray]:
    """Log-space standard deviations of the step times and the speedup (:mod:`intervals`).

    Derivatives: exact for the additive engine terms, one forward difference for the others;
    verify and speedup are taken at the selected gamma.
    """
    engine = scn.engine
    # terms that cannot move this scenario's times are left out (one evaluation saved each)
    unused = set()
    if scn.draft.kind != "ngram":
        unused.add("ngram_lookup_s")
    if not scn.draft.is_head:
        unused.add("draft_phase_s")
    keys = [k for k in engine.uncertain_parameters() if k not in unused]
    resid = engine.residual_sd_log ** 2
    if not keys and resid == 0.0:
        return {}
    grads: dict[str, list[np.ndarray]] = {"target": [], "draft": [], "verify": [], "speedup": []}
    for key in keys:
        if key in _ADDITIVE:
            d_t, d_d, d_v, d_phase, d_loop = _additive_derivatives(scn, key, b, g, steps)
        else:  # efficiencies, all-reduce terms: one forward difference
            delta = _perturbation(engine, key)
            moved = scn.with_engine(engine.with_values({key: engine.value(key) + delta}))
            p_t, p_d, p_v = _step_times(moved, b, s, k, g)
            d_t = (p_t.time - tt) / delta
            d_d = (p_d.time - td) / delta
            d_v = (p_v.time - tv) / delta
            d_loop, d_phase = 0.0, 0.0
        grads["target"].append(d_t / tt)
        grads["draft"].append(np.divide(d_d, td, out=np.zeros(np.broadcast_shapes(
            np.shape(d_d), np.shape(td))), where=np.broadcast_to(td, np.broadcast_shapes(
                np.shape(d_d), np.shape(td))) > 0))
        grads["verify"].append(sel(d_v / tv))
        d_cycle = _cycle(scn, d_t, d_d, d_v, g, d_phase) + d_loop
        grads["speedup"].append(sel(d_t / tt - d_cycle / cycle))
    cov = engine.covariance(keys)
    residual_count = {"target": 1, "draft": 1, "verify": 1, "speedup": 2}
    return {name: log_sd(gr, cov, residual_count[name] * resid) for name, gr in grads.items()}
