"""Per-op breakdown of one step at one point: FLOPs, bytes, time and regime of every op, and the
engine's software cost of the step as rows of their own."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import InputError
from .ops import step_ops
from .physical import check_numbers
from .roofline import op_time
from .scenario import STEP_KINDS, resolve
from .speculative import check_gamma
from .sweep import Query, input_files

#: The steps ``breakdown`` shows (the SD steps of :mod:`scenario`).
STEPS = STEP_KINDS
#: Rows for the engine's terms of one step: (row name, term, what multiplies it).
ENGINE_ROWS = (
    ("engine_host_step", "host_step_s", "step"),
    ("engine_host_seq", "host_per_seq_s", "batch"),
    ("engine_per_token", "per_token_s", "tokens"),
    ("engine_launch", "launch_s", "kernels"),
)


def step_breakdown(
    model: str,
    step: str,
    batch: int,
    seq_len: int,
    gpus: int = 1,
    hardware: str = "a100-80gb-sxm",
    gamma: int = 3,
    draft: str = "self",
    kv_method: str = "auto",
    kv_budget: int = 512,
    ideal: bool = False,
    engine: str | None = None,
    **options: object,
) -> pd.DataFrame:
    """One row per op of the chosen step (``target``, ``verify`` or ``draft``) at one point.

    ``options`` are further :class:`sweep.Query` fields (formats, draft vocabulary, a tree's
    ``verify_tokens``, ``expert_parallel``).

    Columns: op, op_class (``engine`` for the engine's rows), count, flops (FLOP per step), bytes
    (per step), comm_bytes, time_s (seconds per step), share (of the step), regime
    (memory/compute/comm/host), engine (its name).  Per GPU.
    """
    if step not in STEPS:
        raise InputError(f"--step {step!r} is not one of: {', '.join(STEPS)}")
    check_gamma(gamma)
    query = Query(model=model, batch=[batch], seq_len=[seq_len], draft=draft, kv_method=kv_method,
                  kv_budget=[kv_budget], hardware=hardware, gpus=[gpus], gamma=[gamma], ideal=ideal,
                  engine=engine, budget_policy="cap",
                  **_any_acceptance(options), **options)
    scn = resolve(query)[0]
    if step == "draft" and not scn.draft.has_forward:
        raise InputError(f"--step draft: a {scn.draft.kind} draft runs no forward step (its host "
                         f"cost is the engine's ngram_lookup_s per sequence)")
    arch, sh = scn.step_model(step)
    q, n = scn.shape(step, gamma, seq_len, kv_budget)
    fmt = scn.draft_formats if step == "draft" else scn.formats
    fuse = scn.draft.fuse_inputs if step == "draft" else 0
    rows = []
    kernels = 0
    for op in step_ops(arch, sh, batch, q, n, fmt, fuse):
        t = op_time(op, scn.hardware, sh.gpus, arch.dtype_bytes)
        active = op.op_class != "allreduce" or bool(np.any(np.asarray(op.comm_bytes) > 0))
        kernels += op.count if active else 0
        rows.append({
            "op": op.name,
            "op_class": op.op_class,
            "count": op.count,
            "flops": float(np.sum(op.flops)) * op.count,
            "bytes": float(np.sum(op.bytes)) * op.count,
            "comm_bytes": float(np.sum(op.comm_bytes)) * op.count,
            "time_s": float(t.time),
            "regime": str(t.regime.reshape(-1)[0]),
        })
    per = {"step": 1, "batch": batch, "kernels": kernels, "tokens": int(batch * float(q))}
    for name, term, unit in ENGINE_ROWS:
        value = scn.engine.term("draft_step_s") if (term == "host_step_s" and step == "draft") \
            else scn.engine.term(term)
        rows.append({"op": name, "op_class": "engine", "count": per[unit], "flops": 0.0, "bytes": 0.0,
                     "comm_bytes": 0.0, "time_s": value * per[unit], "regime": "host"})
    df = pd.DataFrame(rows)
    # the engine rows add exactly what step_time charges (one formula: EngineProfile.step_overhead)
    total = float(scn.step_time(step, batch, seq_len, kv_budget, gamma).time)
    df["share"] = df["time_s"] / total
    numbers = {c: df[c] for c in ("flops", "bytes", "comm_bytes", "time_s", "share")}
    check_numbers({"step time": total, **numbers}, "breakdown", positive=("step time",),
                  inputs=input_files(query))
    df["engine"] = scn.engine.name
    df.attrs["engine"] = scn.engine
    df.attrs["step_time_s"] = total
    return df


def _any_acceptance(options: dict) -> dict:
    """An acceptance for the query: a step's time does not depend on it (a tree's: any accepted
    length; a chain's: any rate), unless the options give one."""
    if "accept_len" in options or "position_acceptance" in options:
        return {}
    return {"accept_len": 1.0} if options.get("verify_tokens") is not None else {"acceptance": 0.5}
