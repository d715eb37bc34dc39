"""Paged KV caches: page tables, StreamingLLM / SnapKV budget caches, append and rollback."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from magicdec_model.validate.attention import TorchSDPABackend  # noqa: E402
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.kvcache import (  # noqa: E402
    PagedKVCache,
    gather_per_head,
    snapkv_indices,
    streaming_indices,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]

H_KV, D = 2, 8


def _prompt_cache(B=2, S=40, page_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(B, S, H_KV, D, generator=g)
    v = torch.randn(B, S, H_KV, D, generator=g)
    cache = PagedKVCache(1, B, S + 16, H_KV, D, page_size=page_size)
    cache.reserve(S)
    cache.write(0, k, v)
    return cache, k, v


def test_page_table_is_csr_over_static_partition():
    cache = PagedKVCache(1, 3, 30, H_KV, D, page_size=8)  # 4 pages per request
    cache.reserve(1)
    cache.truncate(torch.tensor([1, 1, 1]))
    cache.reserve(16)
    cache.truncate(torch.tensor([17, 8, 9]))
    pt = cache.page_table()
    assert pt.indptr.dtype == torch.int32 and pt.indices.dtype == torch.int32
    assert pt.indptr.tolist() == [0, 3, 4, 6]
    assert pt.indices.tolist() == [0, 1, 2, 4, 8, 9]
    assert pt.last_page_len.tolist() == [1, 8, 1]
    # the paged storage and the dense view are the same memory
    cache.kv[0, 0, 9, 0] = 7.0
    assert bool((cache.dense_view(0)[0][2, 8] == 7.0).all())


def test_cache_refuses_overflow_and_cutting_the_selected_prefix():
    cache = PagedKVCache(1, 1, 8, H_KV, D, page_size=4)
    with pytest.raises(ValueError, match="full"):
        cache.reserve(9)
    k = [torch.zeros(1, 3, H_KV, D)]
    cache.load_selection(k, k, next_pos=50)
    assert cache.positions(2).tolist() == [[50, 51]]
    cache.reserve(2)
    cache.rollback(2)
    with pytest.raises(ValueError):
        cache.rollback(1)


def test_streaming_indices_keep_sinks_and_recent_window():
    assert streaming_indices(10, 32, 16) == list(range(10))
    idx = streaming_indices(100, 24, 4)
    assert idx == [0, 1, 2, 3] + list(range(80, 100))
    with pytest.raises(ValueError):
        streaming_indices(100, 4, 4)


def _naive_decode(q, keys_per_head, values_per_head):
    """q [B,H,D]; keys/values lists [b][h_kv] -> [n, D] tensors; float64."""
    B, H, _ = q.shape
    group = H // H_KV
    out = torch.zeros(B, H, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            k = keys_per_head[b][h // group].double()
            v = values_per_head[b][h // group].double()
            out[b, h] = torch.softmax(k @ q[b, h].double() / math.sqrt(D), 0) @ v
    return out


def _budget_decode(kept_k, kept_v, next_pos, q, kn, vn):
    B = kept_k.shape[0]
    cache = PagedKVCache(1, B, kept_k.shape[1] + 4, H_KV, D, page_size=4)
    cache.load_selection([kept_k], [kept_v], next_pos=next_pos)
    pos = cache.reserve(1)
    assert pos[:, 0].tolist() == [next_pos] * B  # original positions are kept
    be = TorchSDPABackend()
    be.plan(cache, 1, q.shape[2])
    cache.write(0, kn, vn)
    return be.run(q, cache, 0)[:, 0]


def test_budget_attention_streamingllm_equals_dense_over_kept_positions():
    _, k, v = _prompt_cache(S=40)
    idx = streaming_indices(40, 20, sink_tokens=4)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 1, 4, D, generator=g)
    kn, vn = torch.randn(2, 1, H_KV, D, generator=g), torch.randn(2, 1, H_KV, D, generator=g)
    out = _budget_decode(k[:, idx], v[:, idx], 40, q, kn, vn)
    keep = idx + [40]
    k_all, v_all = torch.cat([k, kn], 1), torch.cat([v, vn], 1)
    ref = _naive_decode(
        q[:, 0],
        [[k_all[b, keep, h] for h in range(H_KV)] for b in range(2)],
        [[v_all[b, keep, h] for h in range(H_KV)] for b in range(2)],
    )
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # and it differs from attention over everything (the budget really drops tokens)
    full = _naive_decode(
        q[:, 0],
        [[k_all[b, :, h] for h in range(H_KV)] for b in range(2)],
        [[v_all[b, :, h] for h in range(H_KV)] for b in range(2)],
    )
    assert not torch.allclose(out.double(), full, atol=1e-3)


def test_budget_attention_snapkv_equals_dense_over_kept_positions_per_head():
    _, k, v = _prompt_cache(S=48)
    g = torch.Generator().manual_seed(4)
    obs = torch.randn(2, 8, 4, D, generator=g)
    idx = snapkv_indices(obs, k, budget=20, window=8)
    assert idx.shape == (2, H_KV, 20)
    assert not torch.equal(idx[:, 0], idx[:, 1])  # heads keep different positions
    q = torch.randn(2, 1, 4, D, generator=g)
    kn, vn = torch.randn(2, 1, H_KV, D, generator=g), torch.randn(2, 1, H_KV, D, generator=g)
    out = _budget_decode(gather_per_head(k, idx), gather_per_head(v, idx), 48, q, kn, vn)
    ref = _naive_decode(
        q[:, 0],
        [[torch.cat([k[b, idx[b, h], h], kn[b, :, h]]) for h in range(H_KV)] for b in range(2)],
        [[torch.cat([v[b, idx[b, h], h], vn[b, :, h]]) for h in range(H_KV)] for b in range(2)],
    )
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_snapkv_keeps_window_and_strongly_attended_positions():
    B, S, W = 1, 64, 8
    g = torch.Generator().manual_seed(5)
    k = torch.randn(B, S, H_KV, D, generator=g) * 0.1
    obs = torch.zeros(B, W, 4, D)
    obs[..., 0] = 10.0  # every query looks along dimension 0
    k[0, 11, 0, 0] = 5.0  # head 0 attends position 11
    k[0, 30, 1, 0] = 5.0  # head 1 attends position 30
    idx = snapkv_indices(obs, k, budget=W + 3, window=W, kernel_size=1)
    assert 11 in idx[0, 0].tolist() and 30 not in idx[0, 0].tolist()
    assert 30 in idx[0, 1].tolist() and 11 not in idx[0, 1].tolist()
    for h in range(H_KV):
        assert idx[0, h, -W:].tolist() == list(range(S - W, S))
        assert idx[0, h].tolist() == sorted(idx[0, h].tolist())
    # with pooling, neighbours of a peak score too
    pooled = snapkv_indices(obs, k, budget=W + 3, window=W, kernel_size=5)
    assert set(pooled[0, 0, :3].tolist()) <= set(range(9, 14))


def test_rollback_leaves_cache_as_if_rejected_tokens_never_existed():
    cache_a, k, v = _prompt_cache(S=21, page_size=4)
    cache_b, _, _ = _prompt_cache(S=21, page_size=4)
    g = torch.Generator().manual_seed(6)
    spec_k = torch.randn(2, 5, H_KV, D, generator=g)
    spec_v = torch.randn(2, 5, H_KV, D, generator=g)
    accepted = torch.tensor([2, 4])
    # A: append 5 speculative tokens, then roll back the rejected ones
    cache_a.reserve(5)
    cache_a.write(0, spec_k, spec_v)
    cache_a.rollback(5 - accepted)
    # B: only ever sees the accepted tokens (one at a time, per request)
    for b in range(2):
        for t in range(int(accepted[b])):
            single = torch.zeros(2, 1, H_KV, D)
            single_v = torch.zeros(2, 1, H_KV, D)
            single[b, 0], single_v[b, 0] = spec_k[b, t], spec_v[b, t]
            lens_before = cache_b.lens.clone()
            cache_b.reserve(1)
            cache_b.write(0, single, single_v)
            other = 1 - b
            keep = lens_before.clone()
            keep[b] += 1
            cache_b.truncate(keep)
            assert cache_b.lens[other] == lens_before[other]
    assert cache_a.lens.tolist() == cache_b.lens.tolist() == [23, 25]
    pa, pb = cache_a.page_table(), cache_b.page_table()
    for x, y in zip((pa.indptr, pa.indices, pa.last_page_len), (pb.indptr, pb.indices,
                                                                 pb.last_page_len), strict=True):
        assert torch.equal(x, y)
    # attention after appending the same next token is identical
    q = torch.randn(2, 1, 4, D, generator=g)
    kn, vn = torch.randn(2, 1, H_KV, D, generator=g), torch.randn(2, 1, H_KV, D, generator=g)
    outs = []
    for cache in (cache_a, cache_b):
        cache.reserve(1)
        be = TorchSDPABackend()
        be.plan(cache, 1, 4)
        cache.write(0, kn, vn)
        outs.append(be.run(q, cache, 0))
        assert cache.positions(1).tolist() == [[24], [26]]
    assert torch.allclose(outs[0], outs[1], atol=1e-6)


def test_decoder_rollback_after_verify_equals_never_seeing_rejected_tokens(tiny_arch):
    dec = Decoder.synthetic(tiny_arch(), seed=7)
    be = TorchSDPABackend()
    prompt = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(8))
    spec = torch.randint(0, 50, (1, 4), generator=torch.Generator().manual_seed(9))
    ca, cb = dec.new_cache(1, 32, page_size=4), dec.new_cache(1, 32, page_size=4)
    dec.prefill(prompt, ca, be)
    dec.prefill(prompt, cb, be)
    dec.verify_step(spec, ca, be)
    ca.rollback(2)  # keep 2 of 4
    dec.verify_step(spec[:, :2], cb, be)
    nxt = torch.tensor([[3]])
    assert torch.allclose(dec.decode_step(nxt, ca, be), dec.decode_step(nxt, cb, be), atol=1e-5)


def test_reindexed_streamingllm_cache_holds_keys_at_slot_positions(tiny_arch):
    from magicdec_model.validate.speculative_loop import DraftKV, build_draft_cache

    dec = Decoder.synthetic(tiny_arch(), seed=3, dtype=torch.float64)
    be = TorchSDPABackend()
    tokens = torch.randint(0, 50, (2, 30), generator=torch.Generator().manual_seed(1))
    full = dec.new_cache(2, 30, page_size=8)
    dec.prefill(tokens, full, be)
    kept = streaming_indices(30, 12, sink_tokens=4)
    spec = DraftKV("streamingllm", budget=12, sink_tokens=4, positions="reindexed")
    draft = build_draft_cache(dec, full, spec, spare=4, page_size=4)
    # layer 0 keys do not depend on attention: recompute them at in-cache positions 0..11
    x = dec.attn_norm(0, dec.embedding(tokens[:, kept]))
    q, k, _ = dec.qkv_proj(0, x)
    cos, sin = dec.rotary_tables(torch.arange(12).expand(2, 12))
    _, k_slot = dec.rotary(q, k, cos, sin)
    assert torch.allclose(draft.dense_view(0)[0][:, :12], k_slot, atol=1e-10)
    assert draft.positions(1).tolist() == [[12], [12]]  # new tokens continue from the slot index
    original = build_draft_cache(dec, full, DraftKV("streamingllm", 12, sink_tokens=4), spare=4)
    assert original.positions(1).tolist() == [[30], [30]]
    assert not torch.allclose(original.dense_view(0)[0][:, 4:12], k_slot[:, 4:12])
    assert torch.equal(original.dense_view(0)[0][:, :4], draft.dense_view(0)[0][:, :4])  # sinks
    with pytest.raises(ValueError, match="SnapKV"):
        DraftKV("snapkv", positions="reindexed")


def test_fill_random_prepares_a_cache_at_a_given_length():
    cache = PagedKVCache(2, 3, 40, H_KV, D, page_size=8)
    cache.fill_random(33, seed=1, pos_offset=100)
    assert cache.lens.tolist() == [33, 33, 33]
    assert cache.positions(1).tolist() == [[133]] * 3
    k, v = cache.dense_view(1)
    assert float(k[:, :33].std()) == pytest.approx(1.0, rel=0.1)
    assert bool((k[:, 33:] == 0).all()) and not torch.equal(k[:, :33], v[:, :33])
    assert cache.page_table().last_page_len.tolist() == [1, 1, 1]
    with pytest.raises(ValueError):
        cache.fill_random(41)


@settings(max_examples=40, deadline=None)
@given(
    page_size=st.sampled_from([1, 3, 4, 16]),
    ops=st.lists(
        st.tuples(st.integers(1, 5), st.lists(st.integers(0, 5), min_size=2, max_size=2)),
        min_size=1,
        max_size=8,
    ),
)
def test_append_and_rollback_match_a_list_model(page_size, ops):
    """Random appends and per-request rollbacks agree with plain Python lists of tokens."""
    cache = PagedKVCache(1, 2, 48, 1, 2, page_size=page_size)
    model: list[list[float]] = [[], []]
    counter = 0.0
    for n_new, drops in ops:
        k = torch.zeros(2, n_new, 1, 2)
        for b in range(2):
            for t in range(n_new):
                counter += 1
                k[b, t, 0, :] = counter
                model[b].append(counter)
        cache.reserve(n_new)
        cache.write(0, k, k)
        drop = [min(d, len(model[b])) for b, d in enumerate(drops)]
        cache.rollback(torch.tensor(drop))
        for b in range(2):
            del model[b][len(model[b]) - drop[b] :]
    dk, _ = cache.dense_view(0)
    for b in range(2):
        n = len(model[b])
        assert int(cache.lens[b]) == n
        assert dk[b, :n, 0, 0].tolist() == model[b]
    if min(len(m) for m in model) > 0:
        pt = cache.page_table()
        for b in range(2):
            pages = pt.indices[int(pt.indptr[b]) : int(pt.indptr[b + 1])].long()
            flat = cache.kv[0, 0][pages].reshape(-1, 1, 2)
            n_b = (len(pages) - 1) * page_size + int(pt.last_page_len[b])
            assert flat[:n_b, 0, 0].tolist() == model[b]
