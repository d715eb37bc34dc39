"""One home per formula: the validator and the benchmarks get every number from perfmodel's own
functions, to the last bit, so a second copy of a formula that drifts fails here."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.engine import load_engine
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.ops import step_ops
from magicdec_model.perfmodel.parallel import shard
from magicdec_model.perfmodel.roofline import op_time
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit


def test_validate_compare_predicts_exactly_what_perfmodel_predicts():
    from magicdec_model.validate.check import compare

    arch = replace(get_model("llama-68m"), num_layers=2, dtype_bytes=4)
    hw = load_profile("a100-80gb-sxm")
    engine = load_engine("eager-pytorch")
    meas = pd.DataFrame([
        {"key": "check|ar|B=2|S=256|G=1", "stage": "check", "status": "ok", "op": "target_decode",
         "batch": 2, "seq_len": 256, "kv_budget": "", "gamma": "", "acceptance": "", "gpus": 1,
         "value": 0.01},
        *({"key": "check|sd|B=2|S=256|K=64|g=3|a=0.8|G=1", "stage": "check", "status": "ok", "op": op,
           "batch": 2, "seq_len": 256, "kv_budget": 64, "gamma": 3, "acceptance": 0.8, "gpus": 1,
           "value": v} for op, v in (("draft", 0.004), ("verify", 0.012), ("sd_loop", 4e-4),
                                      ("sd_token_latency", 0.007), ("omega", 2.5),
                                      ("acceptance_rate", 0.8))),
    ])
    comp = compare(meas, arch, hw, "streamingllm", engine).set_index("quantity")
    ref = predict(Query(model=arch, batch=[2], seq_len=[256], kv_budget=[64], gamma=[3], acceptance=0.8,
                        hardware=hw, engine=engine, kv_method="streamingllm", intervals=False)).iloc[0]
    assert comp.loc["target_decode", "predicted"] == ref["t_target_s"]
    assert comp.loc["draft", "predicted"] == ref["t_draft_s"]
    assert comp.loc["verify", "predicted"] == ref["t_verify_s"]
    assert comp.loc["sd_loop", "predicted"] == ref["t_sd_loop_s"]
    # the speedup at the measured Omega, with perfmodel's Eq. 1 terms
    cycle = 3 * ref["t_draft_s"] + ref["t_verify_s"] + ref["t_sd_loop_s"]
    assert comp.loc["speedup", "predicted"] == pytest.approx(ref["t_target_s"] * 2.5 / cycle, rel=1e-15)


def test_microbenchmark_costs_and_fit_times_are_perfmodels():
    from magicdec_model.validate.fit import FitData, model_times
    from magicdec_model.validate.microbench import costs_table, plan_points

    arch = get_model("llama-3.1-8b")
    hw = load_profile("h100-sxm")
    points = plan_points(arch, 1, [1, 8], [1024], [256], [3])
    table = costs_table(arch, 1, points)
    sh = shard(arch, 1)
    for p in points:
        ref = next(o for o in step_ops(arch, sh, p.batch, p.q, p.kv_len) if o.name == p.op)
        assert np.array_equal(table[p.key].flops, ref.flops) and np.array_equal(table[p.key].bytes, ref.bytes)
    costs = [table[p.key] for p in points]
    data = FitData.from_costs(costs, [1] * len(costs), np.ones(len(costs)), arch.dtype_bytes)
    fitted = model_times(hw, data)
    for c, t in zip(costs, fitted, strict=True):
        assert t == float(op_time(c, hw, 1, arch.dtype_bytes).time)
