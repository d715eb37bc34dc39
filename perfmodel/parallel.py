"""Tensor-parallel sharding of one model over G GPUs, and the all-reduce cost.

Sharding follows Megatron-LM as MagicDec's engine does: QKV and gate/up projections are
column-parallel, O and down projections row-parallel, KV heads are split across GPUs, the LM
head is vocab-parallel (column-parallel), the embedding table is replicated.  Where G exceeds
the number of KV heads, every GPU holds one KV head (heads replicated G / n_kv times), as vLLM
and SGLang do; that needs G to be a multiple of n_kv.

Multi-head latent attention (MLA, DeepSeek-V2/V3) under TP, as vLLM and SGLang run it without
data-parallel attention: query heads split, the down-projections to the latent (``q_a``,
``kv_a``) replicated, and every GPU keeps the whole latent KV cache (all its heads read it).

Mixture-of-experts layers: by default (``expert_parallel=False``) every routed expert is split
over the GPUs along its intermediate dimension, like a dense MLP (vLLM's and SGLang's default
for TP); with ``expert_parallel=True`` each GPU holds E/G whole experts (vLLM
``--enable-expert-parallel`` with tensor-parallel attention: the experts' outputs are still
summed by the MLP's all-reduce, no all-to-all).  Shared experts are split like a dense MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .architecture import ModelArch
from .errors import InputError
from .hardware import HardwareProfile


@dataclass(frozen=True)
class Shard:
    """Per-GPU sizes of one model under G-way tensor parallelism (elements)."""

    gpus: int
    q_heads: int
    kv_heads: int
    kv_replicated: bool
    intermediate: int
    vocab: int
    #: routed experts held per GPU and each one's intermediate width per GPU (0 without MoE)
    experts: int = 0
    expert_intermediate: int = 0
    #: all shared experts' intermediate width per GPU
    shared_intermediate: int = 0
    expert_parallel: bool = False

    def describe(self) -> str:
        """One line saying how heads are split, mentioning KV replication where it happens."""
        if self.kv_heads == 0:
            text = (f"TP={self.gpus}: {self.q_heads} query heads per GPU, the MLA latent KV cache "
                    f"replicated on every GPU")
        else:
            text = f"TP={self.gpus}: {self.q_heads} query heads and {self.kv_heads} KV head(s) per GPU"
        if self.kv_replicated and self.kv_heads:
            text += " (KV heads replicated: more GPUs than KV heads)"
        if self.expert_parallel:
            text += f"; expert parallel: {self.experts} whole experts per GPU"
        return text


def shard(arch: ModelArch, gpus: int, expert_parallel: bool = False) -> Shard:
    """Split ``arch`` over ``gpus`` GPUs; raise :class:`InputError` if it cannot be split."""
    if isinstance(gpus, bool) or not isinstance(gpus, (int, np.integer)) or gpus < 1:
        raise InputError(f"--gpus {gpus!r} must be a positive integer")
    gpus = int(gpus)
    if arch.num_heads % gpus:
        divisors = [d for d in range(1, arch.num_heads + 1) if arch.num_heads % d == 0]
        raise InputError(
            f"--gpus {gpus} does not divide the {arch.num_heads} query heads of {arch.name}; "
            f"allowed: {', '.join(map(str, divisors))}"
        )
    kv = arch.num_kv_heads
    if arch.is_mla:
        kv_local, replicated = 0, gpus > 1  # one latent, replicated on every GPU
    elif gpus <= kv:
        if kv % gpus:
            raise InputError(
                f"--gpus {gpus} does not divide the {kv} KV heads of {arch.name}; "
                f"use a divisor of {kv} or a multiple of it"
            )
        kv_local, replicated = kv // gpus, False
    else:
        if gpus % kv:
            raise InputError(
                f"--gpus {gpus} exceeds the {kv} KV heads of {arch.name} and is not a multiple "
                f"of {kv}, so KV heads cannot be replicated evenly"
            )
        kv_local, replicated = 1, True
    experts = e_inter = 0
    if arch.is_moe:
        if expert_parallel:
            if arch.num_experts % gpus:
                raise InputError(
                    f"--expert-parallel: --gpus {gpus} does not divide the {arch.num_experts} experts "
                    f"of {arch.name}; allowed: a divisor of {arch.num_experts}"
                )
            experts, e_inter = arch.num_experts // gpus, arch.expert_intermediate_size
        else:
            experts, e_inter = arch.num_experts, -(-arch.expert_intermediate_size // gpus)
    elif expert_parallel:
        raise InputError(f"--expert-parallel: {arch.name} has no experts (not a mixture-of-experts model)")
    shared = arch.num_shared_experts * arch.shared_expert_intermediate_size
    return Shard(
        gpus=gpus,
        q_heads=arch.num_heads // gpus,
        kv_heads=kv_local,
        kv_replicated=replicated,
        intermediate=-(-arch.intermediate_size // gpus),
        vocab=-(-arch.vocab_size // gpus),
        experts=experts,
        expert_intermediate=e_inter,
        shared_intermediate=-(-shared // gpus),
        expert_parallel=bool(expert_parallel and arch.is_moe),
    )


def allreduce_time(message_bytes: np.ndarray, gpus: int, hw: HardwareProfile) -> np.ndarray:
    """Time (seconds) of one ring all-reduce of ``message_bytes`` bytes over ``gpus`` GPUs.

    ``t = a + 2(G-1) a_hop + 2(G-1)/G * M / busbw``: the NCCL bus-bandwidth convention, with a base
    latency and a per-ring-step latency.  Zero for a single GPU.
    """
    m = np.asarray(message_bytes, dtype=float)
    if gpus <= 1:
        return np.zeros_like(m)
    eff = hw.efficiency
    steps = 2.0 * (gpus - 1)
    latency = eff["allreduce_latency_s"] + steps * eff["allreduce_hop_latency_s"]
    return latency + steps / gpus * m / eff["allreduce_busbw"]
