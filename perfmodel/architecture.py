"""Model architecture records and the built-in registry.

A :class:`ModelArch` holds what the cost model and the validator's synthetic decoder need: shapes,
the MLP kind, rotary settings, the element size, and for today's models mixture-of-experts (MoE)
layers, multi-head latent attention (MLA), sliding-window layers, a multi-token-prediction (MTP)
module and the checkpoint's native number formats.  The defaults describe a dense LLaMA-family
decoder, so records written before those fields existed mean what they meant.  Built-in entries
live as TOML files in ``perfmodel/data/models/`` with their source; the Hugging Face
``config.json`` reader is :mod:`.hf_config` (re-exported here).

Parameter counts follow the checkpoints' tensors: every projection, bias, norm weight, router and
expert, the embedding table and an untied LM head.  Vision towers of multimodal checkpoints
(Gemma-3) are not part of the record.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, closest
from .number_formats import FORMAT_BITS, FORMAT_OF_DTYPE_BYTES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Config families the record distinguishes (``ModelArch.family``); see :mod:`.hf_config`.
FAMILIES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
    "gemma2",
    "gemma3",
    "gpt_oss",
)

_POSITIVE_INTS = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                  "intermediate_size", "vocab_size", "max_positions", "dtype_bytes")
#: Largest size a record may hold (elements, tokens, layers): keeps every product of sizes exact.
_MAX_SIZE = 2**31 - 1
_NONNEG_INTS = ("norms_per_layer", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                "qk_rope_head_dim", "v_head_dim", "num_experts", "experts_per_token",
                "expert_intermediate_size", "num_shared_experts", "shared_expert_intermediate_size",
                "mtp_layers")
_BOOLS = ("tie_embeddings", "gated_mlp", "qkv_bias", "o_bias", "qk_norm", "attn_sinks",
          "shared_expert_gate", "router_bias", "mlp_bias")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only transformer: sizes in elements, ``dtype_bytes`` in bytes, windows in tokens.

    Dense LLaMA-family fields (meaning unchanged):

    - ``intermediate_size``: MLP width of a dense layer; in an MoE model it is the config's value
      and applies only to the layers in ``dense_layers`` (none for Mixtral, Qwen3-MoE, gpt-oss).
    - ``sliding_window``: window (tokens) of the windowed layers; ``None``: every layer global.
    - ``dtype_bytes``: bytes per element of activations, and for now of the weights and KV cache
      the cost model charges (``weight_dtype`` records what the checkpoint stores).

    New fields (defaults: a dense LLaMA model):

    - ``family``: the config family the record was read as (one of :data:`FAMILIES`).
    - ``global_layers``: with ``sliding_window`` set, indices of the layers that attend to the whole
      context; every other layer reads at most ``sliding_window`` tokens.  Empty: all windowed.
    - ``o_bias``, ``qk_norm``, ``attn_sinks``, ``norms_per_layer``: an output-projection bias; per-
      head RMSNorm weights on queries and keys (Qwen3, Gemma-3); one learned sink logit per head
      and layer (gpt-oss, a few hundred bytes: counted as parameters, nothing else); RMSNorm weight
      vectors per layer (2, Gemma-2/3: 4).
    - MLA (DeepSeek-V2/V3, Kimi-K2), active when ``kv_lora_rank > 0``: ``q_lora_rank`` (0: queries
      projected directly), ``kv_lora_rank``, ``qk_nope_head_dim``, ``qk_rope_head_dim``,
      ``v_head_dim``.  ``head_dim`` is then the query/key head width nope + rope and
      ``num_kv_heads`` equals ``num_heads``; the cache holds one latent of kv_lora_rank + rope
      elements per token and layer, shared by all heads.
    - MoE, active when ``num_experts > 0``: ``num_experts`` routed experts per MoE layer,
      ``experts_per_token`` (top-k), ``expert_intermediate_size`` (one routed expert's MLP width),
      ``num_shared_experts`` always-on experts of ``shared_expert_intermediate_size`` each,
      ``shared_expert_gate`` (Qwen2-MoE's sigmoid gate, h weights), ``dense_layers`` (indices of
      layers with a dense MLP instead), ``router_bias`` (one bias per expert: gpt-oss, DeepSeek-V3's
      score-correction bias), ``mlp_bias`` (biases on MLP/expert projections: gpt-oss).
    - ``mtp_layers``: DeepSeek-V3 multi-token-prediction modules (``num_nextn_predict_layers``),
      not counted in :meth:`param_count`; see :meth:`mtp_param_count`.
    - ``weight_dtype``, ``expert_weight_dtype``: the checkpoint's native format of its weights and,
      where it differs, of its routed experts (names in :data:`.number_formats.FORMAT_BITS`;
      "" = as the activations); ``quantization``: the config's ``quantization_config`` as data.
    """

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_positions: int = 4096
    tie_embeddings: bool = False
    gated_mlp: bool = True
    qkv_bias: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    rms_norm_eps: float = 1e-5
    sliding_window: int | None = None
    dtype_bytes: int = 2
    hf_id: str = ""
    source: str = ""
    family: str = "llama"
    global_layers: tuple[int, ...] = ()
    o_bias: bool = False
    qk_norm: bool = False
    attn_sinks: bool = False
    norms_per_layer: int = 2
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    num_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    dense_layers: tuple[int, ...] = ()
    router_bias: bool = False
    mlp_bias: bool = False
    mtp_layers: int = 0
    weight_dtype: str = ""
    expert_weight_dtype: str = ""
    quantization: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        bad = f"model {self.name!r}:"
        for attr in _POSITIVE_INTS:
            value = getattr(self, attr)
            if not _is_int(value) or value <= 0 or value > _MAX_SIZE:
                raise InputError(f"{bad} {attr}={value!r} must be a positive integer at most "
                                 f"{_MAX_SIZE:,}")
        for attr in _NONNEG_INTS:
            value = getattr(self, attr)
            if not _is_int(value) or value < 0 or value > _MAX_SIZE:
                raise InputError(f"{bad} {attr}={value!r} must be a non-negative integer at most "
                                 f"{_MAX_SIZE:,}")
        for attr in _BOOLS:
            value = getattr(self, attr)
            if not isinstance(value, bool):
                raise InputError(f"{bad} {attr}={value!r} must be true or false")
        for attr in ("rope_theta", "rms_norm_eps"):
            value = getattr(self, attr)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise InputError(f"{bad} {attr}={value!r} must be a positive number")
        if self.family not in FAMILIES:
            raise InputError(f"{bad} family={self.family!r} is not known; allowed: {', '.join(FAMILIES)}")
        if self.num_heads % self.num_kv_heads:
            raise InputError(
                f"{bad} num_attention_heads={self.num_heads} is not a multiple of "
                f"num_key_value_heads={self.num_kv_heads}"
            )
        object.__setattr__(self, "global_layers", self._layer_set("global_layers"))
        object.__setattr__(self, "dense_layers", self._layer_set("dense_layers"))
        self._check_window()
        self._check_mla()
        self._check_moe()
        for attr in ("weight_dtype", "expert_weight_dtype"):
            value = getattr(self, attr)
            if not isinstance(value, str) or (value and value not in FORMAT_BITS):
                raise InputError(
                    f"{bad} {attr}={value!r} is not a known number format; allowed: "
                    f"{', '.join(FORMAT_BITS)} or '' (as the activations)"
                )

    # ------------------------------------------------------------------ validation helpers
    def _layer_set(self, attr: str) -> tuple[int, ...]:
        value = getattr(self, attr)
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise InputError(f"model {self.name!r}: {attr}={value!r} must be a list of layer indices")
        out = tuple(value)
        for i in out:
            if not _is_int(i) or not 0 <= i < self.num_layers:
                raise InputError(
                    f"model {self.name!r}: {attr} holds {i!r}; layer indices run 0..{self.num_layers - 1}"
                )
        if len(set(out)) != len(out) or list(out) != sorted(out):
            raise InputError(f"model {self.name!r}: {attr}={list(out)} must be increasing, without repeats")
        return tuple(int(i) for i in out)

    def _check_window(self) -> None:
        w = self.sliding_window
        if w is not None and (not _is_int(w) or w <= 0):
            raise InputError(f"model {self.name!r}: sliding_window={w!r} must be a positive integer or unset")
        if w is None and self.global_layers:
            raise InputError(f"model {self.name!r}: global_layers is set but sliding_window is not")

    def _check_mla(self) -> None:
        mla = (self.q_lora_rank, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim)
        if not self.kv_lora_rank:
            if any(mla):
                raise InputError(f"model {self.name!r}: MLA head sizes are set but kv_lora_rank is 0")
            return
        if not (self.qk_nope_head_dim and self.qk_rope_head_dim and self.v_head_dim):
            raise InputError(
                f"model {self.name!r}: an MLA model (kv_lora_rank={self.kv_lora_rank}) needs positive "
                f"qk_nope_head_dim, qk_rope_head_dim and v_head_dim"
            )
        if self.head_dim != self.qk_nope_head_dim + self.qk_rope_head_dim:
            raise InputError(
                f"model {self.name!r}: head_dim={self.head_dim} must equal qk_nope_head_dim + "
                f"qk_rope_head_dim = {self.qk_nope_head_dim + self.qk_rope_head_dim} for MLA"
            )
        if self.num_kv_heads != self.num_heads:
            raise InputError(f"model {self.name!r}: an MLA record has num_kv_heads == num_heads")

    def _check_moe(self) -> None:
        name = self.name
        if not self.num_experts:
            if (self.experts_per_token or self.expert_intermediate_size or self.num_shared_experts
                    or self.shared_expert_intermediate_size or self.dense_layers or self.router_bias
                    or self.shared_expert_gate or self.expert_weight_dtype):
                raise InputError(f"model {name!r}: MoE fields are set but num_experts is 0")
            return
        if not 1 <= self.experts_per_token <= self.num_experts:
            raise InputError(
                f"model {name!r}: experts_per_token={self.experts_per_token} must be in "
                f"1..num_experts={self.num_experts}"
            )
        if not self.expert_intermediate_size:
            raise InputError(f"model {name!r}: an MoE model needs expert_intermediate_size > 0")
        if bool(self.num_shared_experts) != bool(self.shared_expert_intermediate_size):
            raise InputError(
                f"model {name!r}: num_shared_experts={self.num_shared_experts} and "
                f"shared_expert_intermediate_size={self.shared_expert_intermediate_size} must both be 0 "
                f"or both positive"
            )
        if self.shared_expert_gate and not self.num_shared_experts:
            raise InputError(f"model {name!r}: shared_expert_gate needs a shared expert")

    # ------------------------------------------------------------------ attention shapes
    @property
    def q_dim(self) -> int:
        """Width of the query projection output (elements)."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of one of the K or V projection outputs (elements); not the MLA cache width."""
        return self.num_kv_heads * self.head_dim

    @property
    def gqa_group(self) -> int:
        """Query heads per KV head."""
        return self.num_heads // self.num_kv_heads

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (``kv_lora_rank > 0``)."""
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model (``num_experts > 0``)."""
        return self.num_experts > 0

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based; MTP modules count from ``num_layers``) has routed experts."""
        return self.is_moe and layer not in self.dense_layers

    @property
    def num_moe_layers(self) -> int:
        """Number of layers with routed experts."""
        return self.num_layers - len(self.dense_layers) if self.is_moe else 0

    # ------------------------------------------------------------------ windows and KV cache
    def layer_windows(self) -> tuple[int | None, ...]:
        """Per layer: the attention window in tokens, or ``None`` for a global layer."""
        w = self.sliding_window
        if w is None:
            return (None,) * self.num_layers
        glob = set(self.global_layers)
        return tuple(None if i in glob else w for i in range(self.num_layers))

    def layer_kv_tokens(self, seq_len: Any) -> np.ndarray:
        """KV tokens each layer stores and each decode query reads at a context of ``seq_len`` tokens.

        A windowed layer keeps the last ``sliding_window`` tokens (the query's own included), so
        min(seq_len, window); a global layer all ``seq_len``.  ``seq_len`` broadcasts: the result
        has shape ``(num_layers,) + shape(seq_len)`` (tokens, float).
        """
        s = np.asarray(seq_len, dtype=float)
        w = np.array([np.inf if x is None else float(x) for x in self.layer_windows()])
        return np.minimum(s[None, ...], w.reshape((-1,) + (1,) * s.ndim))

    def kv_bytes_per_token_per_layer(self, kv_dtype_bytes: float | None = None) -> float:
        """Bytes one token adds to one layer's cache: K and V of every KV head, or MLA's latent.

        MLA: (kv_lora_rank + qk_rope_head_dim) elements, one latent shared by all heads (DeepSeek-V2
        paper §2.1.2).  ``kv_dtype_bytes`` defaults to ``dtype_bytes``.
        """
        b = self.dtype_bytes if kv_dtype_bytes is None else kv_dtype_bytes
        if self.is_mla:
            return float((self.kv_lora_rank + self.qk_rope_head_dim) * b)
        return float(2 * self.kv_dim * b)

    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache per cached token over all layers, no window applied (bytes)."""
        return int(round(self.num_layers * self.kv_bytes_per_token_per_layer()))

    def kv_cache_bytes(self, seq_len: Any, kv_dtype_bytes: float | None = None) -> np.ndarray:
        """Bytes of one sequence's KV cache at ``seq_len`` tokens, windows applied (broadcasts)."""
        per_layer = self.kv_bytes_per_token_per_layer(kv_dtype_bytes)
        return self.layer_kv_tokens(seq_len).sum(axis=0) * per_layer

    # ------------------------------------------------------------------ parameters
    def attention_params(self) -> int:
        """Parameters of one layer's attention: projections, biases, q/k norms, sinks (elements)."""
        h = self.hidden_size
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.num_heads * qk
            else:
                q = h * self.num_heads * qk
            kv = (h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
                  + self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim))
            o = self.num_heads * self.v_head_dim * h
            n = q + kv + o
        else:
            n = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
            if self.qkv_bias:
                n += self.q_dim + 2 * self.kv_dim
        if self.o_bias:
            n += h
        if self.qk_norm:
            n += 2 * self.head_dim
        if self.attn_sinks:
            n += self.num_heads
        return n

    def _mlp_params(self, width: int) -> int:
        h = self.hidden_size
        n = (3 if self.gated_mlp else 2) * h * width
        if self.mlp_bias:
            n += (2 * width if self.gated_mlp else width) + h
        return n

    def dense_mlp_params(self) -> int:
        """Parameters of a dense layer's MLP (elements)."""
        return self._mlp_params(self.intermediate_size)

    def expert_params(self) -> int:
        """Parameters of one routed expert (elements); 0 for a dense model."""
        return self._mlp_params(self.expert_intermediate_size) if self.is_moe else 0

    def shared_expert_params(self) -> int:
        """Parameters of all shared experts of one MoE layer, with Qwen2-MoE's gate (elements)."""
        n = self.num_shared_experts * self._mlp_params(self.shared_expert_intermediate_size)
        return n + (self.hidden_size if self.shared_expert_gate else 0)

    def router_params(self) -> int:
        """Parameters of one MoE layer's router: h x E weights and an optional bias (elements)."""
        if not self.is_moe:
            return 0
        return self.hidden_size * self.num_experts + (self.num_experts if self.router_bias else 0)

    def layer_params(self, layer: int = 0) -> int:
        """Parameters of layer ``layer``: attention, its MLP or MoE block, its norm weights."""
        n = self.attention_params() + self.norms_per_layer * self.hidden_size
        if self.is_moe_layer(layer):
            return n + self.num_experts * self.expert_params() + self.shared_expert_params() \
                + self.router_params()
        return n + self.dense_mlp_params()

    def param_breakdown(self) -> dict[str, int]:
        """Parameters by group over the whole model (elements); ``mtp`` is not in the total.

        Keys: embedding, lm_head (0 when tied), attention, norms (per-layer and final),
        dense_mlp, routed_experts, shared_experts, router, mtp.
        """
        h, L = self.hidden_size, self.num_layers
        moe = self.num_moe_layers
        return {
            "embedding": self.vocab_size * h,
            "lm_head": 0 if self.tie_embeddings else self.vocab_size * h,
            "attention": L * self.attention_params(),
            "norms": L * self.norms_per_layer * h + h,
            "dense_mlp": (L - moe) * self.dense_mlp_params(),
            "routed_experts": moe * self.num_experts * self.expert_params(),
            "shared_experts": moe * self.shared_expert_params(),
            "router": moe * self.router_params(),
            "mtp": self.mtp_param_count(),
        }

    def param_count(self) -> int:
        """Total parameters: embeddings, untied LM head, layers, final norm; no MTP module."""
        parts = self.param_breakdown()
        return sum(v for k, v in parts.items() if k != "mtp")

    def active_param_count(self, embedding: bool = True) -> int:
        """Parameters one token's forward pass uses: top-k and shared experts of each MoE layer.

        ``embedding=True`` counts the input embedding table in full (Mistral's and Qwen's
        convention); ``False`` leaves it out, as only one row is read (gpt-oss's and DeepSeek's
        convention).  The LM head (tied or not) is always counted.  Dense models: equals
        :meth:`param_count` with ``embedding=True``.
        """
        p = self.param_breakdown()
        k = self.experts_per_token if self.is_moe else 0
        routed_active = self.num_moe_layers * k * self.expert_params()
        head = self.vocab_size * self.hidden_size
        emb = p["embedding"] if (embedding and not self.tie_embeddings) else 0
        return (p["attention"] + p["norms"] + p["dense_mlp"] + routed_active + p["shared_experts"]
                + p["router"] + head + emb)

    def mtp_param_count(self) -> int:
        """Parameters of the MTP modules (elements), embedding and output head shared with the model.

        Each module (DeepSeek-V3 technical report §2.2): RMSNorms on the hidden state and on the
        next token's embedding (2h), the projection M of the concatenation (2h x h), one decoder
        layer like the model's last one (MoE where the model is), and the RMSNorm before the shared
        head (h, ``shared_head.norm`` in the checkpoint).
        """
        if not self.mtp_layers:
            return 0
        h = self.hidden_size
        one = 2 * h + 2 * h * h + self.layer_params(self.num_layers) + h
        return self.mtp_layers * one

    def weight_bytes(self) -> int:
        """Bytes of all weights at ``dtype_bytes`` per element (no MTP module)."""
        return self.param_count() * self.dtype_bytes

    def weight_format(self, expert: bool = False) -> str:
        """The checkpoint's format of its weights (or of its routed experts, ``expert=True``)."""
        if expert and self.expert_weight_dtype:
            return self.expert_weight_dtype
        return self.weight_dtype or FORMAT_OF_DTYPE_BYTES.get(self.dtype_bytes, "bf16")


_DATA = "data/models"


@cache
def _builtin_files() -> dict[str, str]:
    root = resources.files("magicdec_model.perfmodel").joinpath(_DATA)
    return {
        p.name[: -len(".toml")]: p.read_text(encoding="utf-8")
        for p in root.iterdir()
        if p.name.endswith(".toml")
    }


def builtin_model_names() -> list[str]:
    """Names of the built-in registry models, sorted."""
    return sorted(_builtin_files())


def _from_record(rec: dict[str, Any]) -> ModelArch:
    known = set(ModelArch.__dataclass_fields__)
    unknown = set(rec) - known
    if unknown:
        raise InputError(f"model record has unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    return ModelArch(**rec)


@cache
def builtin_model(name: str) -> ModelArch:
    """Return a built-in model by registry name (e.g. ``"llama-3.1-8b"``)."""
    files = _builtin_files()
    if name not in files:
        raise InputError(
            f"unknown model {name!r}; closest known: {closest(name, files)} "
            f"(see 'magicdec-model models list', or pass a path to a config.json)"
        )
    return _from_record(tomllib.loads(files[name]))


@cache
def _registry_aliases() -> dict[str, str]:
    """Lower-cased registry names and Hugging Face ids -> registry name."""
    out: dict[str, str] = {}
    for name, text in _builtin_files().items():
        hf_id = tomllib.loads(text).get("hf_id", "")
        if hf_id:
            out[hf_id.lower()] = name
        out[name.lower()] = name
    return out


def registry_name(spec: str) -> str | None:
    """The registry name that ``spec`` names, or None.

    ``spec`` may be a registry name in any case (``LLaMA-3.1-8B``) or a record's Hugging Face id
    in any case (``meta-llama/Llama-3.1-8B``).
    """
    return _registry_aliases().get(str(spec).strip().lower())


def get_model(spec: str | ModelArch) -> ModelArch:
    """Resolve a record, a path to a ``config.json`` (or its folder), a registry name or a
    registry record's Hugging Face id (names and ids in any case).

    An existing path wins over a registry id of the same spelling.
    """
    if isinstance(spec, ModelArch):
        return spec
    from .inputs import nonempty

    nonempty(spec, "--model", "a registry name (see 'magicdec-model models list'), a Hugging Face id "
             "or a path to a config.json (or its folder)")
    path = Path(spec)
    if spec and (path.is_file() or path.is_dir()):
        return load_hf_config(spec)
    name = registry_name(spec)
    if name is not None:
        return builtin_model(name)
    if spec.endswith(".json") or "/" in spec or "\\" in spec:
        if _looks_like_hf_id(spec):
            hf_ids = {k: get_model(v).hf_id for k, v in _registry_aliases().items() if "/" in k}
            raise InputError(
                f"model {spec!r} is neither a file nor the Hugging Face id of a registry model; "
                f"closest known: {_closest_ids(spec, hf_ids)} (see 'magicdec-model models list', "
                f"or pass a path to a downloaded config.json)"
            )
        return load_hf_config(spec)
    return builtin_model(spec)


def _closest_ids(spec: str, hf_ids: dict[str, str]) -> str:
    """The closest registry Hugging Face ids to ``spec`` (compared in lower case, shown as spelt)."""
    hint = closest(spec.lower(), hf_ids)
    return ", ".join(hf_ids.get(k, k) for k in hint.split(", "))


def _looks_like_hf_id(spec: str) -> bool:
    """'org/name' (one slash, no file suffix, not a relative or absolute path)."""
    one_slash = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", spec) is not None
    return one_slash and not spec.endswith(".json")


def tokenizer_family(arch: ModelArch) -> str:
    """A label for draft/target pairing: models of one family share a vocabulary.

    Vocabulary size decides, except where two tokenizers share a size: Mistral's 32000-entry
    SentencePiece vocabulary is not Llama-2's, and Qwen3 adds thinking tokens to Qwen2.5's.
    """
    v = arch.vocab_size
    if arch.family in ("mistral", "mixtral"):
        return f"mistral-vocab{v}"
    if arch.family in ("qwen3", "qwen3_moe"):
        return "qwen3"
    if v == 32000:
        return "llama2"
    if v == 128256:
        return "llama3"
    if v in (151936, 152064):
        return "qwen2"
    if v == 64000:
        return "yi"
    if v in (262144, 262208):
        return "gemma3"
    return f"vocab{v}"


# The reader needs ModelArch (defined above); the package imports this module first.
from .hf_config import from_hf_config, load_hf_config  # noqa: E402

__all__ = [
    "FAMILIES",
    "ModelArch",
    "builtin_model",
    "builtin_model_names",
    "from_hf_config",
    "get_model",
    "load_hf_config",
    "tokenizer_family",
]
