"""The built-in registry: every entry loads, names its source, and the new entries agree with the
configs they were transcribed from (``hf_configs.py``) as the reader reads them."""

from __future__ import annotations

import dataclasses

import pytest
from hf_configs import (
    DEEPSEEK_V3,
    GEMMA3_27B,
    GPT_OSS_20B,
    GPT_OSS_120B,
    LLAMA_31_405B,
    LLAMA_33_70B,
    MISTRAL_7B_V01,
    MIXTRAL_8X7B,
    QWEN3_8B,
    QWEN3_30B_A3B,
    QWEN3_32B,
    QWEN3_235B_A22B,
)
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import (
    FAMILIES,
    builtin_model,
    builtin_model_names,
    from_hf_config,
    tokenizer_family,
)

pytestmark = pytest.mark.unit

TRANSCRIBED = {
    "qwen3-8b": QWEN3_8B,
    "qwen3-32b": QWEN3_32B,
    "qwen3-30b-a3b": QWEN3_30B_A3B,
    "qwen3-235b-a22b": QWEN3_235B_A22B,
    "mixtral-8x7b": MIXTRAL_8X7B,
    "mistral-7b": MISTRAL_7B_V01,
    "deepseek-v3": DEEPSEEK_V3,
    "gpt-oss-20b": GPT_OSS_20B,
    "gpt-oss-120b": GPT_OSS_120B,
    "gemma-3-27b": GEMMA3_27B,
    "llama-3.3-70b": LLAMA_33_70B,
    "llama-3.1-405b": LLAMA_31_405B,
}


@pytest.mark.parametrize("name", builtin_model_names())
def test_every_entry_loads_with_a_source(name):
    m = builtin_model(name)
    assert m.name == name and m.family in FAMILIES and len(m.source) > 20 and m.hf_id
    assert m.param_count() > 0 and m.active_param_count() <= m.param_count()


@pytest.mark.parametrize("name", sorted(TRANSCRIBED))
def test_registry_entry_matches_its_config(name):
    reg = builtin_model(name)
    read = from_hf_config(TRANSCRIBED[name], name=name)
    assert dataclasses.replace(read, hf_id=reg.hf_id, source=reg.source) == reg
    assert read.rope_scaling == reg.rope_scaling  # not part of ==
    assert (read.quantization or None) == (reg.quantization or None)


def test_new_entries_cover_the_issue_list():
    wanted = {"qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "mixtral-8x7b",
              "deepseek-v3", "gpt-oss-20b", "gpt-oss-120b", "gemma-3-27b", "llama-3.3-70b",
              "llama-3.1-405b"}
    assert wanted <= set(builtin_model_names())


def test_moe_registry_records_are_not_dense_7b():
    # the physical check of issue 10: Mixtral-8x7B has ~46.7B parameters of weights (hand count in
    # test_hf_config_families), 6.4x Mistral-7B's 7.24B, while the active share is 12.9B
    mix = builtin_model("mixtral-8x7b")
    assert round(mix.param_count() / 1e9, 1) == 46.7 and round(mix.active_param_count() / 1e9, 1) == 12.9
    assert builtin_model("mistral-7b").sliding_window == 4096
    assert builtin_model("mistral-7b").layer_windows() == (4096,) * 32
    assert tokenizer_family(mix) == tokenizer_family(builtin_model("mistral-7b")) == "mistral-vocab32000"


runner = CliRunner()


def test_models_list_shows_new_entries_with_active_parameters():
    out = runner.invoke(app, ["models", "list"])
    assert out.exit_code == 0 and "active (B)" in out.output
    row = next(ln for ln in out.output.splitlines() if ln.strip().startswith("mixtral-8x7b"))
    assert "46.70" in row and "12.88" in row
    for name in ("deepseek-v3", "gpt-oss-120b", "gemma-3-27b", "qwen3-235b-a22b"):
        assert name in out.output


def test_models_show_prints_the_fields_a_family_uses():
    ds = runner.invoke(app, ["models", "show", "deepseek-v3"]).output
    assert "kv_lora_rank       512" in ds and "dense_layers       [0, 1, 2]" in ds
    assert "mtp params         11,610,068,224" in ds and "(MLA latent)" in ds
    assert "weight_dtype       fp8_e4m3" in ds
    gemma = runner.invoke(app, ["models", "show", "gemma-3-27b"]).output
    assert "52 of 62 layers keep 1024 tokens, 10 global" in gemma and "num_experts" not in gemma
    dense = runner.invoke(app, ["models", "show", "llama-3.1-8b"]).output
    assert "kv_lora_rank" not in dense and "active params" not in dense
