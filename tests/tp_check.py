"""Tensor-parallel drivers of the tests: one scripted sequence of steps, its spawned gloo worker,
and a torchrun check.

The tests compare :func:`scripted_steps` of a single-process decoder with rank 0's run of
:func:`tp_worker` (``torch.multiprocessing.spawn``).  By hand, on any machine::

    torchrun --standalone --nproc_per_node=2 tests/tp_check.py --model llama-68m --prompt-len 64

runs greedy SD and AR under tensor parallelism and prints, on rank 0, whether the tokens agree.
Every path builds the full-size decoder and shards it with ``tensor_parallel.parallelize``, the
one TP path validate runs.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

from magicdec_model.perfmodel.architecture import from_hf_config
from magicdec_model.validate.attention import get_backend
from magicdec_model.validate.decoder import Decoder
from magicdec_model.validate.distributed import init_tensor_parallel
from magicdec_model.validate.speculative_loop import DraftKV, autoregressive_generate, speculative_generate
from magicdec_model.validate.tensor_parallel import parallelize


def scripted_steps(dec: Decoder, backend: str = "torch") -> list[torch.Tensor]:
    """Fixed sequence (prefill, decode, verify, rollback, decode, SD loop) -> logits and tokens."""
    be = get_backend(backend, dec.device)
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


def tp_worker(rank: int, world_size: int, init_method: str, arch_cfg: dict, seed: int, out_dir: str) -> None:
    """Spawn target: shard the synthetic decoder, run :func:`scripted_steps`, save the outputs.

    ``arch_cfg`` is a Hugging Face config dict; results go to ``out_dir/tp_rank{rank}.pt``.
    """
    torch.set_num_threads(1)
    tp, device = init_tensor_parallel("gloo", rank=rank, world_size=world_size, init_method=init_method)
    try:
        dec = Decoder.synthetic(from_hf_config(arch_cfg, name="tp-check"), seed=seed, device=device,
                                dtype=torch.float32)
        parallelize(dec, tp)
        out = scripted_steps(dec)
        torch.save({"outputs": out, "head_rows": dec.head.shape[0], "kv_heads": dec.num_kv_heads,
                    "q_heads": dec.num_heads, "wqkv": dec.layers[0].wqkv.clone()},
                   os.path.join(out_dir, f"tp_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """Greedy SD and AR of a synthetic model slice under torchrun; rank 0 prints the verdict."""
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
        dec = parallelize(Decoder.synthetic(args.model, layers=args.layers, seed=0, device=device), tp)
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
