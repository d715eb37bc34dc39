"""The ragged step (sequences with their own new and cached tokens): predict's uniform grid is its
special case, prefill chunks are causal, and the simulator's StepTable is the same model."""

from __future__ import annotations

import numpy as np
import pytest

from magicdec_model.perfmodel import get_model
from magicdec_model.perfmodel.engine import load_engine
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.ops import ragged_step_ops, step_ops
from magicdec_model.perfmodel.parallel import shard
from magicdec_model.perfmodel.step import StepTable, ragged_step_time, step_time
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit

MODELS = ("llama-3.1-8b", "gemma-3-27b", "deepseek-v3", "qwen3-30b-a3b")


@pytest.mark.parametrize("name", MODELS)
def test_one_group_of_equal_sequences_is_step_ops_exactly(name):
    arch = get_model(name)
    sh = shard(arch, 8)
    for B, q, n in ((1, 1, 100), (32, 4, 8000), (7, 1, 40_000)):
        uni = step_ops(arch, sh, B, q, n)
        rag = ragged_step_ops(arch, sh, np.asarray([q]), np.asarray([n]), count=np.asarray([B]))
        assert [o.name for o in uni] == [o.name for o in rag]
        for a, b in zip(uni, rag, strict=True):
            assert np.array_equal(a.flops, b.flops) and np.array_equal(a.bytes, b.bytes), a.name
            assert np.array_equal(a.comm_bytes, b.comm_bytes) and a.count == b.count


@pytest.mark.parametrize("name", MODELS)
def test_b_separate_sequences_equal_the_uniform_step(name):
    arch = get_model(name)
    sh = shard(arch, 2)
    hw = load_profile("h100-sxm")
    eng = load_engine("vllm-h100")
    B, q, n = 16, 4, 3000
    uni = step_time(arch, sh, hw, B, q, n, eng)
    rag = ragged_step_time(arch, sh, hw, np.full(B, q), np.full(B, n), eng)
    assert float(rag.time) == pytest.approx(float(uni.time), rel=1e-12)
    assert rag.kernels == uni.kernels


def test_predict_step_times_are_the_ragged_steps():
    """predict's target, draft and verify times at (B, S, K, gamma) are ragged steps of B equal
    sequences: decode (1 over S), draft (1 over the budget K), verify (gamma + 1 over S)."""
    row = predict(Query(model="llama-3.1-8b", batch=[24], seq_len=[16000], kv_budget=[512], gamma=[3],
                        acceptance=0.8, hardware="h100-sxm", engine="vllm-h100", intervals=False)).iloc[0]
    arch = get_model("llama-3.1-8b")
    sh, eng = shard(arch, 1), load_engine("vllm-h100")
    hw = eng.apply_to(load_profile("h100-sxm"))[0]  # the engine's efficiencies, as predict's
    ones = np.ones(24)
    t = ragged_step_time(arch, sh, hw, ones, 16000 * ones, eng)
    d = ragged_step_time(arch, sh, hw, ones, 512 * ones, eng, draft=True)
    v = ragged_step_time(arch, sh, hw, 4 * ones, 16000 * ones, eng)
    assert float(t.time) == pytest.approx(row["t_target_s"], rel=1e-12)
    assert float(d.time) == pytest.approx(row["t_draft_s"], rel=1e-12)
    assert float(v.time) == pytest.approx(row["t_verify_s"], rel=1e-12)


def test_ragged_attention_sums_causal_pairs_by_hand():
    """LLaMA-3.1-8B: 32 query heads of d = 128.  A verify of q = 3 over n = 10 cached tokens has
    3*10 + (1+2+3) = 36 query-key pairs per head, a prefill chunk of 4 over 0 cached has
    1+2+3+4 = 10, a decode over 5 has 5 + 1 = 6: attention FLOPs 4 * 32 * 128 * (36 + 10 + 6)."""
    arch = get_model("llama-3.1-8b")
    ops = {o.name: o for o in ragged_step_ops(arch, shard(arch, 1), np.asarray([3, 4, 1]),
                                              np.asarray([10, 0, 5]))}
    assert float(ops["attention"].flops) == 4 * 32 * 128 * (36 + 10 + 6)
    # KV read: (10 + 3) + (0 + 4) + (5 + 1) = 23 tokens of K and V, 8 heads x 128 x 2 bytes each
    assert float(ops["attention"].kv_read_bytes) == 23 * 2 * 8 * 128 * 2
    # projections see 3 + 4 + 1 = 8 tokens: q/k/v = 4096 x (4096 + 2 * 1024)
    assert float(ops["qkv_proj"].flops) == 2 * 8 * 4096 * (4096 + 2 * 1024)


def test_prefill_chunks_cost_the_same_flops_as_the_whole_prompt():
    """Chunked prefill: two chunks of 512 (the second over the first's 512 cached) do the
    attention work of one 1024-token prefill: 1024 * 1025 / 2 pairs in both cases."""
    arch = get_model("llama-3.1-8b")
    sh = shard(arch, 1)

    def attn(q, n):
        return sum(float(o.flops) for o in ragged_step_ops(arch, sh, np.asarray(q), np.asarray(n))
                   if o.op_class == "attention")
    assert attn([512], [0]) + attn([512], [512]) == attn([1024], [0]) == 4 * 32 * 128 * 1024 * 1025 / 2


@pytest.mark.parametrize("name", ("llama-3.1-8b", "gemma-3-27b", "deepseek-v3"))
def test_step_table_is_the_ragged_step(name):
    arch = get_model(name)
    sh = shard(arch, 8)
    hw = load_profile("a100-80gb-sxm")
    eng = load_engine("vllm-h100")
    table = StepTable(arch, sh, hw, eng, max_tokens=64)  # grows on demand
    rng = np.random.default_rng(0)
    for _ in range(5):
        n_seq = int(rng.integers(1, 40))
        q = rng.integers(1, 6, n_seq).astype(float)
        q[0] = 700.0  # one prefill chunk
        kv = rng.integers(0, 50_000, n_seq).astype(float)
        ref = ragged_step_time(arch, sh, hw, q, kv, eng)
        got = table.time(n_seq, q.sum(), q, kv)
        assert float(got) == pytest.approx(float(ref.time), rel=1e-12)
