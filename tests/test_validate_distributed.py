"""Tensor parallelism: the one TP path (``tensor_parallel.parallelize`` of a full-size decoder)
holds perfmodel's shard and, over gloo at TP=2, gives the single-process logits."""

from __future__ import annotations

import inspect
import socket

import pytest

torch = pytest.importorskip("torch")

from tp_check import scripted_steps, tp_worker  # noqa: E402

from magicdec_model.perfmodel.architecture import from_hf_config  # noqa: E402
from magicdec_model.perfmodel.errors import InputError  # noqa: E402
from magicdec_model.perfmodel.parallel import shard  # noqa: E402
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.distributed import TensorParallel  # noqa: E402
from magicdec_model.validate.tensor_parallel import parallelize, shard_layer  # noqa: E402
from magicdec_model.validate.weights import synthetic_weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def cfg(tiny_config):
    """The shared tiny model with 8 query heads (4 per rank, 1 KV head each), QKV bias, and an
    even vocabulary."""
    return tiny_config(num_attention_heads=8, vocab_size=72, attention_bias=True)


@pytest.fixture(scope="module")
def cfg_replicated(tiny_config):
    """One KV head for two ranks (replicated, as perfmodel's shard does), an MLP width and a
    vocabulary that do not divide by 2 (the last rank's shard is zero-padded)."""
    return tiny_config(num_attention_heads=8, num_key_value_heads=1, intermediate_size=95,
                       vocab_size=89)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlp(h, w_gate_up, w_down):
    g, u = (h @ w_gate_up.T).chunk(2, -1)
    return (torch.nn.functional.silu(g) * u) @ w_down.T


@pytest.mark.unit
def test_shards_reassemble_the_full_layer(cfg):
    arch = from_hf_config(cfg, name="tp")
    lw = synthetic_weights(arch, layers=1, seed=3).layers[0]
    shards = [shard_layer(lw, arch, r, 2) for r in range(2)]
    assert shards[0].wqkv.shape == (arch.q_dim // 2 + arch.kv_dim, 64)
    x = torch.randn(3, 64)
    # Q of rank 0 = first half of the heads; K/V = its single KV head
    q_full = (x @ lw.wqkv.T)[:, : arch.q_dim]
    assert torch.allclose((x @ shards[0].wqkv.T)[:, : arch.q_dim // 2], q_full[:, :32])
    a = torch.randn(3, arch.q_dim)
    parts = [a[:, r * 32 : (r + 1) * 32] @ shards[r].wo.T for r in range(2)]
    assert torch.allclose(parts[0] + parts[1], a @ lw.wo.T, atol=1e-5)
    h = torch.randn(3, 64)
    tp_sum = sum(_mlp(h, s.w_gate_up, s.w_down) for s in shards)
    assert torch.allclose(tp_sum, _mlp(h, lw.w_gate_up, lw.w_down), atol=1e-5)


@pytest.mark.unit
def test_replicated_kv_heads_and_padded_shards_follow_perfmodels_shard(cfg_replicated):
    arch = from_hf_config(cfg_replicated, name="tp-rep")
    sh = shard(arch, 2)
    assert sh.kv_replicated and sh.kv_heads == 1 and sh.intermediate == 48
    lw = synthetic_weights(arch, layers=1, seed=4).layers[0]
    shards = [shard_layer(lw, arch, r, 2) for r in range(2)]
    D = arch.head_dim
    k_full = lw.wqkv[arch.q_dim : arch.q_dim + D]
    for s in shards:  # both ranks hold the one KV head, and perfmodel's per-GPU sizes
        assert s.wqkv.shape[0] == (sh.q_heads + 2 * sh.kv_heads) * D
        assert torch.equal(s.wqkv[sh.q_heads * D : (sh.q_heads + 1) * D], k_full)
        assert s.w_gate_up.shape[0] == 2 * sh.intermediate and s.w_down.shape[1] == sh.intermediate
    h = torch.randn(3, 64)
    tp_sum = sum(_mlp(h, s.w_gate_up, s.w_down) for s in shards)
    assert torch.allclose(tp_sum, _mlp(h, lw.w_gate_up, lw.w_down), atol=1e-5)


def _run_tp(tmp_path, cfg):
    ref = scripted_steps(Decoder.synthetic(from_hf_config(cfg, name="tp"), seed=5, dtype=torch.float32))
    init = f"tcp://127.0.0.1:{_free_port()}"
    torch.multiprocessing.spawn(tp_worker, args=(2, init, cfg, 5, str(tmp_path)), nprocs=2, join=True)
    arch = from_hf_config(cfg, name="tp")
    sh = shard(arch, 2)
    for rank in range(2):
        saved = torch.load(tmp_path / f"tp_rank{rank}.pt")
        assert saved["head_rows"] == sh.vocab  # vocab-parallel LM head
        assert (saved["q_heads"], saved["kv_heads"]) == (sh.q_heads, sh.kv_heads)
        got = saved["outputs"]
        assert len(got) == len(ref)
        for a, b in zip(got[:-1], ref[:-1], strict=True):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
        assert torch.equal(got[-1], ref[-1])  # SD loop tokens under TP


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(180)  # two gloo workers; ~6 s when the machine is quiet
def test_tensor_parallel_matches_single_process_gloo(tmp_path, cfg):
    _run_tp(tmp_path, cfg)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_tensor_parallel_with_replicated_kv_and_padding_matches_single_process(tmp_path, cfg_replicated):
    _run_tp(tmp_path, cfg_replicated)


@pytest.mark.unit
def test_tensor_parallel_refuses_what_perfmodel_cannot_split(cfg):
    arch = from_hf_config(cfg, name="tp")
    with pytest.raises(InputError, match="does not divide the 8 query heads"):
        parallelize(Decoder.synthetic(arch, layers=1), TensorParallel(rank=0, world_size=3))


@pytest.mark.unit
def test_the_decoder_knows_nothing_of_sharding():
    assert "tp" not in inspect.signature(Decoder).parameters
    assert "tp" not in inspect.signature(Decoder.synthetic).parameters
