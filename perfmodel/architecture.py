"""Model architecture records: the built-in registry and the Hugging Face config.json reader.

A :class:`ModelArch` holds only what the cost model and the validator's synthetic decoder need:
shapes, the MLP kind, rotary settings and the element size.  Built-in entries live as TOML
files in ``perfmodel/data/models/`` with their source.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only LLaMA-family architecture (sizes in elements, ``dtype_bytes`` in bytes)."""

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

    def __post_init__(self) -> None:
        for attr in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "max_positions",
            "dtype_bytes",
        ):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"model {self.name!r}: {attr}={value!r} must be a positive integer")
        if self.num_heads % self.num_kv_heads:
            raise InputError(
                f"model {self.name!r}: num_attention_heads={self.num_heads} is not a multiple of "
                f"num_key_value_heads={self.num_kv_heads}"
            )

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (elements)."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of one of the K or V projection outputs (elements)."""
        return self.num_kv_heads * self.head_dim

    @property
    def gqa_group(self) -> int:
        """Query heads per KV head."""
        return self.num_heads // self.num_kv_heads

    def layer_params(self) -> int:
        """Parameters of one transformer layer (attention, MLP, two RMSNorm weights)."""
        h = self.hidden_size
        attn = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
        if self.qkv_bias:
            attn += self.q_dim + 2 * self.kv_dim
        mlp = (3 if self.gated_mlp else 2) * h * self.intermediate_size
        return attn + mlp + 2 * h

    def param_count(self) -> int:
        """Total parameters: embeddings, untied LM head, layers, final norm."""
        emb = self.vocab_size * self.hidden_size
        head = 0 if self.tie_embeddings else emb
        return emb + head + self.num_layers * self.layer_params() + self.hidden_size

    def weight_bytes(self) -> int:
        """Bytes of all weights at ``dtype_bytes`` per element."""
        return self.param_count() * self.dtype_bytes

    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cache per token over all layers (bytes)."""
        return 2 * self.num_layers * self.kv_dim * self.dtype_bytes


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


def _require_int(cfg: dict[str, Any], key: str, path: str) -> int:
    if key not in cfg:
        raise InputError(f"config {path}: missing required key {key!r}")
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"config {path}: {key}={value!r} must be a positive integer")
    return value


_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float8_e4m3fn": 1, "float8": 1}


def from_hf_config(cfg: dict[str, Any], name: str = "custom", path: str = "<dict>") -> ModelArch:
    """Build a :class:`ModelArch` from a Hugging Face LLaMA-family ``config.json`` dict.

    Missing ``num_key_value_heads`` means multi-head attention; missing ``head_dim`` means
    ``hidden_size // num_attention_heads``; ``tie_word_embeddings`` is honoured.
    """
    if not isinstance(cfg, dict):
        raise InputError(f"config {path}: expected a JSON object, got {type(cfg).__name__}")
    h = _require_int(cfg, "hidden_size", path)
    heads = _require_int(cfg, "num_attention_heads", path)
    layers = _require_int(cfg, "num_hidden_layers", path)
    inter = _require_int(cfg, "intermediate_size", path)
    vocab = _require_int(cfg, "vocab_size", path)
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or h // heads
    if h % heads and "head_dim" not in cfg:
        raise InputError(
            f"config {path}: hidden_size={h} is not divisible by num_attention_heads={heads} "
            f"and no head_dim is given"
        )
    hidden_act = cfg.get("hidden_act", "silu")
    dtype = str(cfg.get("torch_dtype", "bfloat16")).replace("torch.", "")
    return ModelArch(
        name=name,
        hidden_size=h,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        max_positions=cfg.get("max_position_embeddings") or 4096,
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        gated_mlp=hidden_act in ("silu", "swish", "gelu", "gelu_pytorch_tanh"),
        qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        rope_scaling=cfg.get("rope_scaling"),
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        sliding_window=cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None,
        dtype_bytes=_DTYPE_BYTES.get(dtype, 2),
        hf_id=str(cfg.get("_name_or_path", "")),
        source=f"config.json at {path}",
    )


def load_hf_config(path: str | Path) -> ModelArch:
    """Read a Hugging Face ``config.json`` file (or a folder holding one) into a :class:`ModelArch`."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise InputError(f"config file {str(p)!r} does not exist")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config {p}: not valid JSON ({exc.__class__.__name__}: {exc})") from None
    name = p.parent.name or p.stem
    return from_hf_config(cfg, name=name, path=str(p))


def get_model(spec: str | ModelArch) -> ModelArch:
    """Resolve a registry name, a path to a ``config.json`` (or its folder), or a record."""
    if isinstance(spec, ModelArch):
        return spec
    if spec.endswith(".json") or "/" in spec or Path(spec).is_dir():
        return load_hf_config(spec)
    return builtin_model(spec)


def tokenizer_family(arch: ModelArch) -> str:
    """A label for draft/target pairing: models of one family share a vocabulary."""
    v = arch.vocab_size
    if v == 32000:
        return "llama2"
    if v == 128256:
        return "llama3"
    if v in (151936, 152064):
        return "qwen2"
    if v == 64000:
        return "yi"
    return f"vocab{v}"
