"""The fit recovers known efficiency parameters from timings that the model itself generated."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.hardware import load_profile, profile_from_dict
from magicdec_model.validate.fit import FitData, fit_profile, fitted_profile, model_times
from magicdec_model.validate.microbench import costs_table, plan_points

pytestmark = pytest.mark.unit

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


def test_fit_tells_matrix_vector_from_matrix_matrix_projections():
    # a CPU-like device: BLAS streams weights near full bandwidth for one activation row (GEMV)
    # but repacks them for a few rows (GEMM), 2-3x slower per byte (docs/validation.md)
    true = {**TRUE, "gemm_bw": 0.35, "gemv_bw": 0.90}
    arch = get_model("llama-3.1-8b")
    truth = replace(load_profile("a100-80gb-sxm"), efficiency=true)
    points = plan_points(arch, 1, [1, 2, 4, 16], [1024, 8192], [256], [3])
    table = costs_table(arch, 1, points)
    costs = [table[p.key] for p in points]
    clean = FitData.from_costs(costs, [1] * len(costs), np.ones(len(costs)), arch.dtype_bytes)
    assert set(clean.tokens[clean.op_class == "gemm"]) == {1, 2, 4, 8, 16, 64}  # B x q, q in {1, 4}
    t = model_times(truth, clean)
    data = FitData.from_costs(costs, [1] * len(costs), t * np.exp(np.random.default_rng(5).normal(
        0.0, 0.02, t.shape)), arch.dtype_bytes)
    res = fit_profile(load_profile("a100-80gb-sxm"), data)  # the A100 profile has no gemv_bw
    assert "gemv_bw" in res.fitted
    assert res.profile.efficiency["gemv_bw"] == pytest.approx(0.90, rel=0.08)
    assert res.profile.efficiency["gemm_bw"] == pytest.approx(0.35, rel=0.08)


def test_gemv_bandwidth_applies_to_one_token_projections_only():
    from magicdec_model.perfmodel.ops import step_ops
    from magicdec_model.perfmodel.parallel import shard
    from magicdec_model.perfmodel.roofline import op_time

    arch = get_model("llama-3.1-8b")
    base = load_profile("a100-80gb-sxm")
    prof = replace(base, efficiency={**base.efficiency, "gemv_bw": 0.9})
    one = next(op for op in step_ops(arch, shard(arch, 1), 1, 1, 0) if op.name == "qkv_proj")
    # hand: weights 4096 x (4096 + 2 x 1024) x 2 B = 50,331,648 B; activations (4096 + 6144) x 2 B
    nbytes = 4096 * 6144 * 2 + (4096 + 6144) * 2
    t = float(op_time(one, prof, 1).time) / 32  # 32 layers
    assert t == pytest.approx(nbytes / (2.039e12 * 0.9) + base.efficiency["kernel_fixed_s"], rel=1e-9)
    two = next(op for op in step_ops(arch, shard(arch, 1), 2, 1, 0) if op.name == "qkv_proj")
    t2 = float(op_time(two, prof, 1).time) / 32
    nbytes2 = 4096 * 6144 * 2 + 2 * (4096 + 6144) * 2
    assert t2 == pytest.approx(nbytes2 / (2.039e12 * base.efficiency["gemm_bw"])
                               + base.efficiency["kernel_fixed_s"], rel=1e-9)


def test_the_fit_weighs_each_op_by_its_time_so_the_large_op_is_fitted_best():
    """One GEMM bandwidth cannot fit a 10 ms op streaming at 100% of the A100's bandwidth and two
    small ones at 50% (0.1 and 0.2 ms; proportional, so a fixed cost per kernel cannot absorb
    them).  A step's time is a sum, so the long op must come out right.  Hand calculation with
    residuals weighted by sqrt(t / mean t), squared weights 2.91, 0.029, 0.058 (sum 3.0): the
    optimum of log(efficiency) is (0.029 + 0.058) * log 0.5 / 3.0 = -0.020, efficiency 0.98; equal
    weights would give log-mean (0 + 2 log 0.5) / 3, efficiency 0.63, and over-predict it by 59%."""
    hw = load_profile("a100-80gb-sxm")
    bw = hw.mem_bw
    nbytes = np.asarray([10e-3, 0.05e-3, 0.1e-3]) * bw  # seconds at 100% bandwidth: 10, 0.05, 0.1 ms
    measured = np.asarray([10e-3, 0.1e-3, 0.2e-3])
    data = FitData(op_class=np.asarray(["gemm"] * 3, dtype=object), flops=nbytes / 100.0, bytes=nbytes,
                   comm_bytes=np.zeros(3), gpus=np.ones(3, dtype=int), measured=measured,
                   dtype_bytes=2, tokens=np.full(3, 2.0))
    res = fit_profile(hw, data)
    pred = model_times(res.profile, data)
    assert pred[0] == pytest.approx(10e-3, rel=0.05)
