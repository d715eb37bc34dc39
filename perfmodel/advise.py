"""Draft-strategy advisor: rank SD configurations for one workload and say when SD is not worth it.

Candidates for a target model:

* self-speculation with a StreamingLLM or SnapKV draft KV of 128..4096 tokens;
* every registry model of the target's tokenizer family with fewer parameters, with a full KV and
  with StreamingLLM budgets;
* an EAGLE head, the model's MTP module where it has one, and n-gram prompt lookup (acceptance
  from the published figures of ``data/acceptance_methods.csv`` or a per-kind default, named).

Each is predicted with :func:`strategy.predict_strategies` (gamma chosen per candidate).  A
candidate is eligible when its weights and KV caches fit in memory and, if a latency budget is
given, its SD per-token latency meets it.  Eligible candidates are ranked by speedup.

Why SD loses is read off MagicDec's Eq. 1 with the engine's loop term, speedup = Omega /
(gamma T_D/T_T + T_V/T_T + T_loop/T_T): each term is set to its ideal in turn (drafting free,
verification as cheap as one decode step, every draft token accepted, no loop bookkeeping) and the
term whose ideal helps most is named as the one that dominates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .acceptance import BUDGET_KV_METHODS
from .architecture import builtin_model, builtin_model_names, get_model, tokenizer_family
from .engine import resolve_engine
from .errors import InputError
from .feasibility import Infeasible, TargetFit, feasible, largest_batch, target_fit
from .intervals import LEVEL
from .parallel import shard
from .strategy import Strategy, predict_strategies
from .sweep import Query

#: Budgets (tokens) tried for sparse-KV drafts.
BUDGETS = (128, 256, 512, 1024, 2048, 4096)
#: Below this predicted speedup SD is reported as not worth deploying.
WORTH_IT = 1.05


@dataclass
class Advice:
    """Ranked candidates, the skipped ones with reasons, and a plain-words verdict."""

    ranking: pd.DataFrame
    skipped: list[str]
    verdict: str
    worth_it: bool
    notes: list[str] = field(default_factory=list)
    #: the top candidate's 80 % speedup interval contains 1.0: SD may or may not pay
    uncertain: bool = False
    #: the batch asked for; the ranking is for ``batch`` (smaller where nothing fitted at the one
    #: asked for: the largest batch at which a candidate fits)
    requested_batch: int = 0
    batch: int = 0
    #: the target alone at the requested batch: whether it fits, the largest batch that does, fixes
    target_fit: TargetFit | None = None


def candidates(target_name: str, gpus: int, seq_len: int) -> tuple[list[Strategy], list[str]]:
    """Draft strategies to try for ``target_name`` on ``gpus`` GPUs at ``seq_len``, and skip notes."""
    target = get_model(target_name)
    skipped: list[str] = []
    out: list[Strategy] = []
    for method in BUDGET_KV_METHODS:
        out.extend(Strategy("self", method, b) for b in BUDGETS if b < seq_len)
    too_big = [str(b) for b in BUDGETS if b >= seq_len]
    if too_big:
        skipped.append(f"self-speculation with budgets {', '.join(too_big)}: not below seq_len "
                       f"{seq_len}, the draft would be the target itself")
    family = tokenizer_family(target)
    for name in builtin_model_names():
        d = builtin_model(name)
        if d.name == target.name or tokenizer_family(d) != family:
            continue
        if d.param_count() >= target.param_count():
            continue
        try:
            shard(d, gpus)
        except InputError as exc:
            skipped.append(f"{d.name}: cannot be split over {gpus} GPUs ({exc})")
            continue
        out.append(Strategy(d.name, "full", 0))
        for b in BUDGETS:
            if b < seq_len:
                out.append(Strategy(d.name, "streamingllm", b))
    # today's drafts: an EAGLE head, the model's own MTP module, n-gram prompt lookup
    out.append(Strategy("eagle", "full", 0))
    if target.mtp_layers:
        out.append(Strategy("mtp", "full", 0))
    else:
        skipped.append(f"mtp: {target.name} has no multi-token-prediction module")
    out.append(Strategy("ngram", "full", 0))
    return out, skipped


def _why(row: pd.Series) -> str:
    """Name the term of Eq. 1 that holds speedup down for one candidate, in plain words."""
    omega = row["expected_tokens"]
    draft_term = row["draft_cost"]
    verify_term = row["verify_cost"]
    loop_term = row.get("loop_cost", 0.0)
    g = row["gamma"]
    gain = {
        "draft": omega / (verify_term + loop_term),
        "verify": omega / (draft_term + 1.0 + loop_term),
        "acceptance": (g + 1.0) / (draft_term + verify_term + loop_term),
        "loop": omega / (draft_term + verify_term),
    }
    worst = max(gain, key=gain.get)
    if worst == "draft":
        text = (f"drafting is too expensive: gamma x T_draft / T_target = {draft_term:.2f}, so the "
                f"{g} draft step{'s' if g != 1 else ''} cost {draft_term:.0%} of a target step")
        if row["draft"] == "self":
            text += (f"; the target step spends only {row['kv_fraction']:.0%} of its time reading "
                     f"KV, the only part a sparse-KV self-draft saves (weights are read in full)")
        else:
            text += "; the draft reads too many bytes relative to the target"
        return text
    if worst == "verify":
        return (f"verification is expensive: T_verify / T_target = {verify_term:.2f} for "
                f"{g + 1} tokens, because the verify step is {row['regime_verify']}-bound")
    if worst == "loop":
        return (f"the engine's SD-loop bookkeeping costs {loop_term:.2f} of a target step per "
                f"iteration (T_loop / T_target)")
    return (f"acceptance {row['acceptance']:.2f} yields only {omega:.2f} tokens per verify step "
            f"out of a possible {g + 1}")


def advise(
    model: str,
    hardware: str,
    gpus: int,
    batch: int,
    seq_len: int,
    latency_budget_s: float | None = None,
    acceptance: float | None = None,
    acceptance_table: str | None = None,
    ideal: bool = False,
    engine: str | None = None,
    _fallback: bool = False,
    **options: object,
) -> Advice:
    """Rank draft strategies for one workload (``seq_len`` tokens, ``latency_budget_s`` s/token)."""
    if latency_budget_s is not None and not latency_budget_s > 0:
        raise InputError(f"--latency-budget-ms {latency_budget_s * 1e3:g} must be positive")
    for flag, v in (("--batch", batch), ("--seq-len", seq_len), ("--gpus", gpus)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise InputError(f"{flag} {v!r} must be one positive integer")
    shard(get_model(model), gpus)  # a bad TP split of the target is bad input, not a skip
    strategies, skipped = candidates(model, gpus, seq_len)
    if not strategies:
        raise InputError(
            f"--seq-len {seq_len}: no draft strategy to rank for {get_model(model).name} (self-drafts "
            f"need a budget below seq_len, the smallest is {BUDGETS[0]}, and no smaller registry model "
            f"shares its tokenizer); allowed: --seq-len above {BUDGETS[0]}"
        )
    base = Query(model=model, batch=[batch], seq_len=[seq_len], hardware=hardware, gpus=[gpus],
                 acceptance=acceptance, acceptance_table=acceptance_table, ideal=ideal,
                 budget_policy="cap", engine=engine, **options)
    df = predict_strategies(base, strategies)
    df["draft_cost"] = df["gamma"] * df["t_draft_s"] / df["t_target_s"]
    df["verify_cost"] = df["t_verify_s"] / df["t_target_s"]
    df["loop_cost"] = df["t_sd_loop_s"] / df["t_target_s"]
    meets = np.ones(len(df), bool)
    if latency_budget_s is not None:
        meets = df["latency_sd_s"].to_numpy() <= latency_budget_s
    df["meets_latency"] = meets
    eng = resolve_engine(engine, ideal)
    df["engine_runs"] = [eng.runs(d, m) for d, m in zip(df["draft"].astype(str), df["kv_method"].astype(str),
                                                         strict=True)]
    runs = feasible(df)
    df["eligible"] = runs & meets & df["engine_runs"].to_numpy(dtype=bool)
    reasons = np.full(len(df), "", dtype=object)
    reasons[~df["engine_runs"].to_numpy(dtype=bool)] = f"engine {eng.name} cannot run it"
    no_mem = ~df["fits_memory"].to_numpy(dtype=bool)
    reasons[no_mem] = [(r + "; " if r else "") + "does not fit in memory" for r in reasons[no_mem]]
    beyond = ~df["within_context"].to_numpy(dtype=bool)
    reasons[beyond] = [(r + "; " if r else "") + "exceeds the model's maximum context"
                       for r in reasons[beyond]]
    if latency_budget_s is not None:
        slow = ~meets
        reasons[slow] = [
            (r + "; " if r else "") + f"SD latency {lat * 1e3:.2f} ms > budget {latency_budget_s * 1e3:g} ms"
            for r, lat in zip(reasons[slow], df["latency_sd_s"].to_numpy()[slow], strict=True)
        ]
    df["why_excluded"] = reasons
    df = df.sort_values(["eligible", "speedup"], ascending=[False, False], kind="stable")
    df = df.reset_index(drop=True)
    df.insert(0, "rank", np.where(df["eligible"], np.arange(1, len(df) + 1), 0))

    ar_latency = float(df["latency_ar_s"].iloc[0])
    notes: list[str] = []
    if latency_budget_s is not None and ar_latency > latency_budget_s:
        notes.append(f"AR decoding takes {ar_latency * 1e3:.2f} ms/token, over the budget too")
    basis = df["acceptance_basis"].astype(str) if "acceptance_basis" in df.columns else \
        pd.Series("default", index=df.index)
    n_model, n_default = int((basis == "model").sum()), int((basis == "default").sum())
    if acceptance is None and n_model:
        notes.append(
            f"{n_model} of {len(df)} candidates take their acceptance from the acceptance model "
            f"(docs/acceptance.md), not from a measurement of that draft and budget: measure "
            f"acceptance and pass --acceptance-table to rank on measurements"
        )
    if acceptance is None and n_default:
        notes.append(
            f"{n_default} of {len(df)} candidates have a default acceptance or another budget's "
            f"value (see acceptance_source): their ranking reflects cost only"
        )
    lost = Infeasible.of(df).describe("candidates")
    if lost:
        notes.append(f"{lost}: not ranked")
    if not df["engine_runs"].all():
        cannot = sorted(set(df.loc[~df["engine_runs"], "strategy"]))
        notes.append(f"{len(cannot)} of {df['strategy'].nunique()} candidates are strategies engine "
                     f"{eng.name} cannot run (it runs: {', '.join(eng.supports)}; "
                     f"{eng.supports_source}): excluded from the ranking")
    eligible = df[df["eligible"]]
    if eligible.empty and not _fallback:
        runnable = [s for s in strategies if eng.runs(s.draft, s.kv_method)]
        answer = _smaller_batch(model, hardware, gpus, batch, seq_len, latency_budget_s, base, runnable,
                                df, notes, acceptance=acceptance, acceptance_table=acceptance_table,
                                ideal=ideal, engine=engine, **options)
        if answer is not None:
            return answer
    if eligible.empty:
        worth = False
        verdict = ("SD cannot run here: no draft strategy"
                   + (f" that engine {eng.name} runs" if eng.supports else "")
                   + " fits in memory and within the model's context"
                   + (" and meets the latency budget" if latency_budget_s is not None else "")
                   + " at this or any smaller batch.")
    else:
        top = eligible.iloc[0]
        worth = bool(top["speedup"] >= WORTH_IT)
        if worth:
            verdict = (f"SD pays off: {top['strategy']} with gamma {top['gamma']} is predicted "
                       f"{top['speedup']:.2f}x faster than autoregressive decoding.")
        else:
            verdict = (f"SD is not worth it here: the best candidate, {top['strategy']} (gamma "
                       f"{top['gamma']}), reaches only {top['speedup']:.2f}x (< {WORTH_IT}); "
                       f"{_why(top)}.")
    if not eligible.empty and acceptance is None:
        top = eligible.iloc[0]
        rests = str(basis.loc[top.name]) if top.name in basis.index else "measured"
        if rests in ("model", "default"):
            if rests == "model":
                verdict += (f" This ranking rests on the {top['acceptance_source']}, not on a measurement "
                            f"of {top['strategy']}; the interval includes the model's uncertainty.")
            else:
                verdict += (f" This ranking rests on a default acceptance of {top['acceptance']:.2f}, not "
                            f"on a measurement of {top['strategy']}.")
    uncertain = False
    if not eligible.empty:
        top = eligible.iloc[0]
        lo, hi = float(top["speedup_lo"]), float(top["speedup_hi"])
        if lo < 1.0 < hi:
            uncertain = True
            verdict += (f" Uncertain: its {LEVEL:.0%} interval {lo:.2f}-{hi:.2f}x straddles 1.0 "
                        f"(engine {top['engine']}); whether SD pays depends on the engine's overheads: "
                        f"calibrate the engine on your measured AR steps (magicdec-model calibrate).")
    return Advice(df, skipped, verdict, worth, notes, uncertain, batch, batch)


def _smaller_batch(model: str, hardware: str, gpus: int, batch: int, seq_len: int,
                   latency_budget_s: float | None, base: Query, strategies: list[Strategy],
                   df: pd.DataFrame, notes: list[str], **kwargs: object) -> Advice | None:
    """Where no candidate can run at ``batch``: say why (the target alone, with the largest batch
    that fits and the changes that would fit it; or the drafts), and answer for the largest batch
    at which a candidate runs (None where there is none)."""
    fit = target_fit(base)
    if not fit.fits:
        why = fit.describe(get_model(model).name, batch, seq_len, gpus, str(df["hardware"].iloc[0]))
    else:
        parts = [f"{int(n)} {text}" for n, text in (
            ((~df["fits_memory"]).sum(), "do not fit in memory"),
            ((~df["within_context"]).sum(), "exceed the model's maximum context"),
            ((~df["engine_runs"]).sum(), f"cannot run on engine {df['engine'].iloc[0]}"),
        ) if n]
        if latency_budget_s is not None and not df["meets_latency"].all():
            parts.append(f"{int((~df['meets_latency']).sum())} miss the latency budget of "
                         f"{latency_budget_s * 1e3:g} ms/token (the fastest takes "
                         f"{df['latency_sd_s'].min() * 1e3:.2f} ms)")
        why = f"At batch {batch} no candidate of {len(df)} can be used: {', '.join(parts)}."
    smaller = largest_batch(base, strategies, batch, latency_budget_s) if strategies else 0
    if not smaller:
        notes.insert(0, why)
        return None
    sub = advise(model, hardware, gpus, smaller, seq_len, latency_budget_s, _fallback=True, **kwargs)
    sub.notes = [why, *sub.notes]
    sub.verdict = (f"Not at batch {batch}: no draft strategy can be used there (see the note). At batch "
                   f"{smaller}, the largest at which one can: {sub.verdict}")
    sub.requested_batch = batch
    sub.target_fit = fit
    return sub


ADVICE_COLUMNS = (
    "rank", "strategy", "draft", "kv_method", "kv_budget", "gamma", "acceptance", "speedup",
    "speedup_lo", "speedup_hi", "engine",
    "throughput_sd_tok_s", "throughput_ar_tok_s", "latency_sd_s", "latency_ar_s",
    "memory_per_gpu_bytes", "fits_memory", "engine_runs", "meets_latency", "draft_cost", "verify_cost",
    "loop_cost",
    "expected_tokens", "acceptance_source", "acceptance_sd", "acceptance_basis", "why_excluded",
)
