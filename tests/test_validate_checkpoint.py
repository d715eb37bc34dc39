"""Local checkpoints: round trip through safetensors + config.json, and the acceptance CSV."""

from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from magicdec_model.validate.attention import TorchSDPABackend  # noqa: E402
from magicdec_model.validate.checkpoint import (  # noqa: E402
    ACCEPTANCE_COLUMNS,
    load_checkpoint,
    measure_acceptance,
    save_checkpoint,
    write_acceptance_csv,
)
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.speculative_loop import autoregressive_generate  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]

# the shared tiny model with a non-default rotary (its scaling must survive the round trip), fp32
ROPE = dict(rope_theta=50000.0, rope_scaling={"type": "linear", "factor": 2.0}, torch_dtype="float32")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_arch):
    dec = Decoder.synthetic(tiny_arch("tiny-ckpt", **ROPE), seed=21)
    folder = save_checkpoint(dec, tmp_path_factory.mktemp("ckpt") / "tiny-llama")
    return dec, folder


def test_checkpoint_round_trip_gives_identical_logits(tiny_ckpt):
    dec, folder = tiny_ckpt
    names = set(json.loads((folder / "config.json").read_text())) | {"model.safetensors"}
    assert {"hidden_size", "num_key_value_heads", "rope_scaling"} <= names
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
    assert "model.layers.1.self_attn.k_proj.weight" in keys
    assert "model.layers.0.mlp.gate_proj.weight" in keys and "lm_head.weight" in keys
    loaded = load_checkpoint(folder)
    assert loaded.arch.rope_scaling == {"type": "linear", "factor": 2.0}
    assert loaded.arch.name == "tiny-llama"
    prompt = torch.randint(0, dec.arch.vocab_size, (2, 10), generator=torch.Generator().manual_seed(0))
    be = TorchSDPABackend()
    a = dec.prefill(prompt, dec.new_cache(2, 16), be)
    b = loaded.prefill(prompt, loaded.new_cache(2, 16), be)
    assert torch.equal(a, b)
    assert torch.equal(autoregressive_generate(dec, prompt, 6).tokens,
                       autoregressive_generate(loaded, prompt, 6).tokens)


def test_checkpoint_layer_slice_and_missing_tensor(tiny_ckpt, tmp_path):
    dec, folder = tiny_ckpt
    one = load_checkpoint(folder, layers=1)
    assert one.num_layers == 1
    assert torch.equal(one.layers[0].wqkv, dec.layers[0].wqkv)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    from safetensors.torch import save_file

    embed = torch.zeros(dec.arch.vocab_size, dec.arch.hidden_size)
    save_file({"model.embed_tokens.weight": embed}, str(broken / "model.safetensors"))
    with pytest.raises(KeyError, match="q_proj"):
        load_checkpoint(broken)


def test_tied_checkpoint_has_no_lm_head(tmp_path, tiny_arch):
    dec = Decoder.synthetic(tiny_arch("t", **ROPE, tie_word_embeddings=True), seed=2)
    folder = save_checkpoint(dec, tmp_path / "tied")
    loaded = load_checkpoint(folder)
    assert loaded.head is loaded.embed
    assert torch.equal(loaded.head, dec.embed)


def test_measured_acceptance_csv(tiny_ckpt, tmp_path):
    _, folder = tiny_ckpt
    target = load_checkpoint(folder, dtype=torch.float64)
    prompts = torch.randint(0, target.arch.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    rows = measure_acceptance(target, prompts, methods=("streamingllm", "snapkv"),
                              budgets=(24, 64), gamma=3, max_new_tokens=12, sink_tokens=4,
                              window=8,
                              dataset="random-tokens")
    assert [(r.method, r.budget) for r in rows] == [
        ("streamingllm", 24), ("streamingllm", 64), ("snapkv", 24), ("snapkv", 64)
    ]
    for r in rows:
        assert r.model == "tiny-llama" and r.draft == "self" and r.seq_len == 40
        assert 0.0 <= r.acceptance <= 1.0
        if r.budget == 64:  # budget >= prompt + generated: the draft sees everything
            assert r.acceptance == 1.0
    out = write_acceptance_csv(rows, tmp_path / "acc.csv")
    with out.open() as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == ACCEPTANCE_COLUMNS
        read = list(reader)
    assert len(read) == 4 and read[0]["dataset"] == "random-tokens"
    assert float(read[1]["acceptance"]) == 1.0
    assert "measured by magicdec_model.validate" in read[0]["source"]
