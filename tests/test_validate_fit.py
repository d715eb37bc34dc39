"""The fit recovers known efficiency parameters from timings that the model itself generated."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.hardware import load_profile, profile_from_dict
from magicdec_model.validate.fit import FitData, fit_profile, fitted_profile, model_times
from magicdec_model.validate.microbench import costs_table, plan_points

TRUE = {
    "gemm_bw": 0.82,
    "gemm_flops": 0.71,
    "attention_bw": 0.55,
    "attention_flops": 0.40,
    "elementwise_bw": 0.63,
    "elementwise_flops": 0.5,
    "kernel_fixed_s": 7e-6,
    "allreduce_latency_s": 9e-6,
    "allreduce_hop_latency_s": 1e-6,
    "allreduce_busbw": 180e9,
}


def _data(gpus: int, noise: float, seed: int = 0) -> tuple[FitData, object]:
    arch = get_model("llama-3.1-8b")
    truth = replace(load_profile("a100-80gb-sxm"), efficiency=dict(TRUE))
    # batches up to 256 x 5 tokens: GEMMs cross the ridge, so both GEMM fractions matter
    points = plan_points(arch, gpus, [1, 8, 64, 256], [1024, 8192, 32768], [256], [4])
    table = costs_table(arch, gpus, points)
    costs = [table[p.key] for p in points]
    clean = FitData.from_costs(costs, [gpus] * len(costs), np.ones(len(costs)), arch.dtype_bytes)
    t = model_times(truth, clean)
    rng = np.random.default_rng(seed)
    measured = t * np.exp(rng.normal(0.0, noise, size=t.shape))
    return FitData.from_costs(costs, [gpus] * len(costs), measured, arch.dtype_bytes), truth


def test_fit_recovers_known_parameters_single_gpu():
    data, truth = _data(1, noise=0.03)
    start = load_profile("a100-80gb-sxm")  # shipped priors, different from TRUE
    res = fit_profile(start, data)
    eff = res.profile.efficiency
    for key in ("gemm_bw", "gemm_flops", "attention_bw", "elementwise_bw"):
        assert eff[key] == pytest.approx(TRUE[key], rel=0.08), key
    assert eff["kernel_fixed_s"] == pytest.approx(TRUE["kernel_fixed_s"], rel=0.25)
    # single GPU: all-reduce terms cannot be fitted and stay at the starting profile's values
    for key in ("allreduce_latency_s", "allreduce_hop_latency_s", "allreduce_busbw"):
        assert key in res.not_fitted
        assert eff[key] == start.efficiency[key]
    assert res.rms_log_residual < 0.06


def test_fit_recovers_allreduce_terms_with_multi_gpu_points():
    data, truth = _data(8, noise=0.02, seed=1)
    res = fit_profile(load_profile("a100-80gb-sxm"), data)
    eff = res.profile.efficiency
    assert eff["allreduce_busbw"] == pytest.approx(TRUE["allreduce_busbw"], rel=0.1)
    # one GPU count: base and per-hop latency are not separable; their sum at G=8 is what is fitted
    combined = eff["allreduce_latency_s"] + 14 * eff["allreduce_hop_latency_s"]
    assert combined == pytest.approx(TRUE["allreduce_latency_s"] + 14 * TRUE["allreduce_hop_latency_s"],
                                     rel=0.15)
    assert "allreduce_hop_latency_s" in res.not_fitted
    assert "allreduce_busbw" in res.fitted


def test_fitted_profile_round_trips_through_toml(tmp_path):
    from magicdec_model.perfmodel.hardware import profile_to_toml

    data, _ = _data(1, noise=0.03, seed=2)
    res = fit_profile(load_profile("a100-80gb-sxm"), data)
    prof = fitted_profile(res, data, name="fitted-test", description="test", device="A100 (synthetic)",
                          date="2026-11-25")
    path = tmp_path / "profile.toml"
    path.write_text(profile_to_toml(prof))
    import tomllib

    back = profile_from_dict(tomllib.loads(path.read_text()), str(path))
    assert back.meta["fitted"] is True
    assert back.meta["device"] == "A100 (synthetic)"
    assert "allreduce_busbw" in back.meta["not_fitted"]
    assert back.efficiency == pytest.approx(prof.efficiency)
    assert "fitted by magicdec-model validate" in back.sources["gemm_bw"]
    assert back.sources["allreduce_busbw"].startswith("not fitted")
