"""Today's targets in the cost model: MoE, MLA, sliding windows, number formats (hand-derived
op costs, invariants, and the physical checks of the issue that asked for them)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.number_formats import formats_for
from magicdec_model.perfmodel.ops import experts_touched, step_ops, weight_bytes_per_gpu
from magicdec_model.perfmodel.parallel import shard
from magicdec_model.perfmodel.step import step_time
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit


def _ops(name, batch, q, n, gpus=1, **kw):
    arch = get_model(name)
    return {op.name: op for op in step_ops(arch, shard(arch, gpus, kw.pop("ep", False)), batch, q, n, **kw)}


def test_one_mixtral_moe_layer_by_hand():
    # Mixtral-8x7B (HF config): h 4096, 8 experts of width 14336, top-2, bf16, 32 layers
    ops = _ops("mixtral-8x7b", 1, 1, 0)
    up = ops["expert_gate_up"]
    # one token routed to 2 of 8 experts touches 8 (1 - (1 - 2/8)^1) = 2 experts
    assert float(experts_touched(1, 8, 2)) == pytest.approx(2.0)
    # gate+up of 2 experts: 2 x 4096 x (2 x 14336) weights x 2 B = 469,762,048 B
    assert float(up.weight_bytes) == pytest.approx(469_762_048)
    # FLOPs: 1 token x 2 experts x 2 x 4096 x 28672 = 469,762,048
    assert float(up.flops) == pytest.approx(469_762_048)
    assert up.count == 32
    # 64 tokens (a verify of 16 x 4): 8 (1 - 0.75^64) = 7.99999... experts: nearly all 8
    big = _ops("mixtral-8x7b", 16, 4, 0)["expert_down"]
    assert float(big.weight_bytes) == pytest.approx(8 * (1 - 0.75 ** 64) * 14336 * 4096 * 2)
    # TP=8: each expert split 8 ways (vLLM's default), expert-parallel: one whole expert per GPU
    tp = _ops("mixtral-8x7b", 1, 1, 0, gpus=8)["expert_gate_up"]
    assert float(tp.weight_bytes) == pytest.approx(469_762_048 / 8)
    ep = _ops("mixtral-8x7b", 1, 1, 0, gpus=8, ep=True)["expert_gate_up"]
    # 1 of 8 experts per GPU, expected touched 2/8 of them: 0.25 x 4096 x 28672 x 2 B
    assert float(ep.weight_bytes) == pytest.approx(0.25 * 4096 * 28672 * 2)


def test_one_deepseek_v3_mla_layer_by_hand():
    # DeepSeek-V3 (HF config): 128 heads, kv_lora_rank 512, rope 64, nope 128, v 128, q_lora 1536,
    # h 7168; decode, batch 1, 1000 cached tokens, KV in bf16, TP=1
    ops = _ops("deepseek-v3", 1, 1, 1000, fmt=formats_for("bf16", "bf16", 2))
    att = ops["attention"]
    # KV read: (1000 + 1) tokens x one latent of 512 + 64 elements x 2 B = 1,153,152 B
    assert float(att.kv_read_bytes) == pytest.approx(1001 * 576 * 2)
    # FLOPs: 128 heads x 1001 keys x 2 x (576 scores + 512 values) = 278,794,752
    assert float(att.flops) == pytest.approx(2 * 128 * 1001 * (576 + 512))
    # W_UK folded into the queries: 128 heads x 128 nope x 512 weights
    assert float(ops["mla_absorb_q"].weight_bytes) == pytest.approx(128 * 128 * 512 * 2)
    assert float(ops["kv_a_proj"].weight_bytes) == pytest.approx(7168 * 576 * 2)
    # q_a (7168 x 1536) + q_b (1536 x 128 x 192)
    assert float(ops["q_proj"].weight_bytes) == pytest.approx((7168 * 1536 + 1536 * 128 * 192) * 2)
    # TP=8: the latent is replicated (every GPU reads the whole cache); heads split
    att8 = _ops("deepseek-v3", 1, 1, 1000, gpus=8, fmt=formats_for("bf16", "bf16", 2))["attention"]
    assert float(att8.kv_read_bytes) == float(att.kv_read_bytes)
    assert float(att8.flops) == pytest.approx(float(att.flops) / 8)


def test_sliding_window_layers_read_at_most_their_window():
    # Mistral-7B v0.1: every layer windowed at 4096 (Mistral 7B paper, Table 1)
    ops = _ops("mistral-7b", 2, 1, 32000)
    att = ops["attention_window"]
    assert "attention" not in ops
    # each sequence reads min(32000 + 1, 4096 + 1 - 1) = 4096 cached tokens of 8 KV heads x 128 x 2 x 2 B
    assert float(att.kv_read_bytes) == pytest.approx(2 * 4096 * 2 * 8 * 128 * 2)
    # gpt-oss-20b alternates 128-token windows and full layers: 12 of each of its 24 layers
    gpt = _ops("gpt-oss-20b", 1, 1, 10000)
    assert gpt["attention"].count == 12 and gpt["attention_window"].count == 12


def test_mixtral_is_costed_with_its_46_7b_parameters_not_7b():
    arch = get_model("mixtral-8x7b")
    # model card: 46.7B parameters; bf16: 2 bytes each
    assert weight_bytes_per_gpu(arch, shard(arch, 1)) == pytest.approx(46.7e9 * 2, rel=0.01)


def test_physical_checks():
    def row(**kw):
        base = dict(hardware="h100-sxm", gpus=[1], acceptance=0.8, intervals=False, engine="cuda-graph")
        base.update(kw)
        return predict(Query(**base)).iloc[0]

    # MoE verify at small batch touches many more experts than a decode: T_V/T_T well above dense
    moe = row(model="qwen3-30b-a3b", batch=[1], seq_len=[4000], gamma=[4])
    dense = row(model="llama-3.1-8b", batch=[1], seq_len=[4000], gamma=[4])
    assert moe["t_verify_s"] / moe["t_target_s"] > 1.5 * dense["t_verify_s"] / dense["t_target_s"]
    # Mistral-7B's 4096 window: the target step at 32K within 10% of 8K
    a, b = (row(model="mistral-7b", batch=[32], seq_len=[s]) for s in (8000, 32000))
    assert b["t_target_s"] == pytest.approx(a["t_target_s"], rel=0.10)
    # fp8 KV at batch 64, 32K: the step is dominated by KV reads, so 0.5-0.7 of bf16
    bf, f8 = (row(model="llama-3.1-8b", batch=[64], seq_len=[32000], kv_dtype=k) for k in ("bf16", "fp8"))
    assert 0.5 <= f8["t_target_s"] / bf["t_target_s"] <= 0.7
    # an EAGLE head's draft step is far cheaper than a self-speculation step (all weights)
    e = row(model="llama-3.1-8b", batch=[32], seq_len=[8000], draft="eagle", gamma=[3])
    s = row(model="llama-3.1-8b", batch=[32], seq_len=[8000], draft="self", gamma=[3])
    assert e["t_draft_s"] < 0.5 * s["t_draft_s"]
    # past max_position_embeddings: a note, never silence (Llama-2-7B: 4096)
    far = row(model="llama-2-7b", batch=[1], seq_len=[8000], kv_budget=[512])
    assert "max_position_embeddings 4,096" in far["notes"]


def test_fp8_weights_halve_the_weight_bytes_and_use_fp8_tensor_cores():
    arch = get_model("llama-3.1-8b")
    sh = shard(arch, 1)
    bf = weight_bytes_per_gpu(arch, sh, formats_for("bf16", "bf16", 2))
    f8 = weight_bytes_per_gpu(arch, sh, formats_for("bf16", "bf16", 2, "fp8"))
    # embedding and LM head stay in 16 bits (2 x 128256 x 4096 x 2 B = 2.10 GB of the 16.06 GB),
    # and so do the norm weights: (2 x 32 + 1) x 4096 x 2 B
    kept = 2 * 128256 * 4096 * 2 + 65 * 4096 * 2
    assert f8 == pytest.approx((bf - kept) / 2 + kept, rel=1e-9)
    op = next(o for o in step_ops(arch, sh, 256, 8, 0, formats_for("bf16", "bf16", 2, "fp8"))
              if o.name == "gate_up_proj")
    assert op.compute_bytes == 1  # W8A8: the profile's fp8 peak


@settings(max_examples=40, deadline=None)
@given(t1=st.integers(1, 4096), t2=st.integers(1, 4096))
def test_moe_weight_bytes_never_fall_with_tokens_and_never_exceed_all_experts(t1, t2):
    arch = get_model("qwen3-30b-a3b")
    sh = shard(arch, 1)
    lo, hi = sorted((t1, t2))
    w = {t: float(next(o for o in step_ops(arch, sh, t, 1, 0) if o.name == "expert_down").weight_bytes)
         for t in (lo, hi)}
    full = float(next(o for o in step_ops(arch, sh, 1, 1, 0, all_experts=True)
                      if o.name == "expert_down").weight_bytes)
    assert w[lo] <= w[hi] <= full * (1 + 1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(4096, 200_000), batch=st.integers(1, 64))
def test_a_windowed_step_is_flat_in_seq_len_past_the_window(n, batch):
    arch = get_model("mistral-7b")
    sh = shard(arch, 1)
    hw = load_profile("a100-80gb-sxm")
    assert step_time(arch, sh, hw, batch, 1, n).time == pytest.approx(
        float(step_time(arch, sh, hw, batch, 1, 4096).time), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "qwen3-30b-a3b", "gpt-oss-20b", "mistral-7b"]),
       batch=st.integers(1, 256), n=st.integers(0, 100_000), q=st.integers(1, 8))
def test_fp8_kv_is_never_slower_than_bf16_kv(model, batch, n, q):
    arch = get_model(model)
    sh = shard(arch, 1)
    hw = load_profile("h100-sxm")
    w, e = arch.weight_format(), arch.weight_format(True)
    bf = step_time(arch, sh, hw, batch, q, n, fmt=formats_for(w, e, 2, kv_dtype="bf16"))
    f8 = step_time(arch, sh, hw, batch, q, n, fmt=formats_for(w, e, 2, kv_dtype="fp8"))
    assert f8.time <= bf.time
