"""The synthetic-weight decoder: shapes, rotary scaling, slices, op-by-op structure."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from magicdec_model.perfmodel.architecture import get_model  # noqa: E402
from magicdec_model.validate.attention import TorchSDPABackend  # noqa: E402
from magicdec_model.validate.decoder import LAYER_OPS, STEP_OPS, Decoder  # noqa: E402
from magicdec_model.validate.rotary import rope_inv_freq  # noqa: E402
from magicdec_model.validate.weights import synthetic_weights  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]


@pytest.fixture(scope="module")
def tiny(tiny_arch):
    """The shared tiny model with 3 layers (slicing 2 of them must differ from the whole)."""

    def make(**kw):
        return tiny_arch(num_hidden_layers=3, **kw)

    return make


def test_every_perfmodel_op_is_a_decoder_method():
    for op in LAYER_OPS + STEP_OPS:
        assert callable(getattr(Decoder, op)), op
    for entry in ("decode_step", "verify_step", "draft_step", "prefill"):
        assert callable(getattr(Decoder, entry))


def test_registry_slice_has_real_shapes():
    arch = get_model("llama-68m")
    dec = Decoder.synthetic("llama-68m", layers=1, seed=0)
    assert dec.num_layers == 1
    lw = dec.layers[0]
    assert lw.wqkv.shape == (arch.q_dim + 2 * arch.kv_dim, arch.hidden_size)
    assert lw.w_gate_up.shape == (2 * arch.intermediate_size, arch.hidden_size)
    assert lw.w_down.shape == (arch.hidden_size, arch.intermediate_size)
    assert dec.embed.shape == (arch.vocab_size, arch.hidden_size)
    assert dec.head is not dec.embed  # untied
    assert dec.dtype == torch.float32


def test_layers_k_slice_equals_first_layers_of_full_model(tiny):
    arch = tiny()
    full = synthetic_weights(arch, seed=11)
    part = synthetic_weights(arch, layers=2, seed=11)
    assert len(part.layers) == 2
    for a, b in zip(part.layers, full.layers[:2], strict=True):
        assert torch.equal(a.wqkv, b.wqkv) and torch.equal(a.w_down, b.w_down)
    assert torch.equal(part.lm_head, full.lm_head)
    other = synthetic_weights(arch, layers=2, seed=12)
    assert not torch.equal(other.layers[0].wqkv, part.layers[0].wqkv)
    with pytest.raises(ValueError):
        synthetic_weights(arch, layers=4)


def test_tied_head_bias_and_plain_mlp(tiny):
    arch = tiny(tie_word_embeddings=True, attention_bias=True, hidden_act="relu")
    dec = Decoder.synthetic(arch, seed=1)
    assert dec.head is dec.embed
    assert dec.layers[0].bqkv is not None
    assert dec.layers[0].w_gate_up.shape == (96, 64)  # TINY_CONFIG I x h; not gated: up only
    be = TorchSDPABackend()
    cache = dec.new_cache(1, 8)
    out = dec.prefill(torch.tensor([[1, 2, 3]]), cache, be)
    assert out.shape == (1, 89) and torch.isfinite(out).all()  # TINY_CONFIG vocab 89


def test_rope_scaling_linear_and_llama3(tiny):
    base = tiny(rope_theta=10000.0)
    inv = rope_inv_freq(base)
    # head_dim = 64 / 4 = 16 (TINY_CONFIG)
    assert torch.allclose(inv, 1.0 / 10000.0 ** (torch.arange(0, 16, 2).double() / 16))
    lin = rope_inv_freq(tiny(rope_scaling={"type": "linear", "factor": 4.0}))
    assert torch.allclose(lin, inv / 4)
    l3 = rope_inv_freq(
        tiny(rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                "original_max_position_embeddings": 64})
    )
    raw = rope_inv_freq(tiny(rope_theta=500000.0))
    wavelen = 2 * math.pi / raw
    high = wavelen < 64 / 4
    low = wavelen > 64 / 1
    assert high.any() and low.any()
    assert torch.allclose(l3[high], raw[high])  # short wavelengths untouched
    assert torch.allclose(l3[low], raw[low] / 8)  # long wavelengths divided by the factor
    mid = ~(high | low)
    assert bool(((l3[mid] < raw[mid]) & (l3[mid] > raw[mid] / 8)).all())
    with pytest.raises(ValueError, match="unsupported"):
        rope_inv_freq(tiny(rope_scaling={"type": "yarn", "factor": 2.0}))


def test_rotary_preserves_norm_and_relative_position(tiny):
    dec = Decoder.synthetic(tiny(), seed=2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 4, 16, generator=g, dtype=torch.float64)
    k = torch.randn(1, 1, 2, 16, generator=g, dtype=torch.float64)

    def score(pq, pk):
        cq, sq = dec.rotary_tables(torch.tensor([[pq]]))
        ck, sk = dec.rotary_tables(torch.tensor([[pk]]))
        rq, _ = dec.rotary(q, k, cq, sq)
        _, rk = dec.rotary(q, k, ck, sk)
        assert torch.allclose(rq.norm(), q.norm())
        return float(rq[0, 0, 0] @ rk[0, 0, 0])

    assert score(7, 3) == pytest.approx(score(107, 103), rel=1e-9)
    assert score(7, 3) != pytest.approx(score(7, 5), rel=1e-3)


def test_incremental_decode_equals_one_shot_forward(tiny):
    dec = Decoder.synthetic(tiny(), seed=3)
    be = TorchSDPABackend()
    tok = torch.randint(0, 89, (2, 12), generator=torch.Generator().manual_seed(1))
    c_full = dec.new_cache(2, 16, page_size=4)
    full = dec.forward(tok, c_full, be)
    c_inc = dec.new_cache(2, 16, page_size=4)
    parts = [dec.forward(tok[:, :6], c_inc, be)]
    parts += [dec.decode_step(tok[:, i : i + 1], c_inc, be) for i in range(6, 12)]
    assert torch.allclose(full, torch.cat(parts, 1), atol=1e-5)


def test_ops_compose_to_the_forward_pass(tiny):
    """Calling the ops one by one (as the timing work will) gives the forward pass's logits."""
    dec = Decoder.synthetic(tiny(), seed=4)
    be = TorchSDPABackend()
    tok = torch.tensor([[5, 6, 7, 8]])
    ref = dec.forward(tok, dec.new_cache(1, 8), be)
    cache = dec.new_cache(1, 8)
    pos = cache.reserve(4)
    be.plan(cache, 4, dec.num_heads)
    cos, sin = dec.rotary_tables(pos)
    x = dec.embedding(tok)
    for layer in range(dec.num_layers):
        q, k, v = dec.qkv_proj(layer, dec.attn_norm(layer, x))
        q, k = dec.rotary(q, k, cos, sin)
        x = x + dec.allreduce_attn(dec.o_proj(layer, dec.attention(layer, q, k, v, cache, be)))
        h = dec.gate_up_proj(layer, dec.mlp_norm(layer, x))
        x = x + dec.allreduce_mlp(dec.down_proj(layer, dec.act(h)))
    logits = dec.lm_head(dec.final_norm(x))
    assert torch.equal(logits, ref)
    assert dec.sampling(logits).shape == (1, 4)


def test_bf16_on_cpu_runs(tiny):
    dec = Decoder.synthetic(tiny(), seed=5, dtype=torch.bfloat16)
    cache = dec.new_cache(1, 8)
    out = dec.prefill(torch.tensor([[1, 2]]), cache, TorchSDPABackend())
    assert out.dtype == torch.bfloat16 and cache.kv.dtype == torch.bfloat16
