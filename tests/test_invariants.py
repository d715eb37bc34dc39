"""Physical invariants of the cost and SD models, checked with hypothesis."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel import get_model, load_profile
from magicdec_model.perfmodel.acceptance import builtin_table, lookup
from magicdec_model.perfmodel.ops import step_ops
from magicdec_model.perfmodel.parallel import shard
from magicdec_model.perfmodel.speculative import expected_tokens
from magicdec_model.perfmodel.step import step_time
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit

MODELS = ["llama-2-7b", "llama-3.1-8b", "qwen2.5-7b", "tinyllama-1.1b", "llama-3.1-70b", "mistral-7b"]
HARDWARE = ["a100-80gb-sxm", "h100-sxm", "l40s", "mi300x"]

models = st.sampled_from(MODELS)
hardware = st.sampled_from(HARDWARE)
gpus = st.sampled_from([1, 2, 4, 8])
batches = st.integers(1, 512)
seqs = st.integers(1, 200_000)
ideal = st.booleans()


def _splits(arch, g):
    return arch.num_heads % g == 0 and (
        arch.num_kv_heads % g == 0 if g <= arch.num_kv_heads else g % arch.num_kv_heads == 0
    )


def _t(name, hw, g, b, q, n, use_ideal=False):
    arch = get_model(name)
    assume(_splits(arch, g))
    prof = load_profile(hw)
    if use_ideal:
        prof = prof.ideal()
    return float(step_time(arch, shard(arch, g), prof, b, q, n).time)


@settings(max_examples=80, deadline=None)
@given(models, hardware, gpus, batches, seqs, st.integers(1, 17), ideal)
def test_step_times_positive(name, hw, g, b, n, q, use_ideal):
    assert _t(name, hw, g, b, q, n, use_ideal) > 0


@settings(max_examples=80, deadline=None)
@given(models, hardware, gpus, batches, batches, seqs, ideal)
def test_step_time_non_decreasing_in_batch(name, hw, g, b1, b2, n, use_ideal):
    lo, hi = sorted((b1, b2))
    assert _t(name, hw, g, lo, 1, n, use_ideal) <= _t(name, hw, g, hi, 1, n, use_ideal)


@settings(max_examples=80, deadline=None)
@given(models, hardware, gpus, batches, seqs, seqs, ideal)
def test_more_kv_never_faster(name, hw, g, b, n1, n2, use_ideal):
    lo, hi = sorted((n1, n2))
    assert _t(name, hw, g, b, 1, lo, use_ideal) <= _t(name, hw, g, b, 1, hi, use_ideal)


@settings(max_examples=60, deadline=None)
@given(models, hardware, gpus, batches, seqs, st.integers(1, 8192))
def test_budget_draft_never_slower_than_full_kv_draft(name, hw, g, b, s, budget):
    budget_kv = min(budget, s)
    assert _t(name, hw, g, b, 1, budget_kv) <= _t(name, hw, g, b, 1, s)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["llama-2-7b", "llama-3.1-8b", "llama-3.1-70b", "llama-2-70b"]),
       batches, seqs, st.integers(1, 6))
def test_more_gpus_never_raise_per_gpu_bytes(name, b, n, q):
    arch = get_model(name)

    def per_gpu_bytes(g):
        return sum(float(np.sum(o.bytes)) * o.count for o in step_ops(arch, shard(arch, g), b, q, n))

    counts = [g for g in (1, 2, 4, 8, 16) if arch.num_heads % g == 0]
    values = [per_gpu_bytes(g) for g in counts]
    assert all(a >= b_ for a, b_ in zip(values, values[1:], strict=False))


@given(st.floats(0, 0.999999), st.integers(1, 16))
def test_expected_tokens_between_one_and_gamma_plus_one(a, g):
    omega = float(expected_tokens(a, g))
    assert 1.0 - 1e-12 <= omega <= g + 1 + 1e-9


def test_expected_tokens_hand_values():
    # Omega(3, 0.8) = (1 - 0.8^4) / 0.2 = 0.5904 / 0.2 = 2.952 (MagicDec Eq. 1 definition)
    assert np.isclose(float(expected_tokens(0.8, 3)), 2.952, rtol=1e-12)
    # a = 0: only the bonus token
    assert float(expected_tokens(0.0, 5)) == 1.0


@settings(max_examples=40, deadline=None)
@given(models, hardware, gpus, st.lists(batches, min_size=1, max_size=3),
       st.lists(st.integers(1024, 131072), min_size=1, max_size=3),
       st.floats(0, 0.99), st.sampled_from(["auto", [1], [4], [16]]), ideal)
def test_speedup_bounded_by_gamma_plus_one(name, hw, g, bs, ss, a, gamma, use_ideal):
    assume(_splits(get_model(name), g))
    df = predict(Query(model=name, hardware=hw, gpus=[g], batch=bs, seq_len=ss, kv_budget=[512],
                       gamma=gamma, acceptance=a, ideal=use_ideal))
    assert (df["speedup"] <= df["gamma"] + 1 + 1e-9).all()
    assert ((df["expected_tokens"] >= 1) & (df["expected_tokens"] <= df["gamma"] + 1)).all()
    assert (df["t_verify_s"] >= df["t_target_s"]).all()
    assert ((df["kv_fraction"] >= 0) & (df["kv_fraction"] <= 1)).all()


@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=20), st.integers(1, 100_000))
def test_acceptance_lookup_in_unit_interval(seq, budget):
    found = lookup(builtin_table(), "llama-3.1-8b", "self", "streamingllm", budget, np.array(seq))
    assert ((found.value >= 0) & (found.value <= 1)).all()
    assert all(isinstance(s, str) and s for s in found.source)
