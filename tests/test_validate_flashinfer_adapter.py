"""The FlashInfer adapter's logic, run against a fake ``flashinfer`` module on CPU.

The fake records every constructor and ``plan`` call (accepting keyword arguments only, as
FlashInfer >= 0.6.16 demands for options) and computes attention from the page table it is given:
an implementation independent of the torch backend's dense view.
"""

from __future__ import annotations

import importlib.machinery
import math
import sys
import types

import pytest

torch = pytest.importorskip("torch")

from magicdec_model.validate import attention as attention_mod  # noqa: E402
from magicdec_model.validate.attention import TorchSDPABackend, get_backend  # noqa: E402
from magicdec_model.validate.attention.flashinfer_backend import (  # noqa: E402
    FlashInferBackend,
    FlashInferUnavailableError,
    parse_version,
    use_tensor_cores_for,
    version_supported,
)
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.speculative_loop import (  # noqa: E402
    DraftKV,
    autoregressive_generate,
    speculative_generate,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]


def _paged_attention(q, kv, indptr, indices, last_page_len, qo_indptr, causal):
    k_cache, v_cache = kv
    page_size = k_cache.shape[1]
    outs = []
    for b in range(len(last_page_len)):
        pages = indices[int(indptr[b]) : int(indptr[b + 1])].long()
        n = (len(pages) - 1) * page_size + int(last_page_len[b])
        k = k_cache[pages].reshape(-1, *k_cache.shape[2:])[:n].double()
        v = v_cache[pages].reshape(-1, *v_cache.shape[2:])[:n].double()
        qb = q[int(qo_indptr[b]) : int(qo_indptr[b + 1])].double()
        T, H, D = qb.shape
        group = H // k.shape[1]
        kk = k.repeat_interleave(group, dim=1)
        vv = v.repeat_interleave(group, dim=1)
        s = torch.einsum("thd,shd->hts", qb, kk) / math.sqrt(D)
        if causal:
            mask = torch.arange(n)[None, :] > (n - T + torch.arange(T))[:, None]
            s = s.masked_fill(mask, float("-inf"))
        outs.append(torch.einsum("hts,shd->thd", torch.softmax(s, -1), vv))
    return torch.cat(outs).to(q.dtype)


def make_fake_flashinfer(version="0.7.2.post1"):
    fi = types.ModuleType("flashinfer")
    fi.__version__ = version
    fi.__spec__ = importlib.machinery.ModuleSpec("flashinfer", None)
    fi.calls = []

    class Decode:
        def __init__(self, workspace, **kw):
            fi.calls.append(("decode_init", kw))
            self.resolved_backend = "fake-fa2"

        def plan(self, **kw):  # keyword-only, like the options of >= 0.6.16
            fi.calls.append(("decode_plan", kw))
            self.kw = kw

        def run(self, q, paged_kv_cache):
            kw = self.kw
            qo = torch.arange(len(kw["last_page_len"]) + 1)
            return _paged_attention(q, paged_kv_cache, kw["indptr"], kw["indices"],
                                    kw["last_page_len"], qo, causal=False)

    class Prefill:
        def __init__(self, workspace, **kw):
            fi.calls.append(("prefill_init", kw))

        def plan(self, **kw):
            fi.calls.append(("prefill_plan", kw))
            self.kw = kw

        def run(self, q, paged_kv_cache):
            kw = self.kw
            return _paged_attention(q, paged_kv_cache, kw["paged_kv_indptr"],
                                    kw["paged_kv_indices"], kw["paged_kv_last_page_len"],
                                    kw["qo_indptr"], causal=kw["causal"])

    fi.BatchDecodeWithPagedKVCacheWrapper = Decode
    fi.BatchPrefillWithPagedKVCacheWrapper = Prefill
    return fi


@pytest.fixture
def fake_fi(monkeypatch):
    fi = make_fake_flashinfer()
    monkeypatch.setitem(sys.modules, "flashinfer", fi)
    return fi


@pytest.fixture(scope="module")
def tiny_decoder(tiny_arch):
    """The shared tiny model (head_dim 16) with ``heads`` query and ``kv`` KV heads, in float64."""

    def make(heads=4, kv=2):
        arch = tiny_arch(num_attention_heads=heads, num_key_value_heads=kv)
        return Decoder.synthetic(arch, seed=9, dtype=torch.float64)

    return make


def test_version_parsing_and_range():
    assert parse_version("0.7.2.post1") == (0, 7, 2)
    assert parse_version("0.6.13") == (0, 6, 13)
    assert version_supported("0.6.13") and version_supported("0.7.2.post1")
    assert not version_supported("0.6.12") and not version_supported("0.8.0")
    assert not version_supported("0.1.6")


def test_tensor_core_rule():
    assert not use_tensor_cores_for(4) and not use_tensor_cores_for(1)
    assert use_tensor_cores_for(8) and use_tensor_cores_for(7) and use_tensor_cores_for(5)


def test_refuses_cpu_missing_module_and_wrong_version(monkeypatch):
    monkeypatch.setitem(sys.modules, "flashinfer", make_fake_flashinfer("0.6.12"))
    with pytest.raises(FlashInferUnavailableError, match="outside the tested range"):
        FlashInferBackend("cpu", allow_non_cuda=True)
    monkeypatch.setitem(sys.modules, "flashinfer", make_fake_flashinfer())
    with pytest.raises(FlashInferUnavailableError, match="CUDA"):
        FlashInferBackend("cpu")
    monkeypatch.setitem(sys.modules, "flashinfer", None)  # makes the import fail
    with pytest.raises(FlashInferUnavailableError, match="not importable"):
        get_backend("flashinfer", "cpu")


def test_auto_selection_prefers_flashinfer_only_on_a_capable_gpu(fake_fi, monkeypatch):
    assert not attention_mod.flashinfer_usable("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert attention_mod.flashinfer_usable("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert not attention_mod.flashinfer_usable("cuda")
    assert get_backend("auto", "cpu").name == "torch"


@pytest.mark.parametrize("heads,kv", [(4, 2), (8, 1)])
def test_adapter_matches_torch_backend_through_the_decoder(fake_fi, tiny_decoder, heads, kv):
    dec = tiny_decoder(heads, kv)
    fib = FlashInferBackend("cpu", allow_non_cuda=True, workspace_bytes=1024)
    tb = TorchSDPABackend()
    prompt = torch.randint(0, 83, (2, 13), generator=torch.Generator().manual_seed(1))
    caches = [dec.new_cache(2, 32, page_size=4) for _ in range(2)]
    for be, cache in zip((fib, tb), caches, strict=True):
        be.logits = [dec.prefill(prompt, cache, be)]
        be.logits.append(dec.decode_step(torch.tensor([[3], [4]]), cache, be)[:, 0])
        be.logits.append(dec.verify_step(torch.tensor([[5, 6, 7], [8, 9, 10]]), cache, be)[:, -1])
        cache.rollback(torch.tensor([1, 2]))  # unequal lengths afterwards
        be.logits.append(dec.decode_step(torch.tensor([[11], [12]]), cache, be)[:, 0])
    for a, b in zip(fib.logits, tb.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-9)
    kinds = [c[0] for c in fake_fi.calls]
    assert kinds.count("prefill_plan") == 2 and kinds.count("decode_plan") == 2
    init = next(kw for k, kw in fake_fi.calls if k == "decode_init")
    assert init["use_tensor_cores"] is use_tensor_cores_for(heads // kv)
    assert init["kv_layout"] == "NHD"


def test_adapter_plan_arguments(fake_fi, tiny_decoder):
    dec = tiny_decoder()
    fib = FlashInferBackend("cpu", allow_non_cuda=True, workspace_bytes=1024)
    cache = dec.new_cache(2, 32, page_size=4)
    dec.prefill(torch.ones(2, 9, dtype=torch.long), cache, fib)
    dec.verify_step(torch.ones(2, 4, dtype=torch.long), cache, fib)
    plan = [kw for k, kw in fake_fi.calls if k == "prefill_plan"][-1]
    assert plan["causal"] is True
    assert plan["qo_indptr"].tolist() == [0, 4, 8]
    assert plan["paged_kv_indptr"].dtype == torch.int32
    assert plan["paged_kv_last_page_len"].tolist() == [1, 1]  # 13 tokens, pages of 4
    # TINY_CONFIG: head_dim 64 / 4 = 16, 4 query and 2 KV heads
    assert plan["head_dim_qk"] == 16 and plan["num_qo_heads"] == 4 and plan["num_kv_heads"] == 2
    assert plan["q_data_type"] == torch.float64
    dec.decode_step(torch.ones(2, 1, dtype=torch.long), cache, fib)
    dplan = [kw for k, kw in fake_fi.calls if k == "decode_plan"][-1]
    assert dplan["indices"].tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    assert dplan["head_dim"] == 16 and dplan["page_size"] == 4
    assert fib.describe()["flashinfer_version"] == "0.7.2.post1"
    with pytest.raises(RuntimeError):
        cache.reserve(1)
        fib.run(torch.zeros(2, 1, 4, 16, dtype=torch.float64), cache, 0)


def test_sd_through_the_adapter_is_lossless(fake_fi, tiny_decoder):
    dec = tiny_decoder()
    fib = FlashInferBackend("cpu", allow_non_cuda=True, workspace_bytes=1024)
    prompt = torch.randint(0, 83, (2, 30), generator=torch.Generator().manual_seed(2))
    ar = autoregressive_generate(dec, prompt, 10, backend="torch")
    sd = speculative_generate(dec, prompt, 10, gamma=3, backend=fib,
                              draft_kv=DraftKV("snapkv", budget=20, window=8))
    assert torch.equal(sd.tokens, ar.tokens)
