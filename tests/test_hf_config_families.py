"""config.json reader, family by family: fields read and parameter counts derived by hand.

The configs are written out in ``hf_configs.py`` (sources there).  Every expected count below is
worked out by hand in the comment above it from the config values, and compared with the figure the
model's publisher gives (source named); "emb" = vocab x hidden.
"""

from __future__ import annotations

import numpy as np
import pytest
from hf_configs import (
    DEEPSEEK_V2_LITE,
    DEEPSEEK_V3,
    GEMMA2_9B,
    GEMMA3_27B,
    GPT_OSS_20B,
    GPT_OSS_120B,
    KIMI_K2,
    LLAMA_31_405B,
    LLAMA_33_70B,
    MISTRAL_7B_V01,
    MIXTRAL_8X7B,
    QWEN3_8B,
    QWEN3_30B_A3B,
    QWEN3_32B,
    QWEN3_235B_A22B,
    QWEN15_MOE_A27B,
)

from magicdec_model.perfmodel.architecture import from_hf_config, get_model, tokenizer_family

pytestmark = pytest.mark.unit


def read(cfg, **over):
    return from_hf_config({**cfg, **over}, name="t")


def non_embedding(m):
    """Parameters without the embedding table and an untied head (the model cards' convention)."""
    p = m.param_breakdown()
    return m.param_count() - p["embedding"] - p["lm_head"]


# ----------------------------------------------------------------------------------------- dense
def test_qwen3_8b_and_32b():
    m = read(QWEN3_8B)
    assert (m.family, m.head_dim, m.num_kv_heads, m.max_positions) == ("qwen3", 128, 8, 40960)
    assert m.qk_norm and not m.qkv_bias and not m.o_bias and not m.tie_embeddings
    assert m.sliding_window is None and not m.is_moe and not m.is_mla
    # Per layer: q 4096*4096 = 16,777,216; k,v 2*4096*1024 = 8,388,608; o 16,777,216;
    # q/k norms 2*128 = 256 -> attention 41,943,296; MLP 3*4096*12288 = 150,994,944; norms 8,192
    # -> 192,946,432 x 36 = 6,946,071,552; emb 151936*4096 = 622,329,856, untied x2 = 1,244,659,712;
    # final norm 4,096 -> 8,190,735,360.  Model card huggingface.co/Qwen/Qwen3-8B: "Number of
    # Parameters: 8.2B", "(Non-Embedding): 6.95B".
    assert m.param_count() == 8_190_735_360
    assert non_embedding(m) == 6_946_075_648 and round(non_embedding(m) / 1e9, 2) == 6.95
    # Qwen3-32B: attention 5120*(8192+2048) + 8192*5120 + 256 = 94,372,096; MLP 3*5120*25600 =
    # 393,216,000; norms 10,240 -> 487,598,336 x 64 = 31,206,293,504; emb 777,912,320 x 2; + 5,120
    # -> 32,762,123,264.  Card Qwen/Qwen3-32B: "32.8B", non-embedding "31.2B".
    m32 = read(QWEN3_32B)
    assert m32.param_count() == 32_762_123_264 and round(non_embedding(m32) / 1e9, 1) == 31.2


def test_llama_33_70b_and_31_405b():
    m = read(LLAMA_33_70B)
    # Same shape as Llama-3.1-70B (models.md: 70.55 B): the registry entry gives the same count.
    assert m.param_count() == get_model("llama-3.1-70b").param_count() == 70_553_706_496
    assert m.rope_scaling["rope_type"] == "llama3" and m.max_positions == 131072
    # 405B: attention 16384*(16384+2048) + 16384*16384 = 570,425,344; MLP 3*16384*53248 =
    # 2,617,245,696; norms 32,768 -> 3,187,703,808 x 126 = 401,650,679,808; emb 128256*16384 =
    # 2,101,346,304 x 2; + 16,384 -> 405,853,388,800 (Meta's "405B").
    big = read(LLAMA_31_405B)
    assert big.param_count() == 405_853_388_800 and tokenizer_family(big) == "llama3"


def test_mistral_7b_v01_window_on_every_layer():
    m = read(MISTRAL_7B_V01)
    assert m.family == "mistral" and m.sliding_window == 4096 and m.global_layers == ()
    assert m.layer_windows() == (4096,) * 32
    # attention 41,943,040 + MLP 176,160,768 + norms 8,192 = 218,112,000 x 32 + 2 x 131,072,000
    # + 4,096 = 7,241,732,096 (models.md: 7.24 B)
    assert m.param_count() == 7_241_732_096
    # every layer keeps the last 4096 tokens: 32K and 8K contexts cache the same bytes,
    # 32 layers x 4096 tokens x (2 x 8 heads x 128 x 2 B) = 536,870,912 B
    assert m.kv_cache_bytes(32768) == m.kv_cache_bytes(8192) == 536_870_912
    assert m.kv_cache_bytes(1000) == 32 * 1000 * 4096
    assert tokenizer_family(m) == "mistral-vocab32000" != tokenizer_family(get_model("llama-2-7b"))


# ------------------------------------------------------------------------------------------- MoE
def test_mixtral_8x7b_is_46_7b_not_7b():
    m = read(MIXTRAL_8X7B)
    assert (m.family, m.num_experts, m.experts_per_token, m.expert_intermediate_size) == \
        ("mixtral", 8, 2, 14336)
    assert m.dense_layers == () and m.num_moe_layers == 32 and m.sliding_window is None
    assert not m.router_bias and m.num_shared_experts == 0
    # Per layer: attention 4096*(4096+2*1024) + 4096*4096 = 41,943,040; one expert 3*4096*14336 =
    # 176,160,768, x 8 = 1,409,286,144; router 4096*8 = 32,768; norms 8,192 -> 1,451,270,144 x 32 =
    # 46,440,644,608; emb 32000*4096 = 131,072,000 x 2; + 4,096 -> 46,702,792,704.
    # Active: 41,943,040 + 2 x 176,160,768 + 32,768 + 8,192 = 394,305,536 x 32 = 12,617,777,152
    # + 262,144,000 + 4,096 = 12,879,925,248.  Mistral AI, "Mixtral of experts" (mistral.ai/news/
    # mixtral-of-experts): "46.7B total parameters but only uses 12.9B parameters per token".
    assert m.param_count() == 46_702_792_704 and round(m.param_count() / 1e9, 1) == 46.7
    assert m.active_param_count() == 12_879_925_248 and round(m.active_param_count() / 1e9, 1) == 12.9
    assert m.param_count() > 6 * get_model("mistral-7b").param_count()


def test_qwen3_moe_30b_a3b_and_235b_a22b():
    m = read(QWEN3_30B_A3B)
    assert (m.family, m.num_experts, m.experts_per_token, m.expert_intermediate_size) == \
        ("qwen3_moe", 128, 8, 768)
    assert m.dense_layers == () and m.qk_norm and m.num_shared_experts == 0
    # Per layer: attention 2048*(4096+2*512) + 4096*2048 + 256 = 18,874,624; expert 3*2048*768 =
    # 4,718,592, x 128 = 603,979,776; router 2048*128 = 262,144; norms 4,096 -> 623,120,640 x 48 =
    # 29,909,790,720; emb 151936*2048 = 311,164,928 x 2; + 2,048 -> 30,532,122,624.
    # Active: 18,874,624 + 8 x 4,718,592 + 262,144 + 4,096 = 56,889,600 x 48 = 2,730,700,800
    # + 622,329,856 + 2,048 = 3,353,032,704.  Card Qwen/Qwen3-30B-A3B: "30.5B in total and 3.3B
    # activated", "Non-Embedding: 29.9B" (3.35 B is "3.3B" to the card; without the embedding
    # it would be 3.04 B).
    assert m.param_count() == 30_532_122_624 and round(non_embedding(m) / 1e9, 1) == 29.9
    assert m.active_param_count() == 3_353_032_704
    # 235B-A22B: attention 4096*(8192+1024) + 8192*4096 + 256 = 71,303,424; expert 3*4096*1536 =
    # 18,874,368, x 128 = 2,415,919,104; router 524,288; norms 8,192 -> 2,487,755,008 x 94 =
    # 233,848,970,752; emb 622,329,856 x 2; + 4,096 -> 235,093,634,560.  Active: 71,303,424 +
    # 8 x 18,874,368 + 524,288 + 8,192 = 222,830,848 x 94 + 1,244,659,712 + 4,096 = 22,190,763,520.
    # Card Qwen/Qwen3-235B-A22B: "235B in total and 22B activated", "Non-Embedding: 234B".
    big = read(QWEN3_235B_A22B)
    assert big.param_count() == 235_093_634_560 and round(non_embedding(big) / 1e9) == 234
    assert big.active_param_count() == 22_190_763_520
    assert tokenizer_family(big) == tokenizer_family(read(QWEN3_8B)) == "qwen3"


def test_qwen3_moe_sparse_step_and_mlp_only_layers():
    # transformers Qwen3MoE: layer i has experts iff i not in mlp_only_layers and
    # (i + 1) % decoder_sparse_step == 0.  Six layers, step 2, mlp_only [1]:
    # i=0 dense (1%2), 1 dense (listed), 2 dense (3%2), 3 MoE, 4 dense, 5 MoE.
    m = read(QWEN3_30B_A3B, num_hidden_layers=6, decoder_sparse_step=2, mlp_only_layers=[1])
    assert m.dense_layers == (0, 1, 2, 4) and m.num_moe_layers == 2
    # dense MLP 3*2048*6144 = 37,748,736 (intermediate_size); MoE block 603,979,776 + 262,144
    layers = 6 * (18_874_624 + 4_096) + 4 * 37_748_736 + 2 * (603_979_776 + 262_144)
    assert m.param_count() == layers + 622_329_856 + 2_048
    assert [m.is_moe_layer(i) for i in range(6)] == [False, False, False, True, False, True]


def test_qwen2_moe_shared_expert_and_qkv_bias():
    m = read(QWEN15_MOE_A27B)
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts,
            m.shared_expert_intermediate_size) == (60, 4, 1, 5632)
    assert m.shared_expert_gate and m.qkv_bias and not m.o_bias and not m.qk_norm
    # Per layer: attention 2048*(2048+2*2048) + 2048*2048 = 16,777,216 + q,k,v bias 6,144;
    # experts 60 x 3*2048*1408 (8,650,752) = 519,045,120; shared 3*2048*5632 = 34,603,008 and its
    # gate 2,048; router 2048*60 = 122,880; norms 4,096 -> 570,560,512 x 24 = 13,693,452,288;
    # emb 151936*2048 x 2 = 622,329,856; + 2,048 -> 14,315,784,192.  Active: 16,783,360 +
    # 4 x 8,650,752 + 34,603,008 + 2,048 + 122,880 + 4,096 = 86,118,400 x 24 + 622,329,856 + 2,048
    # = 2,689,173,504.  Card Qwen/Qwen1.5-MoE-A2.7B: "14.3B parameters in total and 2.7B activated".
    assert m.param_count() == 14_315_784_192 and round(m.param_count() / 1e9, 1) == 14.3
    assert m.active_param_count() == 2_689_173_504 and round(m.active_param_count() / 1e9, 1) == 2.7


def test_gpt_oss_20b_and_120b():
    m = read(GPT_OSS_20B)
    assert (m.family, m.num_experts, m.experts_per_token, m.head_dim, m.q_dim) == \
        ("gpt_oss", 32, 4, 64, 4096)
    assert m.qkv_bias and m.o_bias and m.attn_sinks and m.router_bias and m.mlp_bias
    assert m.weight_format() == "bf16" and m.weight_format(expert=True) == "mxfp4"
    assert m.sliding_window == 128 and m.global_layers == tuple(range(1, 24, 2))
    # Per layer: q 2880*4096 + k,v 2*2880*512 + o 4096*2880 = 26,542,080; biases 4096+2*512+2880
    # = 8,000; sinks 64 -> 26,550,144.  Expert: gate_up 2880*5760 + 5760 bias, down 2880*2880 +
    # 2880 bias = 24,891,840; x 32 = 796,538,880; router 2880*32 + 32 = 92,192; norms 5,760 ->
    # 823,186,976 x 24 = 19,756,487,424; emb 201088*2880 = 579,133,440 x 2; + 2,880 ->
    # 20,914,757,184.  Active without the input embedding (the card counts the unembedding
    # only): 26,550,144 + 4 x 24,891,840 + 92,192 + 5,760 = 126,215,456 x 24 = 3,029,170,944 +
    # 579,133,440 + 2,880 = 3,608,307,264.  gpt-oss model card (arXiv 2508.10925) Table 1:
    # 20.91B total, 3.61B active.
    assert m.param_count() == 20_914_757_184 and round(m.param_count() / 1e9, 2) == 20.91
    assert m.active_param_count(embedding=False) == 3_608_307_264
    assert round(m.active_param_count(embedding=False) / 1e9, 2) == 3.61
    # 120b: 26,550,144 + 128 x 24,891,840 + (2880*128 + 128) + 5,760 = 3,213,080,192 x 36 +
    # 1,158,266,880 + 2,880 = 116,829,156,672; active 126,492,032 x 36 + 579,133,440 + 2,880 =
    # 5,132,849,472.  Card Table 1: 116.83B total, 5.13B active.
    big = read(GPT_OSS_120B)
    assert big.param_count() == 116_829_156_672 and big.active_param_count(False) == 5_132_849_472
    # alternating 128-token window: a windowed layer holds 128 tokens at any longer context
    kv = big.layer_kv_tokens(np.array([100, 4096]))
    assert kv.shape == (36, 2)
    assert kv[0].tolist() == [100, 128] and kv[1].tolist() == [100, 4096]


def test_deepseek_v3_mla_moe_mtp_fp8():
    m = read(DEEPSEEK_V3)
    assert m.is_mla and m.is_moe and (m.q_lora_rank, m.kv_lora_rank) == (1536, 512)
    assert m.head_dim == 192 and m.num_kv_heads == 128 and m.dense_layers == (0, 1, 2)
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts) == (256, 8, 1)
    assert m.router_bias and m.mtp_layers == 1 and m.weight_format() == "fp8_e4m3"
    assert m.quantization["weight_block_size"] == [128, 128] and m.dtype_bytes == 2
    # MLA cache: (kv_lora_rank + qk_rope_head_dim) = 576 elements per token and layer, 1,152 B in
    # bf16, one latent for all 128 heads (DeepSeek-V2 paper §2.1); 61 layers -> 70,272 B/token.
    assert m.kv_bytes_per_token_per_layer() == 1152 and m.kv_bytes_per_token() == 70_272
    assert m.kv_bytes_per_token_per_layer(kv_dtype_bytes=1) == 576
    # Attention per layer: q_a 7168*1536 = 11,010,048 + norm 1,536; q_b 1536*128*192 = 37,748,736;
    # kv_a 7168*576 = 4,128,768 + norm 512; kv_b 512*128*256 = 16,777,216; o 16384*7168 =
    # 117,440,512 -> 187,107,328.  Dense layer: + norms 14,336 + MLP 3*7168*18432 = 396,361,728
    # -> 583,483,392 (x 3).  MoE layer: expert 3*7168*2048 = 44,040,192; 256 routed + 1 shared;
    # router 256*7168 + 256 bias = 1,835,264 -> 187,107,328 + 14,336 + 257 x 44,040,192 +
    # 1,835,264 = 11,507,286,272 (x 58).  emb 129280*7168 = 926,679,040 x 2; final norm 7,168.
    # Total 1,750,450,176 + 667,422,603,776 + 1,853,358,080 + 7,168 = 671,026,419,200: the main
    # model.  Card deepseek-ai/DeepSeek-V3: 671B total (685B on the hub = 671B main + 14B MTP).
    assert m.param_count() == 671_026_419_200
    # MTP module: enorm + hnorm 14,336, eh_proj 14336*7168 = 102,760,448, one MoE layer
    # 11,507,286,272, shared_head.norm 7,168 -> 11,610,068,224 (the checkpoint's MTP layer also
    # holds copies of the embedding and head, 13.46 B in all: the card's "14B").
    assert m.mtp_param_count() == 11_610_068_224
    # Active without the input embedding: MoE layer 187,107,328 + 14,336 + 9 x 44,040,192 +
    # 1,835,264 = 585,318,656 x 58 = 33,948,482,048; + dense 1,750,450,176 + head 926,679,040 +
    # 7,168 = 36,625,618,432, "37B activated" in the report (§1); with the embedding 37.55 B.
    assert m.active_param_count(embedding=False) == 36_625_618_432
    assert round(m.active_param_count(embedding=False) / 1e9) == 37


def test_kimi_k2_reads_as_deepseek_v3():
    m = read(KIMI_K2)
    assert m.family == "deepseek_v3" and m.num_experts == 384 and m.dense_layers == (0,)
    assert m.mtp_layers == 0 and m.num_heads == 64 and m.kv_bytes_per_token_per_layer() == 1152
    # Attention 11,010,048 + 1,536 + 1536*64*192 (18,874,368) + 4,128,768 + 512 + 512*64*256
    # (8,388,608) + 64*128*7168 (58,720,256) = 101,124,096.  Dense layer 0: + 14,336 +
    # 396,361,728 = 497,500,160.  MoE layer: 385 x 44,040,192 + 384*7168 + 384 = 16,958,226,816
    # + 101,124,096 + 14,336 = 17,059,365,248 (x 60).  emb 163840*7168 = 1,174,405,120 x 2;
    # + 7,168 -> 1,026,408,232,448.  Card moonshotai/Kimi-K2-Instruct: "1T" total.
    assert m.param_count() == 1_026_408_232_448


def test_deepseek_v2_lite_without_query_compression():
    m = read(DEEPSEEK_V2_LITE)
    assert m.family == "deepseek_v2" and m.q_lora_rank == 0 and not m.router_bias
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts) == (64, 6, 2)
    assert m.dense_layers == (0,) and m.mtp_layers == 0
    # Attention: q 2048*16*192 = 6,291,456; kv_a 2048*576 = 1,179,648 + norm 512; kv_b 512*16*256 =
    # 2,097,152; o 2048*2048 = 4,194,304 -> 13,763,072.  Dense layer 0: + 4,096 + 3*2048*10944
    # (67,239,936) = 81,007,104.  MoE layer: expert 3*2048*1408 = 8,650,752; 64 routed + 2 shared;
    # router 2048*64 = 131,072 -> 13,763,072 + 4,096 + 66 x 8,650,752 + 131,072 = 584,847,872
    # (x 26).  emb 102400*2048 = 209,715,200 x 2; + 2,048 -> 15,706,484,224.  Active without the
    # embedding: 13,763,072 + 4,096 + 8 x 8,650,752 + 131,072 = 83,104,256 x 26 + 81,007,104 +
    # 209,715,200 + 2,048 = 2,451,435,008.  DeepSeek-V2 paper (arXiv 2405.04434) App. B:
    # "15.7B total parameters, of which 2.4B are activated for each token".
    assert m.param_count() == 15_706_484_224
    assert m.active_param_count(embedding=False) == 2_451_435_008


def test_deepseek_moe_layer_frequency():
    # DeepSeek: layer i has experts iff i >= first_k_dense_replace and i % moe_layer_freq == 0
    m = read(DEEPSEEK_V2_LITE, num_hidden_layers=6, first_k_dense_replace=1, moe_layer_freq=2)
    assert m.dense_layers == (0, 1, 3, 5) and m.num_moe_layers == 2
    dense = read(DEEPSEEK_V2_LITE, n_routed_experts=None)
    assert not dense.is_moe and dense.is_mla


# ------------------------------------------------------------------------------------- windows
def test_gemma3_27b_nested_text_config_five_local_one_global():
    m = read(GEMMA3_27B)
    assert m.family == "gemma3" and m.hidden_size == 5376 and m.num_layers == 62
    # absent from the released config: Gemma3TextConfig defaults
    assert (m.vocab_size, m.max_positions, m.rope_theta, m.rms_norm_eps) == (262208, 131072, 1e6, 1e-6)
    assert m.tie_embeddings and m.qk_norm and m.norms_per_layer == 4 and m.gated_mlp
    # (i + 1) % 6 == 0 -> global: layers 5, 11, ..., 59 (10 layers), the other 52 use 1024 tokens
    assert m.sliding_window == 1024 and m.global_layers == tuple(range(5, 62, 6))
    assert len(m.global_layers) == 10
    kv = m.layer_kv_tokens(32768)
    assert kv.sum() == 52 * 1024 + 10 * 32768
    # Per layer: attention 5376*(4096+2*2048) + 4096*5376 = 66,060,288 + q/k norms 256; MLP
    # 3*5376*21504 = 346,816,512; norms 4*5376 = 21,504 -> 412,898,560 x 62 = 25,599,710,720;
    # + final norm 5,376 = 25,599,716,096 non-embedding; tied emb 262208*5376 = 1,409,630,208.
    # Gemma 3 report (arXiv 2503.19786) Table 1: 25,600M non-embedding (1,416M embedding there).
    assert non_embedding(m) == 25_599_716_096 and round(non_embedding(m) / 1e6, -2) == 25_600
    assert m.param_count() == 25_599_716_096 + 1_409_630_208
    assert tokenizer_family(m) == tokenizer_family(read(GEMMA3_27B["text_config"],
                                                        vocab_size=262144)) == "gemma3"


def test_gemma3_flat_text_config_and_explicit_pattern():
    flat = {**GEMMA3_27B["text_config"], "num_hidden_layers": 8, "sliding_window_pattern": 4}
    m = read(flat)
    assert m.family == "gemma3" and m.global_layers == (3, 7)


def test_gemma2_9b_alternating_layers():
    m = read(GEMMA2_9B)
    assert m.family == "gemma2" and m.sliding_window == 4096 and m.tie_embeddings
    assert m.global_layers == tuple(range(1, 42, 2))  # even layers local, odd global
    assert m.layer_windows()[:3] == (4096, None, 4096)
    # Per layer: attention 3584*(4096+2*2048) + 4096*3584 = 44,040,192; MLP 3*3584*14336 =
    # 154,140,672; 4 norms 14,336 -> 198,195,200 x 42 = 8,324,198,400; + final norm 3,584 =
    # 8,324,201,984 non-embedding: exactly Gemma 2 report (arXiv 2408.00118) Table 2.
    assert non_embedding(m) == 8_324_201_984


def test_qwen2_use_sliding_window_and_max_window_layers():
    base = get_model("qwen2.5-0.5b")
    cfg = {"model_type": "qwen2", "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
           "num_hidden_layers": 24, "intermediate_size": 4864, "vocab_size": 151936,
           "tie_word_embeddings": True, "sliding_window": 32768, "max_window_layers": 21,
           "use_sliding_window": False}
    off = from_hf_config(cfg)
    assert off.sliding_window is None and off.qkv_bias  # Qwen2.5's configs: window off
    assert off.param_count() == base.param_count()
    on = from_hf_config({**cfg, "use_sliding_window": True, "sliding_window": 4096})
    # transformers Qwen2: layers at and above max_window_layers use the window
    assert on.global_layers == tuple(range(21)) and on.layer_windows()[21:] == (4096,) * 3


def test_layer_types_list_wins_and_all_full_means_no_window():
    cfg = {**QWEN3_8B, "layer_types": ["full_attention"] * 36}
    assert read(cfg).sliding_window is None
    cfg = {**QWEN3_8B, "num_hidden_layers": 4, "sliding_window": 512,
           "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]}
    m = read(cfg)
    assert m.layer_windows() == (None, 512, 512, None)
    # per layer at 2000 tokens: 2000, 512, 512, 2000
    assert m.layer_kv_tokens(2000).tolist() == [2000, 512, 512, 2000]
    assert m.kv_cache_bytes(2000) == (2 * 2000 + 2 * 512) * 2 * 8 * 128 * 2


# ------------------------------------------------------------------------------------- legacy
def test_config_without_model_type_reads_as_llama():
    m = from_hf_config({"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
                        "intermediate_size": 96, "vocab_size": 50, "hidden_act": "relu",
                        "attention_bias": True})
    assert m.family == "llama" and not m.gated_mlp and m.qkv_bias and not m.o_bias
    named = from_hf_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                            "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 50,
                            "hidden_act": "relu", "attention_bias": True, "mlp_bias": True})
    # transformers' LlamaMLP is gated whatever the activation; attention_bias covers q, k, v and o
    assert named.gated_mlp and named.qkv_bias and named.o_bias and named.mlp_bias


@pytest.mark.parametrize("cfg", [QWEN3_8B, MIXTRAL_8X7B, DEEPSEEK_V3, GPT_OSS_20B, GEMMA3_27B])
def test_active_never_exceeds_total(cfg):
    m = read(cfg)
    assert 0 < m.active_param_count(embedding=False) <= m.active_param_count() <= m.param_count()
    assert m.weight_bytes() == m.param_count() * m.dtype_bytes
