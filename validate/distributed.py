"""Tensor parallelism with torch.distributed: Megatron-style weight shards and the two all-reduces.

Layout per layer (``W`` = world size, heads split evenly; ``num_kv_heads`` and
``intermediate_size`` must be divisible by ``W``):

- ``wqkv`` column-parallel: rank ``r`` holds the Q rows of its ``H / W`` query heads and the K and V
  rows of its ``H_kv / W`` KV heads (a query head stays with its KV head);
- ``wo`` row-parallel: the input columns of the rank's query heads; output summed by
  ``allreduce_attn``;
- ``w_gate_up`` column-parallel (the rank's slice of the gate rows and of the up rows);
- ``w_down`` row-parallel; output summed by ``allreduce_mlp``;
- norms and embedding replicated; LM head split by vocabulary when the vocabulary divides evenly
  (replicated otherwise), its local logits all-gathered into full logits.  MagicDec also splits
  the LM head but reduces only the argmax (two small all-reduces); gathering the logits moves
  more bytes (``B * T * V`` elements) but keeps sampling unchanged.

Each rank's KV cache holds only its KV heads.  Launch with ``torchrun --nproc_per_node=N`` and
:func:`init_tensor_parallel` (NCCL on GPUs), or with ``torch.multiprocessing.spawn`` on CPU
(gloo), as the tests do with :func:`tp_worker`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..perfmodel.architecture import ModelArch
    from .decoder import Decoder, LayerWeights


@dataclass
class TensorParallel:
    """This process's place in a tensor-parallel group."""

    rank: int
    world_size: int
    group: Any = None  # a torch.distributed process group; None = the default group

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Sum ``x`` over the group (in place on a contiguous copy) and return it."""
        import torch.distributed as dist

        x = x.contiguous()
        dist.all_reduce(x, group=self.group)
        return x

    def all_gather_last(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's ``x`` along the last dimension (rank order)."""
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)


def shard_layer(lw: LayerWeights, arch: ModelArch, rank: int, world: int) -> LayerWeights:
    """The rank's shard of one layer's full weights (see the module docstring for the layout)."""
    import torch

    from .decoder import LayerWeights

    D = arch.head_dim
    q_local = arch.num_heads // world * D
    kv_local = arch.num_kv_heads // world * D
    qd, kd = arch.q_dim, arch.kv_dim
    rows = torch.cat(
        [
            torch.arange(rank * q_local, (rank + 1) * q_local),
            qd + torch.arange(rank * kv_local, (rank + 1) * kv_local),
            qd + kd + torch.arange(rank * kv_local, (rank + 1) * kv_local),
        ]
    )
    inter = arch.intermediate_size
    i_local = inter // world
    mlp_rows = torch.arange(rank * i_local, (rank + 1) * i_local)
    if arch.gated_mlp:
        mlp_rows = torch.cat([mlp_rows, inter + mlp_rows])
    q_cols = slice(rank * q_local, (rank + 1) * q_local)
    i_cols = slice(rank * i_local, (rank + 1) * i_local)
    return LayerWeights(
        attn_norm=lw.attn_norm,
        wqkv=lw.wqkv[rows],
        bqkv=None if lw.bqkv is None else lw.bqkv[rows],
        wo=lw.wo[:, q_cols],
        mlp_norm=lw.mlp_norm,
        w_gate_up=lw.w_gate_up[mlp_rows],
        w_down=lw.w_down[:, i_cols],
    )


def init_tensor_parallel(
    backend: str | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    init_method: str | None = None,
) -> tuple[TensorParallel, torch.device]:
    """Join the default process group; return the TP handle and this rank's device.

    Without ``rank``/``world_size`` the torchrun variables (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) are read.  ``backend`` defaults to NCCL when CUDA is available (the rank's
    device is set to ``cuda:LOCAL_RANK``), else gloo on CPU.
    """
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world_size}
        if init_method is not None:
            kwargs["init_method"] = init_method
        if backend == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
    return TensorParallel(rank=rank, world_size=world_size), device


def scripted_steps(dec: Decoder, backend: Any = "torch") -> list[torch.Tensor]:
    """Fixed sequence (prefill, decode, verify, rollback, decode, SD loop) -> logits and tokens.

    Used to compare tensor-parallel and single-process runs of the same model.
    """
    import torch

    from .attention import select_backend
    from .speculative_loop import DraftKV, speculative_generate

    be = select_backend(backend, dec.device) if isinstance(backend, str) else backend
    g = torch.Generator().manual_seed(1234)
    V = dec.arch.vocab_size
    prompt = torch.randint(0, V, (2, 24), generator=g).to(dec.device)
    cache = dec.new_cache(2, 48, page_size=8)
    out = [dec.prefill(prompt, cache, be)]
    out.append(dec.decode_step(torch.randint(0, V, (2, 1), generator=g).to(dec.device), cache, be))
    out.append(dec.verify_step(torch.randint(0, V, (2, 4), generator=g).to(dec.device), cache, be))
    cache.rollback(torch.tensor([3, 1]))
    out.append(dec.decode_step(torch.randint(0, V, (2, 1), generator=g).to(dec.device), cache, be))
    sd = speculative_generate(dec, prompt, 8, gamma=3, backend=be,
                              draft_kv=DraftKV("snapkv", budget=16, window=8))
    out.append(sd.tokens.to(torch.float64))
    return [t.detach().cpu() for t in out]


def tp_worker(
    rank: int, world_size: int, init_method: str, arch_cfg: dict, seed: int, out_dir: str
) -> None:
    """Spawn target: build the sharded synthetic decoder, run :func:`scripted_steps`, save rank 0's.

    ``arch_cfg`` is a Hugging Face config dict; results go to ``out_dir/tp_rank{rank}.pt``.
    """
    import torch
    import torch.distributed as dist

    from ..perfmodel.architecture import from_hf_config
    from .decoder import Decoder

    torch.set_num_threads(1)
    tp, device = init_tensor_parallel(
        "gloo", rank=rank, world_size=world_size, init_method=init_method
    )
    try:
        dec = Decoder.synthetic(from_hf_config(arch_cfg, name="tp-check"), seed=seed,
                                device=device, dtype=torch.float32, tp=tp)
        out = scripted_steps(dec)
        torch.save({"outputs": out, "head_rows": dec.head.shape[0], "kv_heads": dec.num_kv_heads},
                   os.path.join(out_dir, f"tp_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """``torchrun --nproc_per_node=N -m magicdec_model.validate.distributed --model NAME``.

    Runs greedy SD and AR on a synthetic model slice under tensor parallelism and prints, on rank
    0, whether the tokens agree and the acceptance rate.
    """
    import argparse

    import torch
    import torch.distributed as dist

    from .decoder import Decoder
    from .speculative_loop import DraftKV, autoregressive_generate, speculative_generate

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", default="llama-68m")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--method", default="streamingllm")
    ap.add_argument("--budget", type=int, default=64)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args(argv)
    tp, device = init_tensor_parallel()
    try:
        dec = Decoder.synthetic(args.model, layers=args.layers, seed=0, device=device, tp=tp)
        g = torch.Generator().manual_seed(0)
        prompt = torch.randint(0, dec.arch.vocab_size, (args.batch, args.prompt_len), generator=g)
        sd = speculative_generate(
            dec, prompt, args.new_tokens, gamma=args.gamma, backend=args.backend,
            draft_kv=DraftKV(args.method, budget=args.budget, sink_tokens=min(16, args.budget // 2),
                             window=min(32, args.budget // 2)),
        )
        ar = autoregressive_generate(dec, prompt, args.new_tokens, backend=args.backend)
        if tp.rank == 0:
            print(f"TP={tp.world_size} {args.model} layers={dec.num_layers} device={device}: "
                  f"SD tokens == AR tokens: {torch.equal(sd.tokens, ar.tokens)}, "
                  f"{sd.acceptance_mode} acceptance {sd.acceptance_rate:.3f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
