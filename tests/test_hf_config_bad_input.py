"""config.json values that used to be read silently wrong, and families that are refused.

Each bad value must raise one one-line InputError naming the key, the value and what is allowed;
the CLI turns it into exit code 2 with no traceback.
"""

from __future__ import annotations

import json

import pytest
from hf_configs import DEEPSEEK_V3, GEMMA3_27B, GPT_OSS_20B, MISTRAL_7B_V01, QWEN3_8B, QWEN3_30B_A3B
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import ModelArch, from_hf_config
from magicdec_model.perfmodel.errors import InputError

pytestmark = pytest.mark.unit

LLAMA = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
         "num_hidden_layers": 4, "intermediate_size": 512, "vocab_size": 1000}


def error_of(cfg) -> str:
    with pytest.raises(InputError) as info:
        from_hf_config(cfg, path="c.json")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("config c.json: ")
    return msg


# ----------------------------------------------------------------------- refused families
REFUSED = [
    {"model_type": "mamba", "architectures": ["MambaForCausalLM"], "hidden_size": 768},
    {**LLAMA, "model_type": "jamba", "architectures": ["JambaForCausalLM"]},
    {"model_type": "falcon_mamba"},
    {"model_type": "qwen3_next", "architectures": ["Qwen3NextForCausalLM"]},
    {"model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"]},
    {"model_type": "my_new_model", **{k: v for k, v in LLAMA.items() if k != "model_type"}},
]


@pytest.mark.parametrize("cfg", REFUSED, ids=lambda c: c["model_type"])
def test_unmodelled_families_are_refused_naming_what_is_supported(cfg):
    msg = error_of(cfg)
    assert repr(cfg["model_type"]) in msg and "is not modelled" in msg
    assert "supported model_type: llama, mistral, mixtral" in msg and "gpt_oss" in msg


def test_architectures_without_model_type():
    body = {k: v for k, v in LLAMA.items() if k != "model_type"}
    msg = error_of({**body, "architectures": ["MambaForCausalLM"]})
    assert "MambaForCausalLM" in msg and "LlamaForCausalLM" in msg
    assert from_hf_config({**body, "architectures": ["Qwen3ForCausalLM"]}).family == "qwen3"
    assert "model_type" in error_of({**LLAMA, "model_type": 3})
    # a known model_type does not cover an architecture class of another family
    msg = error_of({**LLAMA, "architectures": ["JambaForCausalLM"]})
    assert "['JambaForCausalLM'] (model_type 'llama') are not a modelled family" in msg
    msg = error_of({**LLAMA, "architectures": ["MistralForCausalLM"]})
    assert "name the mistral family but model_type 'llama' the llama family" in msg


def test_hybrid_layer_types_are_refused():
    cfg = {**QWEN3_8B, "num_hidden_layers": 2, "layer_types": ["linear_attention", "full_attention"]}
    msg = error_of(cfg)
    assert "'linear_attention'" in msg and "sliding_attention, full_attention" in msg
    assert "layer_types" in error_of({**QWEN3_8B, "layer_types": ["full_attention"] * 3})


# ------------------------------------------------------------------ silently-wrong readings
def test_zero_kv_heads_or_head_dim_is_an_error_not_a_default():
    msg = error_of({**LLAMA, "num_key_value_heads": 0})
    assert "num_key_value_heads=0" in msg and "a positive integer" in msg
    msg = error_of({**LLAMA, "head_dim": 0})
    assert "head_dim=0" in msg and "a positive integer" in msg
    # null and absent mean what transformers makes of them: MHA, hidden / heads
    m = from_hf_config({**LLAMA, "num_key_value_heads": None, "head_dim": None})
    assert (m.num_kv_heads, m.head_dim) == (8, 32)


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_tie_word_embeddings_must_be_a_json_boolean(value):
    msg = error_of({**LLAMA, "tie_word_embeddings": value})
    assert f"tie_word_embeddings={value!r}" in msg and "expected true or false" in msg


def test_tie_word_embeddings_booleans_are_read():
    assert from_hf_config({**LLAMA, "tie_word_embeddings": False}).tie_embeddings is False
    assert from_hf_config({**LLAMA, "tie_word_embeddings": True}).tie_embeddings is True


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "auto", "float64"])
def test_unknown_torch_dtype_is_refused_not_read_as_two_bytes(dtype):
    msg = error_of({**LLAMA, "torch_dtype": dtype})
    assert f"torch_dtype={dtype!r}" in msg and "bfloat16" in msg and "quantization_config" in msg


@pytest.mark.parametrize(("dtype", "nbytes"), [("float32", 4), ("torch.float16", 2), ("bfloat16", 2),
                                               ("float8_e4m3fn", 1)])
def test_floating_dtypes_give_their_size(dtype, nbytes):
    assert from_hf_config({**LLAMA, "torch_dtype": dtype}).dtype_bytes == nbytes
    assert from_hf_config({**LLAMA, "dtype": dtype}).dtype_bytes == nbytes  # transformers >= 4.56


def test_rope_theta_must_be_a_number_and_absent_means_10000():
    assert "rope_theta='abc'" in error_of({**LLAMA, "rope_theta": "abc"})
    assert "rope_theta=None" in error_of({**LLAMA, "rope_theta": None})
    assert "rope_theta=-1" in error_of({**LLAMA, "rope_theta": -1})
    assert from_hf_config(LLAMA).rope_theta == 10000.0
    nested = {**LLAMA, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}
    assert from_hf_config(nested).rope_theta == 500000.0


INT_KEYS = ["hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
            "vocab_size", "num_key_value_heads", "head_dim", "max_position_embeddings"]
BAD_INTS = [True, "256", 256.0, -4, 0, [4]]


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", BAD_INTS, ids=repr)
def test_every_integer_field_is_type_checked(key, value):
    msg = error_of({**LLAMA, key: value})
    assert f"{key}={value!r}" in msg and "expected a positive integer" in msg


@pytest.mark.parametrize("key", ["hidden_size", "num_attention_heads", "num_hidden_layers",
                                 "intermediate_size", "vocab_size"])
def test_required_integers_may_not_be_null_or_absent(key):
    assert f"{key}=None" in error_of({**LLAMA, key: None})
    assert f"missing required key '{key}'" in error_of({k: v for k, v in LLAMA.items() if k != key})


@pytest.mark.parametrize(("key", "value"), [("rms_norm_eps", -1e-6), ("rms_norm_eps", "1e-5"),
                                            ("rms_norm_eps", float("nan")), ("rope_theta", True)])
def test_float_fields_are_checked(key, value):
    assert f"{key}=" in error_of({**LLAMA, key: value})


@pytest.mark.parametrize(("cfg", "needle"), [
    ({**QWEN3_30B_A3B, "num_experts": 0}, "num_experts=0"),
    ({**QWEN3_30B_A3B, "moe_intermediate_size": "768"}, "moe_intermediate_size='768'"),
    ({**QWEN3_30B_A3B, "num_experts_per_tok": 1.5}, "num_experts_per_tok=1.5"),
    ({**QWEN3_30B_A3B, "mlp_only_layers": [48]}, "mlp_only_layers=[48]"),
    ({**QWEN3_30B_A3B, "decoder_sparse_step": 0}, "decoder_sparse_step=0"),
    ({**DEEPSEEK_V3, "kv_lora_rank": None}, "kv_lora_rank=None"),
    ({**DEEPSEEK_V3, "first_k_dense_replace": -1}, "first_k_dense_replace=-1"),
    ({**DEEPSEEK_V3, "num_nextn_predict_layers": "1"}, "num_nextn_predict_layers='1'"),
    ({**GPT_OSS_20B, "sliding_window": "128"}, "sliding_window='128'"),
    ({**MISTRAL_7B_V01, "sliding_window": 0}, "sliding_window=0"),
    ({**QWEN3_8B, "use_sliding_window": "no"}, "use_sliding_window='no'"),
    ({**GEMMA3_27B, "text_config": {**GEMMA3_27B["text_config"], "hidden_size": "5376"}},
     "text_config.hidden_size='5376'"),
    ({**GEMMA3_27B, "text_config": [1]}, "text_config=[1]"),
    ({**LLAMA, "rope_scaling": {"rope_type": "linear", "factor": "8"}}, "rope_scaling.factor='8'"),
    ({**LLAMA, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                "original_max_position_embeddings": 8192.5}},
     "rope_scaling.original_max_position_embeddings=8192.5"),
    ({**LLAMA, "rope_scaling": {"type": 1}}, "rope_scaling.type=1"),
    ({**LLAMA, "rope_scaling": "linear"}, "rope_scaling='linear'"),
    ({**DEEPSEEK_V3, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}},
     "weight_block_size=[128]"),
])
def test_family_fields_are_checked(cfg, needle):
    assert needle in error_of(cfg)


def test_routing_to_more_experts_than_exist_is_refused():
    with pytest.raises(InputError, match=r"experts_per_token=200 must be in 1\.\.num_experts=128"):
        from_hf_config({**QWEN3_30B_A3B, "num_experts_per_tok": 200})


@pytest.mark.parametrize("method", ["bitsandbytes", "compressed-tensors", None])
def test_unread_quantization_is_refused(method):
    msg = error_of({**LLAMA, "quantization_config": {"quant_method": method}})
    assert "quantization_config.quant_method" in msg and "fp8, mxfp4, awq, gptq" in msg


def test_read_quantization_formats():
    awq = from_hf_config({**LLAMA, "quantization_config": {"quant_method": "awq", "bits": 4,
                                                           "group_size": 128}})
    assert awq.weight_format() == "int4" and awq.quantization["group_size"] == 128
    assert "bits=3" in error_of({**LLAMA, "quantization_config": {"quant_method": "gptq", "bits": 3}})
    dense_fp8 = from_hf_config({**QWEN3_8B, "quantization_config": {"quant_method": "fp8", "fmt": "e4m3"}})
    assert dense_fp8.weight_format() == "fp8_e4m3" and dense_fp8.dtype_bytes == 2
    assert "quantization_config" in error_of({**LLAMA, "quantization_config": "fp8"})


def test_mla_attention_bias_is_refused():
    assert "attention_bias=true is not modelled for MLA" in error_of({**DEEPSEEK_V3, "attention_bias": True})


# ------------------------------------------------------------------------- record checks
@pytest.mark.parametrize(("over", "needle"), [
    ({"num_experts": 8, "experts_per_token": 9, "expert_intermediate_size": 64}, "experts_per_token=9"),
    ({"num_experts": 8, "experts_per_token": 2}, "expert_intermediate_size"),
    ({"experts_per_token": 2}, "num_experts is 0"),
    ({"num_experts": 8, "experts_per_token": 2, "expert_intermediate_size": 64,
      "dense_layers": [4]}, "layer indices run 0..3"),
    ({"num_experts": 8, "experts_per_token": 2, "expert_intermediate_size": 64,
      "dense_layers": [2, 1]}, "increasing"),
    ({"sliding_window": 0}, "sliding_window=0"),
    ({"global_layers": [1]}, "sliding_window is not"),
    ({"kv_lora_rank": 64, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16},
     "head_dim=32 must equal"),
    ({"qk_rope_head_dim": 8}, "kv_lora_rank is 0"),
    ({"weight_dtype": "fp6"}, "weight_dtype='fp6'"),
    ({"family": "mamba"}, "family='mamba'"),
    ({"tie_embeddings": "false"}, "tie_embeddings='false' must be true or false"),
    ({"rope_theta": "abc"}, "rope_theta='abc'"),
    ({"mtp_layers": -1}, "mtp_layers=-1"),
])
def test_registry_record_fields_are_validated(over, needle):
    base = dict(name="t", hidden_size=256, num_layers=4, num_heads=8, num_kv_heads=2, head_dim=32,
                intermediate_size=512, vocab_size=1000)
    with pytest.raises(InputError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        ModelArch(**{**base, **over})


# ---------------------------------------------------------------------------------- CLI
runner = CliRunner()


@pytest.mark.parametrize(("cfg", "needle"), [
    ({"model_type": "jamba", **{k: v for k, v in LLAMA.items() if k != "model_type"}},
     "model_type 'jamba'"),
    ({**LLAMA, "tie_word_embeddings": "false"}, "tie_word_embeddings='false'"),
    ({**LLAMA, "torch_dtype": "int8"}, "torch_dtype='int8'"),
])
def test_cli_exit_2_one_line(tmp_path, cfg, needle):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    for args in (["predict", "--model", str(path)], ["models", "show", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        assert "Traceback" not in result.output
