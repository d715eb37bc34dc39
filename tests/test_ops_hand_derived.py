"""FLOPs and bytes of one layer, derived by hand from the published configs (models.md).

LLaMA-2-7B: h=4096, 32 heads, 32 KV heads, d=128, I=11008, bf16 (2 bytes).
LLaMA-3.1-8B: h=4096, 32 heads, 8 KV heads, d=128, I=14336, bf16.
Every expected number below is written as the arithmetic that gives it.
"""

import numpy as np
import pytest

from magicdec_model.perfmodel import get_model
from magicdec_model.perfmodel.ops import step_ops
from magicdec_model.perfmodel.parallel import shard

pytestmark = pytest.mark.unit


def _ops(name, gpus=1, batch=1, q=1, n=1000):
    arch = get_model(name)
    return {o.name: o for o in step_ops(arch, shard(arch, gpus), batch, q, n)}


def test_llama2_7b_layer_projections():
    ops = _ops("llama-2-7b")
    # QKV: x[1x4096] @ W[4096 x (4096 + 2*4096)] -> 2*1*4096*12288 FLOP
    assert float(ops["qkv_proj"].flops) == 2 * 4096 * 12288 == 100_663_296
    # bytes: weights 4096*12288*2 + activations in (4096) and out (12288) at 2 B
    assert float(ops["qkv_proj"].bytes) == 4096 * 12288 * 2 + (4096 + 12288) * 2
    # O: 4096 x 4096
    assert float(ops["o_proj"].flops) == 2 * 4096 * 4096
    assert float(ops["o_proj"].bytes) == 4096 * 4096 * 2 + (4096 + 4096) * 2
    # gate+up: 4096 x (2*11008); down: 11008 x 4096
    assert float(ops["gate_up_proj"].flops) == 2 * 4096 * 22016
    assert float(ops["gate_up_proj"].bytes) == 4096 * 22016 * 2 + (4096 + 22016) * 2
    assert float(ops["down_proj"].flops) == 2 * 11008 * 4096
    assert float(ops["down_proj"].bytes) == 11008 * 4096 * 2 + (11008 + 4096) * 2
    # weights of one layer = 2 bytes x (4*4096^2 + 3*4096*11008 + 2*4096 norm weights)
    layer_weights = sum(float(o.weight_bytes) for o in ops.values() if o.count == 32)
    assert layer_weights == 2 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) == 404_766_720


def test_llama2_7b_layer_attention_decode():
    ops = _ops("llama-2-7b", n=1000)
    att = ops["attention"]
    # one new token appended, then K and V of 1001 tokens read: 2 * 1001 * (32*128) * 2 B
    assert float(att.kv_read_bytes) == 2 * 1001 * 4096 * 2 == 16_400_384
    # + new K,V written (2*4096*2) + q read and output written (2*4096*2)
    assert float(att.bytes) == 16_400_384 + 2 * 4096 * 2 + 2 * 4096 * 2
    # QK^T and AV: 2 FLOP x 2 matmuls x 32 heads x 128 x 1001 keys
    assert float(att.flops) == 4 * 32 * 128 * 1001


def test_llama31_8b_layer_gqa():
    ops = _ops("llama-3.1-8b", n=1000)
    # QKV output width 32*128 + 2*8*128 = 6144
    assert float(ops["qkv_proj"].flops) == 2 * 4096 * 6144
    assert float(ops["qkv_proj"].bytes) == 4096 * 6144 * 2 + (4096 + 6144) * 2
    # GQA: KV read uses the 8 KV heads: 2 * 1001 * (8*128) * 2 B
    assert float(ops["attention"].kv_read_bytes) == 2 * 1001 * 1024 * 2 == 4_100_096
    # FLOPs use the 32 query heads
    assert float(ops["attention"].flops) == 4 * 32 * 128 * 1001
    assert float(ops["gate_up_proj"].bytes) == 4096 * 28672 * 2 + (4096 + 28672) * 2


def test_llama31_8b_verify_causal_pairs():
    # verify gamma+1 = 4 tokens over n = 1000 cached: query i sees 1000 + i + 1 keys,
    # pairs = 4*1000 + (1+2+3+4) = 4010
    att = _ops("llama-3.1-8b", q=4, n=1000)["attention"]
    assert float(att.flops) == 4 * 32 * 128 * 4010
    # cache read once for all 4 queries: 2 * (1000 + 4) * 1024 * 2
    assert float(att.kv_read_bytes) == 2 * 1004 * 1024 * 2


def test_llama31_8b_tensor_parallel_8():
    ops = _ops("llama-3.1-8b", gpus=8, batch=32, n=8000)
    # per GPU: 4 query heads and 1 KV head -> QKV width 512 + 2*128 = 768
    assert float(ops["qkv_proj"].flops) == 2 * 32 * 4096 * 768
    # KV per GPU: 32 sequences x 8001 tokens x 2 x 128 x 2 B
    assert float(ops["attention"].kv_read_bytes) == 32 * 8001 * 2 * 128 * 2
    # all-reduce message: 32 tokens x 4096 x 2 B, twice per layer
    assert float(ops["allreduce_attn"].comm_bytes) == 32 * 4096 * 2
    assert float(ops["allreduce_mlp"].comm_bytes) == 32 * 4096 * 2
    # LM head vocab-parallel: 128256 / 8 = 16032 columns
    assert float(ops["lm_head"].flops) == 2 * 32 * 4096 * 16032


def test_no_allreduce_on_one_gpu():
    ops = _ops("llama-3.1-8b", gpus=1)
    assert float(np.sum(ops["allreduce_attn"].comm_bytes)) == 0.0


# Parameter counts by hand from the published configs (models.md), each with the published size
# it rounds to (models.md "params" column, from the model cards). Per layer: Q and O h x (heads d),
# K and V h x (KV heads d), MLP 3 x h x I, two norm vectors; plus embedding, final norm, LM head.
PARAM_COUNTS = [
    # h 4096, 32 layers, MHA, I 11008, vocab 32000 -> 6,738,415,616
    ("llama-2-7b", 32000 * 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
     + 32000 * 4096, 6.74),
    # 8 KV heads (1024 wide), I 14336, vocab 128256 -> 8,030,261,248
    ("llama-3.1-8b", 128256 * 4096 + 32 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336
                                           + 2 * 4096) + 4096 + 128256 * 4096, 8.03),
    # h 3584, 28 layers, 4 KV heads (512 wide), QKV bias 3584 + 2 x 512, I 18944, vocab 152064
    # -> 7,615,616,512
    ("qwen2.5-7b", 152064 * 3584 + 28 * (2 * 3584**2 + 2 * 3584 * 512 + (3584 + 2 * 512)
                                         + 3 * 3584 * 18944 + 2 * 3584) + 3584 + 152064 * 3584, 7.62),
    # h 2048, 16 layers, 32 heads of d 64, 8 KV heads (512 wide), I 8192, LM head tied to the
    # embedding (counted once) -> 1,235,814,400
    ("llama-3.2-1b", 128256 * 2048 + 16 * (2048 * (2048 + 2 * 512) + 2048 * 2048 + 3 * 2048 * 8192
                                           + 2 * 2048) + 2048, 1.24),
]


@pytest.mark.parametrize(("name", "params", "published_billions"), PARAM_COUNTS)
def test_weight_bytes_match_param_count(name, params, published_billions):
    assert round(params / 1e9, 2) == published_billions  # the hand count is the published size
    arch = get_model(name)
    ops = step_ops(arch, shard(arch, 1), 1, 1, 0)
    weights = sum(float(o.weight_bytes) * o.count for o in ops)
    # bf16: every parameter is read once per step, except the embedding table (its rows are
    # gathered), which a tied LM head reads in full
    table = arch.vocab_size * arch.hidden_size
    assert weights == pytest.approx(2 * (params if arch.tie_embeddings else params - table), rel=1e-12)
