"""Attention operations of the validator against a naive float64 reference."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from magicdec_model.validate.attention import (  # noqa: E402
    TorchSDPABackend,
    flashinfer_usable,
    get_backend,
)
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.kvcache import PagedKVCache  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]


def naive_attention(q, k, v, kv_lens):
    """q [B,T,H,D]; k, v [B,S,Hkv,D] (first kv_lens[b] valid); bottom-right causal; fp64."""
    B, T, H, D = q.shape
    group = H // k.shape[2]
    out = torch.zeros(B, T, H, D, dtype=torch.float64)
    for b in range(B):
        L = int(kv_lens[b])
        for t in range(T):
            visible = L - T + t + 1
            for h in range(H):
                kk = k[b, :visible, h // group].double()
                vv = v[b, :visible, h // group].double()
                s = kk @ q[b, t, h].double() / math.sqrt(D)
                out[b, t, h] = torch.softmax(s, 0) @ vv
    return out


def _filled_cache(lens, H_kv=2, D=8, page_size=4, seed=0, layers=1):
    g = torch.Generator().manual_seed(seed)
    cache = PagedKVCache(layers, len(lens), max(lens) + 8, H_kv, D, page_size=page_size)
    cache.reserve(max(lens))
    ks, vs = [], []
    for layer in range(layers):
        k = torch.randn(len(lens), max(lens), H_kv, D, generator=g)
        v = torch.randn(len(lens), max(lens), H_kv, D, generator=g)
        cache.write(layer, k, v)
        ks.append(k)
        vs.append(v)
    cache.truncate(torch.tensor(lens))
    return cache, ks, vs


def _attend(backend, cache, q_new, k_new, v_new, layer=0):
    T = q_new.shape[1]
    cache.reserve(T)
    backend.plan(cache, T, q_new.shape[2])
    cache.write(layer, k_new, v_new)
    return backend.run(q_new, cache, layer)


@pytest.mark.parametrize("lens", [[13, 13], [5, 17, 9]])
@pytest.mark.parametrize("H", [2, 4])
def test_decode_over_full_kv_matches_naive(lens, H):
    cache, ks, vs = _filled_cache(lens)
    g = torch.Generator().manual_seed(1)
    B = len(lens)
    q = torch.randn(B, 1, H, 8, generator=g)
    kn, vn = torch.randn(B, 1, 2, 8, generator=g), torch.randn(B, 1, 2, 8, generator=g)
    out = _attend(TorchSDPABackend(), cache, q, kn, vn)
    dk, dv = cache.dense_view(0)
    ref = naive_attention(q, dk, dv, cache.lens)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # the new token's K/V landed right after each request's old length
    for b, L in enumerate(lens):
        assert torch.equal(dk[b, L], kn[b, 0])
        assert torch.equal(dk[b, :L], ks[0][b, :L])


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_verify_is_causal_within_new_tokens_and_matches_naive(gamma):
    lens = [7, 20, 12]
    cache, _, _ = _filled_cache(lens, page_size=8)
    g = torch.Generator().manual_seed(2)
    T = gamma + 1
    q = torch.randn(3, T, 4, 8, generator=g)
    kn, vn = torch.randn(3, T, 2, 8, generator=g), torch.randn(3, T, 2, 8, generator=g)
    out = _attend(TorchSDPABackend(), cache, q, kn, vn)
    dk, dv = cache.dense_view(0)
    ref = naive_attention(q, dk, dv, cache.lens)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # causality: changing the last new token's K/V leaves all earlier query rows unchanged
    cache.rollback(T)
    kn2 = kn.clone()
    kn2[:, -1] += 5.0
    out2 = _attend(TorchSDPABackend(), cache, q, kn2, vn)
    assert torch.allclose(out2[:, :-1], out[:, :-1], atol=1e-6)
    assert not torch.allclose(out2[:, -1], out[:, -1], atol=1e-3)


def test_verify_equals_single_decodes_through_the_decoder(tiny_arch):
    arch = tiny_arch()
    dec = Decoder.synthetic(arch, seed=3)
    be = TorchSDPABackend()
    V = arch.vocab_size
    prompt = torch.randint(0, V, (2, 19), generator=torch.Generator().manual_seed(4))
    new = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(5))
    c1, c2 = dec.new_cache(2, 40, page_size=8), dec.new_cache(2, 40, page_size=8)
    dec.prefill(prompt, c1, be)
    dec.prefill(prompt, c2, be)
    verify = dec.verify_step(new, c1, be)
    singles = torch.cat([dec.decode_step(new[:, i : i + 1], c2, be) for i in range(5)], dim=1)
    assert verify.shape == (2, 5, V)
    assert torch.allclose(verify, singles, atol=1e-5)
    for layer in range(2):
        assert torch.allclose(c1.dense_view(layer)[0][:, :24], c2.dense_view(layer)[0][:, :24],
                              atol=1e-5)


def test_run_without_plan_is_refused():
    cache, _, _ = _filled_cache([4, 4])
    be = TorchSDPABackend()
    be.plan(cache, 1, 2)
    cache.reserve(1)  # cache changed after plan
    with pytest.raises(RuntimeError):
        be.run(torch.zeros(2, 1, 2, 8), cache, 0)


def test_backend_selection_on_cpu():
    assert not flashinfer_usable("cpu")
    assert get_backend("auto", "cpu").name == "torch"
    assert get_backend("torch", "cpu").name == "torch"
    with pytest.raises(ValueError, match="unknown attention backend"):
        get_backend("nope", "cpu")


def test_backend_env_variable(monkeypatch):
    monkeypatch.setenv("MAGICDEC_ATTENTION_BACKEND", "torch")
    assert get_backend(None, "cpu").name == "torch"
    monkeypatch.setenv("MAGICDEC_ATTENTION_BACKEND", "bogus")
    with pytest.raises(ValueError):
        get_backend(None, "cpu")


def test_registry_names_every_backend_the_cli_accepts():
    from magicdec_model.validate.attention import backend_names
    from magicdec_model.validate.run import BACKENDS

    assert backend_names() == ("torch", "flashinfer")
    assert BACKENDS == ("auto", *backend_names())
    assert type(get_backend("torch", "cpu")) is TorchSDPABackend
