"""A LLaMA-family decoder with synthetic (seeded random) or loaded weights, split into timeable ops.

The forward pass is spelled out op by op under the names perfmodel uses, so that the timing work can
call each piece alone:

per layer: ``attn_norm, qkv_proj, rotary, attention, o_proj, allreduce_attn, mlp_norm,
gate_up_proj, act, down_proj, allreduce_mlp``; per step: ``embedding, final_norm, lm_head,
sampling``.

Shapes follow the :class:`~magicdec_model.perfmodel.architecture.ModelArch` record: grouped-query
attention, gated (SiLU) or plain (GELU) MLP, RMSNorm, rotary embedding in the Hugging Face
"rotate half" layout with the model's theta and scaling (linear or llama3), optional QKV bias, tied
or untied LM head.  ``layers=K`` builds only the first K layers (a slice of a big model).
Under tensor parallelism (:mod:`.distributed`) each process holds its shard and the two
``allreduce_*`` ops sum partial outputs; otherwise they return their input.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..perfmodel.architecture import ModelArch, get_model
from ..perfmodel.ops import LAYER_OPS as _PERF_LAYER_OPS
from ..perfmodel.ops import STEP_OPS as _PERF_STEP_OPS

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .attention import AttentionBackend
    from .distributed import TensorParallel
    from .kvcache import PagedKVCache

# The op names are perfmodel's (one list, one place).  The decoder picks the greedy token from the
# gathered logits, so it has no separate argmax all-reduce op.
LAYER_OPS = _PERF_LAYER_OPS
STEP_OPS = tuple(op for op in _PERF_STEP_OPS if op != "allreduce_sampling")


@dataclass
class LayerWeights:
    """Weights of one layer (local shard under TP). Linear weights are ``[out, in]``."""

    attn_norm: torch.Tensor  # [hidden]
    wqkv: torch.Tensor  # [q_dim + 2 kv_dim, hidden]  (Q rows, then K rows, then V rows)
    bqkv: torch.Tensor | None  # [q_dim + 2 kv_dim]
    wo: torch.Tensor  # [hidden, q_dim]
    mlp_norm: torch.Tensor  # [hidden]
    # [2 * inter, hidden] when gated (gate rows, then up rows); [inter, hidden] otherwise
    w_gate_up: torch.Tensor
    w_down: torch.Tensor  # [hidden, inter]


@dataclass
class DecoderWeights:
    """All weights: embedding ``[vocab, hidden]``, layers, final norm, LM head (None when tied)."""

    embedding: torch.Tensor
    layers: Iterable[LayerWeights]  # a list, or a one-shot iterator (built layer by layer)
    final_norm: torch.Tensor
    lm_head: torch.Tensor | None


# --------------------------------------------------------------------------- rotary
def rope_inv_freq(arch: ModelArch) -> torch.Tensor:
    """Inverse frequencies ``[head_dim / 2]`` (rad per position, float64) with the model's scaling.

    Supports no scaling, ``{"type"|"rope_type": "linear", "factor"}`` and the llama3 scheme
    (``factor``, ``low_freq_factor``, ``high_freq_factor``, ``original_max_position_embeddings``):
    wavelengths longer than ``original / low_freq_factor`` are divided by ``factor``, shorter than
    ``original / high_freq_factor`` are kept, and the band between is interpolated linearly in
    ``original / wavelength``.
    """
    import torch

    d = arch.head_dim
    inv = 1.0 / (arch.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = arch.rope_scaling
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind in ("default", None):
        return inv
    factor = float(rs["factor"])
    if kind == "linear":
        return inv / factor
    if kind == "llama3":
        low = float(rs.get("low_freq_factor", 1.0))
        high = float(rs.get("high_freq_factor", 4.0))
        orig = float(rs.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        smooth = ((orig / wavelen) - low) / (high - low)
        mid = (1 - smooth) * inv / factor + smooth * inv
        out = torch.where(wavelen > orig / low, inv / factor, mid)
        return torch.where(wavelen < orig / high, inv, out)
    raise ValueError(f"model {arch.name!r}: unsupported rope_scaling type {kind!r}")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# --------------------------------------------------------------------------- weights
def _seeded(
    shape: tuple[int, ...], seed: int, name: str, std: float, dtype: Any, device: Any = "cpu"
) -> torch.Tensor:
    """Normal(0, std) tensor depending only on (seed, name, shape, device type), built in chunks."""
    import torch

    device = torch.device(device)
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    out = torch.empty(shape, dtype=dtype, device=device)
    flat = out.view(-1)
    chunk = 1 << 22
    for start in range(0, flat.numel(), chunk):
        n = min(chunk, flat.numel() - start)
        flat[start : start + n] = (
            torch.randn(n, generator=g, dtype=torch.float32, device=device) * std
        )
    return out


def synthetic_weights(
    arch: ModelArch,
    layers: int | None = None,
    seed: int = 0,
    dtype: Any = None,
    *,
    device: Any = "cpu",
    lazy: bool = False,
) -> DecoderWeights:
    """Full (unsharded) random weights; each tensor depends only on (seed, its name, device type).

    Linear weights are Normal(0, 1/sqrt(fan_in)), norms 1 + Normal(0, 0.05), embedding Normal(0, 1).
    So ``layers=K`` gives exactly the first K layers of the full model with the same seed.  CPU
    and CUDA random streams differ, so weights generated on a GPU differ from CPU ones.  With
    ``lazy=True`` the layers come as an iterator, generated one at a time (what
    :meth:`Decoder.synthetic` uses, so only one full layer exists before sharding).
    """
    import torch

    dtype = dtype or torch.float32
    n_layers = arch.num_layers if layers is None else layers
    if not 1 <= n_layers <= arch.num_layers:
        raise ValueError(f"layers={layers} must be in 1..{arch.num_layers}")
    h, inter = arch.hidden_size, arch.intermediate_size
    qkv_out = arch.q_dim + 2 * arch.kv_dim
    up_out = 2 * inter if arch.gated_mlp else inter

    def lin(name: str, out_f: int, in_f: int) -> torch.Tensor:
        return _seeded((out_f, in_f), seed, name, 1.0 / math.sqrt(in_f), dtype, device)

    def norm(name: str) -> torch.Tensor:
        return (1.0 + _seeded((h,), seed, name, 0.05, torch.float32, device)).to(dtype)

    def layer(i: int) -> LayerWeights:
        p = f"layers.{i}."
        bias = _seeded((qkv_out,), seed, p + "bqkv", 0.02, dtype, device) if arch.qkv_bias else None
        return LayerWeights(
            attn_norm=norm(p + "attn_norm"),
            wqkv=lin(p + "wqkv", qkv_out, h),
            bqkv=bias,
            wo=lin(p + "wo", h, arch.q_dim),
            mlp_norm=norm(p + "mlp_norm"),
            w_gate_up=lin(p + "w_gate_up", up_out, h),
            w_down=lin(p + "w_down", h, inter),
        )

    layer_iter: Iterator[LayerWeights] = (layer(i) for i in range(n_layers))
    embedding = _seeded((arch.vocab_size, h), seed, "embedding", 1.0, dtype, device)
    lm_head = None if arch.tie_embeddings else lin("lm_head", arch.vocab_size, h)
    return DecoderWeights(
        embedding, layer_iter if lazy else list(layer_iter), norm("final_norm"), lm_head
    )


# --------------------------------------------------------------------------- decoder
class Decoder:
    """A decoder-only transformer whose forward pass is a sequence of named ops.

    Build with :meth:`synthetic` (random weights) or
    :func:`magicdec_model.validate.checkpoint.load_checkpoint` (safetensors on disk).

    Args:
        arch: the architecture record (full model; ``num_layers`` here may exceed the layers held).
        weights: full weights on any device; sharded here when ``tp`` is given.
        device, dtype: where the weights and activations live.
        tp: tensor-parallel group, or None for a single process.
    """

    def __init__(
        self,
        arch: ModelArch,
        weights: DecoderWeights,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        tp: TensorParallel | None = None,
    ) -> None:
        import torch

        self.arch = arch
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.tp = tp
        world = tp.world_size if tp is not None else 1
        if arch.num_kv_heads % world or arch.intermediate_size % world:
            raise ValueError(
                f"tensor parallel {world} must divide num_kv_heads={arch.num_kv_heads} and "
                f"intermediate_size={arch.intermediate_size}"
            )
        self.num_heads = arch.num_heads // world
        self.num_kv_heads = arch.num_kv_heads // world
        self.head_dim = arch.head_dim

        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=self.device, dtype=self.dtype).contiguous()

        self.layers: list[LayerWeights] = []
        for full_layer in weights.layers:  # one layer at a time: shard, then move
            local = full_layer
            if tp is not None:
                from .distributed import shard_layer

                local = shard_layer(full_layer, arch, tp.rank, world)
            self.layers.append(LayerWeights(**{k: mv(v) for k, v in vars(local).items()}))
        self.num_layers = len(self.layers)
        self.embed = mv(weights.embedding)
        self.final_norm_w = mv(weights.final_norm)
        self.head = self.embed if weights.lm_head is None else mv(weights.lm_head)
        # vocab-parallel LM head under TP (as MagicDec): each rank holds V / W rows
        self.vocab_parallel = tp is not None and world > 1 and arch.vocab_size % world == 0
        if self.vocab_parallel:
            v_local = arch.vocab_size // world
            full = weights.embedding if weights.lm_head is None else weights.lm_head
            self.head = mv(full[tp.rank * v_local : (tp.rank + 1) * v_local])
        # rotary angles in fp32 (fp64 for fp64 models, which tests use for exact comparisons)
        self._rope_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        self.inv_freq = rope_inv_freq(arch).to(device=self.device, dtype=self._rope_dtype)
        self.captured_queries: list[torch.Tensor] = []

    @classmethod
    def synthetic(
        cls,
        model: str | ModelArch,
        *,
        layers: int | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        tp: TensorParallel | None = None,
    ) -> Decoder:
        """Random-weight decoder for a registry name, a config.json path or a :class:`ModelArch`.

        ``layers=K`` keeps the first K layers; default dtype is bf16 on CUDA and fp32 on CPU.
        """
        import torch

        arch = get_model(model)
        device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        w = synthetic_weights(arch, layers=layers, seed=seed, dtype=dtype, device=device, lazy=True)
        return cls(arch, w, device=device, dtype=dtype, tp=tp)

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
        import torch

        xf = x.float() if x.element_size() < 4 else x
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.arch.rms_norm_eps)
        return xf.to(x.dtype) * w

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm of the last hidden states ``[B, T, hidden]``."""
        return self._rmsnorm(x, self.final_norm_w)

    def lm_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` (tied heads reuse the embedding matrix).

        Under TP the head is split by vocabulary and the local logits are all-gathered.
        """
        logits = x @ self.head.T
        if self.vocab_parallel:
            logits = self.tp.all_gather_last(logits)
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
        import torch

        ang = positions.to(self._rope_dtype)[..., None] * self.inv_freq
        ang = torch.cat((ang, ang), dim=-1)[:, :, None, :]
        return ang.cos(), ang.sin()

    def rotary(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply rotary embedding to q and k (computed in fp32, returned in the model dtype)."""
        import torch

        cdt = torch.float64 if q.dtype == torch.float64 else torch.float32
        c, s = cos.to(cdt), sin.to(cdt)
        qf, kf = q.to(cdt), k.to(cdt)
        q2 = qf * c + _rotate_half(qf) * s
        k2 = kf * c + _rotate_half(kf) * s
        return q2.to(q.dtype), k2.to(k.dtype)

    def rerotate_keys(self, k: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Rotate already-rotated keys ``[B, n, H_kv, D]`` by ``delta`` ``[n]`` more positions.

        Rotary rotations compose additively, so a key rotated at position p becomes the key at
        ``p + delta`` (used to re-index a StreamingLLM cache).
        """
        import torch

        cos, sin = self.rotary_tables(delta[None, :])
        cdt = torch.float64 if k.dtype == torch.float64 else torch.float32
        kf = k.to(cdt)
        return (kf * cos.to(cdt) + _rotate_half(kf) * sin.to(cdt)).to(k.dtype)

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
        return x if self.tp is None else self.tp.all_reduce(x)

    def mlp_norm(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm before the MLP."""
        return self._rmsnorm(x, self.layers[layer].mlp_norm)

    def gate_up_proj(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Fused gate and up projection ``[B, T, 2 * inter]`` (``[B, T, inter]`` without gating)."""
        return x @ self.layers[layer].w_gate_up.T

    def act(self, gu: torch.Tensor) -> torch.Tensor:
        """SiLU(gate) * up for gated MLPs, GELU otherwise."""
        import torch

        if self.arch.gated_mlp:
            g, u = gu.chunk(2, dim=-1)
            return torch.nn.functional.silu(g) * u
        return torch.nn.functional.gelu(gu)

    def down_proj(self, layer: int, a: torch.Tensor) -> torch.Tensor:
        """Down projection (a partial sum under TP)."""
        return a @ self.layers[layer].w_down.T

    def allreduce_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the MLP output over TP ranks (identity on one process)."""
        return x if self.tp is None else self.tp.all_reduce(x)

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
        return self.lm_head(self.final_norm(x))

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
