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

from .acceptance import check_acceptance, load_table, lookup
from .architecture import ModelArch, get_model
from .errors import InputError
from .hardware import HardwareProfile, load_profile
from .ops import weight_bytes_per_gpu
from .parallel import shard
from .speculative import GAMMA_MAX, check_gamma, expected_tokens, make_draft
from .step import critical_seq_len, kv_cache_bytes, step_time

#: Share of GPU memory a serving engine may fill with weights and KV caches (vLLM's default
#: ``gpu_memory_utilization=0.9``); the rest is CUDA context, activations and workspace.
MEMORY_UTILIZATION = 0.9

RESULT_COLUMNS = (
    "model",
    "draft",
    "kv_method",
    "kv_budget",
    "hardware",
    "gpus",
    "batch",
    "seq_len",
    "gamma",
    "acceptance",
    "acceptance_source",
    "t_target_s",
    "t_draft_s",
    "t_verify_s",
    "expected_tokens",
    "speedup",
    "throughput_ar_tok_s",
    "throughput_sd_tok_s",
    "latency_ar_s",
    "latency_sd_s",
    "regime",
    "kv_fraction",
    "fits_memory",
    "regime_verify",
    "regime_draft",
    "kv_fraction_verify",
    "comm_fraction",
    "critical_seq_len",
    "memory_per_gpu_bytes",
    "memory_capacity_bytes",
    "ideal",
    "notes",
)


def _positive_ints(values: Sequence[int], flag: str) -> np.ndarray:
    out = []
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer() or v <= 0:
            raise InputError(f"{flag} {v!r} must be a positive integer")
        out.append(int(v))
    if not out:
        raise InputError(f"{flag} needs at least one value")
    return np.asarray(out, dtype=np.int64)


@dataclass
class Query:
    """What to predict: one target/draft/hardware setting over lists of the grid axes."""

    model: str | ModelArch
    batch: Sequence[int]
    seq_len: Sequence[int]
    draft: str = "self"
    kv_method: str = "streamingllm"
    kv_budget: Sequence[int] = (512,)
    hardware: str | HardwareProfile = "a100-80gb-sxm"
    gpus: Sequence[int] = (1,)
    gamma: Sequence[int] | str = "auto"
    acceptance: float | None = None
    acceptance_table: str | None = None
    ideal: bool = False
    #: "error": a budget >= a sequence length is bad input; "cap": the draft reads the full KV
    budget_policy: str = "cap"


def predict(query: Query) -> pd.DataFrame:
    """Evaluate the SD model over the query's grid; one row per point (see RESULT_COLUMNS)."""
    target = get_model(query.model)
    draft = make_draft(query.draft, target, query.kv_method)
    hw = query.hardware if isinstance(query.hardware, HardwareProfile) else load_profile(query.hardware)
    if query.ideal:
        hw = hw.ideal()
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
    gammas = (
        np.arange(1, GAMMA_MAX + 1) if auto else np.asarray([check_gamma(g) for g in query.gamma])
    )
    if query.acceptance is not None:
        check_acceptance(query.acceptance)
    if draft.kv_method != "full" and query.budget_policy == "error":
        for k in K:
            if k >= S.min():
                raise InputError(
                    f"--kv-budget {k} is not smaller than --seq-len {S.min()}: the draft would "
                    f"read the full KV cache; allowed: budgets below every sequence length "
                    f"(or --kv-method full)"
                )
    table = load_table(query.acceptance_table) if query.acceptance is None else None
    frames = [
        _evaluate(target, draft, hw, int(G), B, S, K, gammas, auto, query, table)
        for G in gpus_list
    ]
    return pd.concat(frames, ignore_index=True)


def _evaluate(target, draft, hw, G, B, S, K, gammas, auto, query, table) -> pd.DataFrame:
    sh_t = shard(target, G)
    sh_d = sh_t if draft.is_self else shard(draft.arch, G)
    b = B.astype(float)[:, None, None, None]
    s = S.astype(float)[None, :, None, None]
    k = K.astype(float)[None, None, :, None]
    g = gammas.astype(float)[None, None, None, :]

    st_t = step_time(target, sh_t, hw, b, 1, s)  # (nB, nS, 1, 1)
    draft_kv = draft.kv_len(k, s)  # (1, nS, nK, 1)
    st_d = step_time(draft.arch, sh_d, hw, b, 1, draft_kv)  # (nB, nS, nK, 1)
    st_v = step_time(target, sh_t, hw, b, g + 1, s)  # (nB, nS, 1, nG)

    shape3 = (1, len(S), len(K), 1)
    if query.acceptance is not None:
        acc = np.full(shape3, float(query.acceptance))
        acc_src = np.full(shape3, "given by --acceptance", dtype=object)
    else:
        acc = np.empty(shape3)
        acc_src = np.empty(shape3, dtype=object)
        for j, budget in enumerate(K):
            found = lookup(table, target.name, draft.name, draft.kv_method, int(budget), S)
            acc[0, :, j, 0] = found.value
            acc_src[0, :, j, 0] = found.source
    omega = expected_tokens(acc, g)  # (1, nS, nK, nG)
    cycle = g * st_d.time + st_v.time  # seconds per SD step
    latency_sd = cycle / omega
    speedup = st_t.time / latency_sd  # (nB, nS, nK, nG)

    full = np.broadcast_shapes(speedup.shape, (len(B), len(S), len(K), len(gammas)))

    def bc(x):
        return np.broadcast_to(x, full)

    if auto:
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

    w_t = weight_bytes_per_gpu(target, sh_t)
    mem = w_t + kv_cache_bytes(target, sh_t, b, s + gamma_sel + 1)
    if draft.is_self:
        mem = mem + kv_cache_bytes(target, sh_t, b, draft_kv + gamma_sel + 1)
    else:
        mem = mem + weight_bytes_per_gpu(draft.arch, sh_d)
        mem = mem + kv_cache_bytes(draft.arch, sh_d, b, draft_kv + gamma_sel + 1)
    capacity = hw.mem_capacity

    notes = []
    if sh_t.kv_replicated:
        notes.append(f"target {sh_t.describe()}")
    if not draft.is_self and sh_d.kv_replicated:
        notes.append(f"draft {sh_d.describe()}")
    base_note = "; ".join(notes)
    capped = np.broadcast_to((k >= s) & (draft.kv_method != "full"), out_shape).reshape(-1)
    note_col = np.full(capped.shape, base_note, dtype=object)
    if capped.any():
        extra = "budget >= seq_len: the draft reads the full KV"
        note_col[capped] = f"{base_note}; {extra}" if base_note else extra

    t_target = flat(st_t.time)
    n = t_target.size
    df = pd.DataFrame(
        {
            "model": np.full(n, target.name, dtype=object),
            "draft": np.full(n, draft.name, dtype=object),
            "kv_method": np.full(n, draft.kv_method, dtype=object),
            "kv_budget": flat(np.broadcast_to(k, out_shape)).astype(np.int64),
            "hardware": np.full(n, hw.name, dtype=object),
            "gpus": np.full(n, G, dtype=np.int64),
            "batch": flat(b).astype(np.int64),
            "seq_len": flat(s).astype(np.int64),
            "gamma": flat(gamma_sel).astype(np.int64),
            "acceptance": flat(acc),
            "acceptance_source": flat(acc_src),
            "t_target_s": t_target,
            "t_draft_s": flat(st_d.time),
            "t_verify_s": flat(t_verify),
            "expected_tokens": flat(omega_sel),
            "speedup": flat(st_t.time / latency),
            "throughput_ar_tok_s": flat(b / st_t.time),
            "throughput_sd_tok_s": flat(b / latency),
            "latency_ar_s": t_target,
            "latency_sd_s": flat(latency),
            "regime": flat(st_t.regime),
            "kv_fraction": flat(st_t.kv_fraction),
            "fits_memory": flat(mem <= MEMORY_UTILIZATION * capacity),
            "regime_verify": flat(sel(st_v.regime)),
            "regime_draft": flat(st_d.regime),
            "kv_fraction_verify": flat(sel(st_v.kv_fraction)),
            "comm_fraction": flat(st_t.comm_time / st_t.time),
            "critical_seq_len": flat(critical_seq_len(target, sh_t, hw, b)),
            "memory_per_gpu_bytes": flat(mem),
            "memory_capacity_bytes": np.full(n, capacity),
            "ideal": np.full(n, bool(query.ideal)),
            "notes": note_col,
        }
    )
    return df
