"""A LLaMA-family decoder with synthetic (seeded random) or loaded weights, split into timeable ops.

The forward pass is spelled out op by op under the names perfmodel uses, so that the timing work can
call each piece alone:

per layer: ``attn_norm, qkv_proj, rotary, attention, o_proj, allreduce_attn, mlp_norm,
gate_up_proj, act, down_proj, allreduce_mlp``; per step: ``embedding, final_norm, lm_head,
sampling``.

Shapes follow the :class:`~magicdec_model.perfmodel.architecture.ModelArch` record: grouped-query
attention, gated (SiLU) or plain (GELU) MLP, RMSNorm, rotary embedding (:mod:`.rotary`), optional
QKV bias, tied or untied LM head.  Weights are :mod:`.weights` records.  ``layers=K`` builds only
the first K layers (a slice of a big model).

The decoder knows nothing of sharding: on one process ``allreduce_attn``, ``allreduce_mlp`` and
``gather_logits`` return their input.  :func:`.tensor_parallel.parallelize` shards a built decoder
in place for one rank and installs the collective operations in their place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..perfmodel.architecture import ModelArch, get_model
from ..perfmodel.ops import LAYER_OPS as _PERF_LAYER_OPS
from ..perfmodel.ops import STEP_OPS as _PERF_STEP_OPS
from .rotary import angle_dtype, apply_rotary, rope_inv_freq, rotary_tables
from .weights import DecoderWeights, LayerWeights, synthetic_weights

if TYPE_CHECKING:  # pragma: no cover
    from .attention import AttentionBackend
    from .kvcache import PagedKVCache

# The op names are perfmodel's (one list, one place).  The decoder picks the greedy token from the
# gathered logits, so it has no separate argmax all-reduce op.
LAYER_OPS = _PERF_LAYER_OPS
STEP_OPS = tuple(op for op in _PERF_STEP_OPS if op != "allreduce_sampling")


class Decoder:
    """A decoder-only transformer whose forward pass is a sequence of named ops.

    Build with :meth:`synthetic` (random weights) or
    :func:`magicdec_model.validate.checkpoint.load_checkpoint` (safetensors on disk).

    Args:
        arch: the architecture record (full model; ``num_layers`` here may exceed the layers held).
        weights: full weights on any device (moved one layer at a time).
        device, dtype: where the weights and activations live.

    ``num_heads``, ``num_kv_heads`` and the weights are the ones this process holds (the whole
    model unless :func:`.tensor_parallel.parallelize` sharded it).
    """

    def __init__(
        self,
        arch: ModelArch,
        weights: DecoderWeights,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        self.arch = arch
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.num_heads = arch.num_heads
        self.num_kv_heads = arch.num_kv_heads
        self.head_dim = arch.head_dim
        self.layers: list[LayerWeights] = [self._move(lw) for lw in weights.layers]
        self.num_layers = len(self.layers)
        self.embed = self._to_device(weights.embedding)
        self.final_norm_w = self._to_device(weights.final_norm)
        self.head = self.embed if weights.lm_head is None else self._to_device(weights.lm_head)
        self.inv_freq = rope_inv_freq(arch).to(device=self.device, dtype=angle_dtype(self.dtype))
        self.captured_queries: list[torch.Tensor] = []

    def _to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device=self.device, dtype=self.dtype).contiguous()

    def _move(self, lw: LayerWeights) -> LayerWeights:
        """One layer's weights on this decoder's device and dtype."""
        return LayerWeights(**{k: self._to_device(v) for k, v in vars(lw).items()})

    @classmethod
    def synthetic(
        cls,
        model: str | ModelArch,
        *,
        layers: int | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> Decoder:
        """Random-weight decoder for a registry name, a config.json path or a :class:`ModelArch`.

        ``layers=K`` keeps the first K layers; default dtype is bf16 on CUDA and fp32 on CPU.
        """
        arch = get_model(model)
        device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        w = synthetic_weights(arch, layers=layers, seed=seed, dtype=dtype, device=device, lazy=True)
        return cls(arch, w, device=device, dtype=dtype)

    # ------------------------------------------------------------------ caches
    def new_cache(self, batch: int, capacity: int, *, page_size: int = 16) -> PagedKVCache:
        """An empty paged KV cache for the local layers and KV heads (``capacity`` tokens)."""
        from .kvcache import PagedKVCache

        return PagedKVCache(
            self.num_layers,
            batch,
            capacity,
            self.num_kv_heads,
            self.head_dim,
            page_size=page_size,
            device=self.device,
            dtype=self.dtype,
        )

    # --------------------------------------------------------------- step ops
    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` -> hidden states ``[B, T, hidden]``."""
        return self.embed[tokens]

    def _rmsnorm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        xf = x.float() if x.element_size() < 4 else x
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.arch.rms_norm_eps)
        return xf.to(x.dtype) * w

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm of the last hidden states ``[B, T, hidden]``."""
        return self._rmsnorm(x, self.final_norm_w)

    def lm_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` of the vocabulary rows held (tied heads reuse the embedding)."""
        return x @ self.head.T

    def gather_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The full vocabulary's logits from the rows held (identity on one process)."""
        return logits

    def sampling(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy sampling: argmax token ids ``[B, T]``."""
        return logits.argmax(dim=-1)

    # -------------------------------------------------------------- layer ops
    def attn_norm(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm before attention."""
        return self._rmsnorm(x, self.layers[layer].attn_norm)

    def qkv_proj(
        self, layer: int, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fused QKV projection -> q ``[B, T, H, D]``, k and v ``[B, T, H_kv, D]`` (local heads)."""
        lw = self.layers[layer]
        y = x @ lw.wqkv.T
        if lw.bqkv is not None:
            y = y + lw.bqkv
        B, T = x.shape[:2]
        qd, kd = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q = y[..., :qd].view(B, T, self.num_heads, self.head_dim)
        k = y[..., qd : qd + kd].view(B, T, self.num_kv_heads, self.head_dim)
        v = y[..., qd + kd :].view(B, T, self.num_kv_heads, self.head_dim)
        return q, k, v

    def rotary_tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[B, T, 1, D]`` (fp32, fp64 for fp64 models) for positions ``[B, T]``."""
        return rotary_tables(positions, self.inv_freq)

    def rotary(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply rotary embedding to q and k (computed in fp32, returned in the model dtype)."""
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

    def rerotate_keys(self, k: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Rotate already-rotated keys ``[B, n, H_kv, D]`` by ``delta`` ``[n]`` more positions.

        Rotary rotations compose additively, so a key rotated at position p becomes the key at
        ``p + delta`` (used to re-index a StreamingLLM cache).
        """
        cos, sin = self.rotary_tables(delta[None, :])
        return apply_rotary(k, cos, sin)

    def attention(
        self,
        layer: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cache: PagedKVCache,
        backend: AttentionBackend,
    ) -> torch.Tensor:
        """Append k, v to ``cache`` and attend -> ``[B, T, H*D]``."""
        cache.write(layer, k, v)
        out = backend.run(q, cache, layer)
        return out.reshape(q.shape[0], q.shape[1], -1)

    def o_proj(self, layer: int, a: torch.Tensor) -> torch.Tensor:
        """Output projection (a partial sum under TP)."""
        return a @ self.layers[layer].wo.T

    def allreduce_attn(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the attention output over TP ranks (identity on one process)."""
        return x

    def mlp_norm(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm before the MLP."""
        return self._rmsnorm(x, self.layers[layer].mlp_norm)

    def gate_up_proj(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Fused gate and up projection ``[B, T, 2 * inter]`` (``[B, T, inter]`` without gating)."""
        return x @ self.layers[layer].w_gate_up.T

    def act(self, gu: torch.Tensor) -> torch.Tensor:
        """SiLU(gate) * up for gated MLPs, GELU otherwise."""
        if self.arch.gated_mlp:
            g, u = gu.chunk(2, dim=-1)
            return torch.nn.functional.silu(g) * u
        return torch.nn.functional.gelu(gu)

    def down_proj(self, layer: int, a: torch.Tensor) -> torch.Tensor:
        """Down projection (a partial sum under TP)."""
        return a @ self.layers[layer].w_down.T

    def allreduce_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the MLP output over TP ranks (identity on one process)."""
        return x

    # ---------------------------------------------------------------- forward
    def layer_forward(
        self,
        layer: int,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: PagedKVCache,
        backend: AttentionBackend,
        capture_queries: int = 0,
    ) -> torch.Tensor:
        """One transformer layer, op by op (pre-norm residual)."""
        h = self.attn_norm(layer, x)
        q, k, v = self.qkv_proj(layer, h)
        q, k = self.rotary(q, k, cos, sin)
        if capture_queries:
            self.captured_queries.append(q[:, -capture_queries:].detach().clone())
        a = self.attention(layer, q, k, v, cache, backend)
        x = x + self.allreduce_attn(self.o_proj(layer, a))
        h = self.mlp_norm(layer, x)
        m = self.down_proj(layer, self.act(self.gate_up_proj(layer, h)))
        return x + self.allreduce_mlp(m)

    def forward(
        self,
        tokens: torch.Tensor,
        cache: PagedKVCache,
        backend: AttentionBackend,
        *,
        last_only: bool = False,
        capture_queries: int = 0,
    ) -> torch.Tensor:
        """Run ``tokens`` ``[B, T]`` after what ``cache`` holds; append their K/V; return logits.

        Logits are ``[B, T, vocab]`` (``[B, 1, vocab]`` with ``last_only``).  With
        ``capture_queries=W`` the rotated queries of the last W tokens of every layer are kept in
        ``self.captured_queries`` (SnapKV's observation window).
        """
        T = tokens.shape[1]
        positions = cache.reserve(T)
        backend.plan(cache, T, self.num_heads)
        cos, sin = self.rotary_tables(positions)
        self.captured_queries = []
        x = self.embedding(tokens)
        for layer in range(self.num_layers):
            x = self.layer_forward(layer, x, cos, sin, cache, backend, capture_queries)
        if last_only:
            x = x[:, -1:]
        return self.gather_logits(self.lm_head(self.final_norm(x)))

    def prefill(
        self,
        tokens: torch.Tensor,
        cache: PagedKVCache,
        backend: AttentionBackend,
        *,
        capture_queries: int = 0,
    ) -> torch.Tensor:
        """Process a prompt ``[B, S]`` (causal); return the last position's logits ``[B, V]``."""
        logits = self.forward(
            tokens, cache, backend, last_only=True, capture_queries=capture_queries
        )
        return logits[:, 0]

    def decode_step(
        self, tokens: torch.Tensor, cache: PagedKVCache, backend: AttentionBackend
    ) -> torch.Tensor:
        """Target AR step: one token per request ``[B, 1]``, full KV -> logits ``[B, 1, V]``."""
        if tokens.shape[1] != 1:
            raise ValueError("decode_step takes exactly one token per request")
        return self.forward(tokens, cache, backend)

    def verify_step(
        self, tokens: torch.Tensor, cache: PagedKVCache, backend: AttentionBackend
    ) -> torch.Tensor:
        """Target verify: ``[B, gamma+1]`` tokens, causal among them -> ``[B, gamma+1, V]``."""
        return self.forward(tokens, cache, backend)

    def draft_step(
        self, tokens: torch.Tensor, budget_cache: PagedKVCache, backend: AttentionBackend
    ) -> torch.Tensor:
        """Draft step over a budget cache: ``[B, T]`` tokens (T = 1, or 2 after full acceptance)."""
        return self.forward(tokens, budget_cache, backend)
