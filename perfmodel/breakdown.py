"""Per-op breakdown of one step at one point: FLOPs, bytes, time and regime of every op."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .architecture import get_model
from .errors import InputError
from .hardware import load_profile
from .ops import step_ops
from .parallel import shard
from .roofline import op_time
from .speculative import make_draft

STEPS = ("target", "verify", "draft")


def step_breakdown(
    model: str,
    step: str,
    batch: int,
    seq_len: int,
    gpus: int = 1,
    hardware: str = "a100-80gb-sxm",
    gamma: int = 3,
    draft: str = "self",
    kv_method: str = "streamingllm",
    kv_budget: int = 512,
    ideal: bool = False,
) -> pd.DataFrame:
    """One row per op of the chosen step (``target``, ``verify`` or ``draft``) at one point.

    Columns: op, op_class, count, flops (FLOP per step), bytes (per step), comm_bytes, time_s
    (seconds per step), share (of the step), regime (memory/compute/comm).  Per GPU.
    """
    if step not in STEPS:
        raise InputError(f"--step {step!r} is not one of: {', '.join(STEPS)}")
    target = get_model(model)
    hw = load_profile(hardware)
    if ideal:
        hw = hw.ideal()
    if step == "draft":
        d = make_draft(draft, target, kv_method)
        arch, q = d.arch, 1
        n = float(d.kv_len(kv_budget, seq_len))
    else:
        arch, q, n = target, (gamma + 1 if step == "verify" else 1), float(seq_len)
    sh = shard(arch, gpus)
    rows = []
    for op in step_ops(arch, sh, batch, q, n):
        t = op_time(op, hw, sh.gpus, arch.dtype_bytes)
        rows.append(
            {
                "op": op.name,
                "op_class": op.op_class,
                "count": op.count,
                "flops": float(np.sum(op.flops)) * op.count,
                "bytes": float(np.sum(op.bytes)) * op.count,
                "comm_bytes": float(np.sum(op.comm_bytes)) * op.count,
                "time_s": float(t.time),
                "regime": str(t.regime.reshape(-1)[0]),
            }
        )
    df = pd.DataFrame(rows)
    df["share"] = df["time_s"] / df["time_s"].sum()
    return df
