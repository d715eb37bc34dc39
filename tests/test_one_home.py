"""One home per formula: the validator and the benchmarks get every number from perfmodel's own
functions, to the last bit, so a second copy of a formula that drifts fails here."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

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


# ---------------------------------------------------------------- constants with one home each
REPO = Path(__file__).resolve().parents[1]
#: the KV-method names; a tuple literal starting with two of them is a retyped copy of the list
_METHOD = r"""["'](streamingllm|snapkv|full)["']"""
KV_LIST_LITERAL = re.compile(rf"\(\s*{_METHOD}\s*,\s*{_METHOD}")
#: an efficiency key used as a dict key with a value (a retyped table of the profile's keys)
EFF_DICT_LITERAL = re.compile(r"""["'](gemm|attention|elementwise)_(bw|flops)["']\s*:\s*[0-9]""")


def _sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob("*.py"))


def test_validate_kv_methods_are_perfmodels_list_or_a_subset_derived_from_it():
    from magicdec_model.perfmodel.acceptance import BUDGET_KV_METHODS, KV_METHODS
    from magicdec_model.validate.run import KV_METHODS as VALIDATE_METHODS
    from magicdec_model.validate.speculative_loop import DRAFT_METHODS

    assert DRAFT_METHODS is KV_METHODS
    assert VALIDATE_METHODS is BUDGET_KV_METHODS
    assert set(BUDGET_KV_METHODS) == set(KV_METHODS) - {"full"}
    home = REPO / "perfmodel" / "acceptance.py"
    scanned = [p for p in _sources("validate") + _sources("cli") + _sources("perfmodel") if p != home]
    copies = [p.name for p in scanned if KV_LIST_LITERAL.search(p.read_text())]
    assert copies == [], f"a second copy of the KV-method list in {copies}"
    assert KV_LIST_LITERAL.search(home.read_text())  # the scan finds the one home it exempts


def test_validate_generic_start_has_exactly_the_profile_keys_and_no_retyped_table():
    from magicdec_model.perfmodel.hardware import EFFICIENCY_KEYS, OPTIONAL_EFFICIENCY
    from magicdec_model.validate.run import GENERIC_START

    assert list(GENERIC_START) == list(EFFICIENCY_KEYS + OPTIONAL_EFFICIENCY)
    copies = [p.name for p in _sources("validate") if EFF_DICT_LITERAL.search(p.read_text())]
    assert copies == [], f"a retyped table of efficiency keys in {copies}"


def test_validate_refuses_budgets_and_acceptance_with_perfmodels_checks(tmp_path, monkeypatch):
    """The same bad value gives the same message from validate's check and from perfmodel's."""
    from magicdec_model.perfmodel.acceptance import check_acceptance
    from magicdec_model.perfmodel.errors import InputError
    from magicdec_model.perfmodel.scenario import check_budgets
    from magicdec_model.validate import run as vrun

    base = vrun.ValidateConfig(device="cpu", model="llama-68m", layers=1, batch=[1], seq_len=[256],
                               kv_budget=[64], kv_method="streamingllm", gamma=[3], acceptance=0.8,
                               out=tmp_path / "out")
    for cfg, reference in (
        (replace(base, kv_budget=[256]), lambda: check_budgets([256], [256], full_allowed=False)),
        (replace(base, acceptance=1.0), lambda: check_acceptance(1.0)),
    ):
        with pytest.raises(InputError) as ours:
            vrun.check_config(cfg)
        with pytest.raises(InputError) as theirs:
            reference()
        assert str(ours.value) == str(theirs.value)
    # the validator is routed through those functions: replacing them changes its answer
    monkeypatch.setattr(vrun, "check_budgets", lambda *a, **k: (_ for _ in ()).throw(InputError("stub")))
    with pytest.raises(InputError, match="^stub$"):
        vrun.check_config(base)
