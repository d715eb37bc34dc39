"""Tensor parallelism: TP=2 over gloo gives the single-process logits."""

from __future__ import annotations

import socket

import pytest

torch = pytest.importorskip("torch")

from magicdec_model.perfmodel.architecture import from_hf_config  # noqa: E402
from magicdec_model.validate.decoder import Decoder, synthetic_weights  # noqa: E402
from magicdec_model.validate.distributed import (  # noqa: E402
    scripted_steps,
    shard_layer,
    tp_worker,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")



@pytest.fixture(scope="module")
def cfg(tiny_config):
    """The shared tiny model with 8 query heads (4 per rank, 1 KV head each), QKV bias, and an
    even vocabulary for the vocab-parallel LM head."""
    return tiny_config(num_attention_heads=8, vocab_size=72, attention_bias=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    full_gu = h @ lw.w_gate_up.T
    g, u = full_gu.chunk(2, -1)
    mlp = (torch.nn.functional.silu(g) * u) @ lw.w_down.T
    tp_sum = 0
    for s in shards:
        gs, us = (h @ s.w_gate_up.T).chunk(2, -1)
        tp_sum = tp_sum + (torch.nn.functional.silu(gs) * us) @ s.w_down.T
    assert torch.allclose(tp_sum, mlp, atol=1e-5)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(180)  # two gloo workers; ~6 s when the machine is quiet
def test_tensor_parallel_matches_single_process_gloo(tmp_path, cfg):
    ref = scripted_steps(
        Decoder.synthetic(from_hf_config(cfg, name="tp"), seed=5, dtype=torch.float32)
    )
    init = f"tcp://127.0.0.1:{_free_port()}"
    torch.multiprocessing.spawn(
        tp_worker, args=(2, init, cfg, 5, str(tmp_path)), nprocs=2, join=True
    )
    for rank in range(2):
        saved = torch.load(tmp_path / f"tp_rank{rank}.pt")
        assert saved["head_rows"] == cfg["vocab_size"] // 2  # vocab-parallel LM head
        assert saved["kv_heads"] == 1  # each rank caches its own KV head
        got = saved["outputs"]
        assert len(got) == len(ref)
        for a, b in zip(got[:-1], ref[:-1], strict=True):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
        assert torch.equal(got[-1], ref[-1])  # SD loop tokens under TP


@pytest.mark.unit
def test_tensor_parallel_rejects_indivisible_heads(cfg):
    from magicdec_model.validate.distributed import TensorParallel

    arch = from_hf_config(dict(cfg, num_key_value_heads=1), name="odd")
    with pytest.raises(ValueError, match="tensor parallel"):
        Decoder.synthetic(arch, tp=TensorParallel(rank=0, world_size=2))
