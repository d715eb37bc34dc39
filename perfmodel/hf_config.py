"""Read a Hugging Face ``config.json`` into a :class:`~.architecture.ModelArch`.

Families read (by ``model_type``, or by ``architectures`` where ``model_type`` is absent): llama,
mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, deepseek_v2, deepseek_v3 (and kimi_k2, a
DeepSeek-V3 architecture), gemma2, gemma3 / gemma3_text (the text decoder; a multimodal Gemma-3
config nests it under ``text_config``; the vision tower is not modelled) and gpt_oss.  Anything
else, state-space and hybrid models (mamba, jamba, ...) included, is refused with a one-line
:class:`~.errors.InputError` naming what is supported.  A config with neither key is read as
LLaMA-family (the validator's synthetic configs); there, and only there, a ``hidden_act`` other
than silu/swish/gelu/gelu_pytorch_tanh means an ungated MLP.

Every value is type-checked: a boolean, string, null, float or out-of-range number where an
integer, number or boolean is expected raises an error naming the key, the value and what is
allowed; nothing is replaced by a default except where the key is absent (defaults below, those of
the transformers config class of the family) or where transformers itself reads null as "absent"
(``num_key_value_heads``, ``head_dim``, ``q_lora_rank``, ``n_routed_experts``, ``n_shared_experts``,
``sliding_window``); the numbers inside ``rope_scaling`` and ``quantization_config`` are checked
too.  ``torch_dtype`` (or ``dtype``) must be a floating-point dtype: int8 and other
integer or unknown dtypes are refused (quantized checkpoints describe their weights in
``quantization_config``, which is read for fp8, mxfp4, awq and gptq).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .architecture import ModelArch
from .errors import InputError

#: model_type -> family.
MODEL_TYPES: dict[str, str] = {
    "llama": "llama",
    "mistral": "mistral",
    "mixtral": "mixtral",
    "qwen2": "qwen2",
    "qwen2_moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3_moe",
    "deepseek_v2": "deepseek_v2",
    "deepseek_v3": "deepseek_v3",
    "kimi_k2": "deepseek_v3",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "gpt_oss": "gpt_oss",
}

#: architectures entry -> family (used when model_type is absent).
ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "LLaMAForCausalLM": "llama",  # early LLaMA conversions
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "GptOssForCausalLM": "gpt_oss",
}

#: torch_dtype -> bytes per element.
DTYPES: dict[str, int] = {
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "float32": 4,
    "float": 4,
    "float8_e4m3fn": 1,
    "float8": 1,
    "float8_e5m2": 1,
}

#: Values used where a key is absent (transformers' config-class defaults for the family; the
#: LLaMA-family ones are this project's historical defaults: 4096 positions, eps 1e-5).
_BASE_DEFAULTS: dict[str, Any] = {
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen2": {"rms_norm_eps": 1e-6, "use_sliding_window": False, "max_window_layers": 28},
    "qwen2_moe": {"rms_norm_eps": 1e-6, "use_sliding_window": False, "max_window_layers": 28,
                  "decoder_sparse_step": 1},
    "qwen3": {"rms_norm_eps": 1e-6, "use_sliding_window": False, "max_window_layers": 28},
    "qwen3_moe": {"rms_norm_eps": 1e-6, "use_sliding_window": False, "max_window_layers": 28,
                  "decoder_sparse_step": 1},
    "deepseek_v2": {"rms_norm_eps": 1e-6, "first_k_dense_replace": 0, "moe_layer_freq": 1,
                    "topk_method": "greedy"},
    "deepseek_v3": {"rms_norm_eps": 1e-6, "first_k_dense_replace": 0, "moe_layer_freq": 1,
                    "topk_method": "noaux_tc"},
    # transformers Gemma2Config / Gemma3TextConfig defaults
    "gemma2": {"vocab_size": 256000, "head_dim": 256, "max_position_embeddings": 8192,
               "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "sliding_window": 4096},
    "gemma3": {"vocab_size": 262208, "head_dim": 256, "max_position_embeddings": 131072,
               "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "tie_word_embeddings": True,
               "sliding_window": 4096, "sliding_window_pattern": 6},
    "gpt_oss": {"rms_norm_eps": 1e-5, "max_position_embeddings": 131072},
}

_REQUIRED = object()
#: Numeric keys of rope_scaling (llama3, linear, yarn) checked as positive numbers.
_ROPE_NUMBERS = ("factor", "low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow", "mscale",
                 "mscale_all_dim", "attention_factor")
_GATED_ACTS = ("silu", "swish", "gelu", "gelu_pytorch_tanh")
_LAYER_TYPES = ("sliding_attention", "full_attention")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Keys:
    """Typed access to one config object; every bad value raises a one-line :class:`InputError`."""

    def __init__(self, cfg: dict[str, Any], path: str, prefix: str, defaults: dict[str, Any]):
        self.cfg, self.path, self.prefix, self.defaults = cfg, path, prefix, defaults

    def fail(self, key: str, value: Any, allowed: str) -> InputError:
        return InputError(f"config {self.path}: {self.prefix}{key}={_short(value)} is not allowed; "
                          f"expected {allowed}, got {_kind(value)}")

    def _default(self, key: str, default: Any) -> Any:
        if default is not _REQUIRED:
            return default
        if key in self.defaults:
            return self.defaults[key]
        raise InputError(f"config {self.path}: missing required key {self.prefix + key!r}")

    def has(self, key: str) -> bool:
        return key in self.cfg

    def int(self, key: str, default: Any = _REQUIRED, minimum: int = 1, null_is_absent: bool = False) -> Any:
        """An integer >= ``minimum``; absent (or null where ``null_is_absent``) -> ``default``."""
        if key not in self.cfg or (null_is_absent and self.cfg[key] is None):
            return self._default(key, default)
        v = self.cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(key, v, what)
        return v

    def number(self, key: str, default: Any = _REQUIRED) -> float:
        """A finite positive number (int or float)."""
        if key not in self.cfg:
            return float(self._default(key, default))
        v = self.cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise self.fail(key, v, "a positive number")
        return float(v)

    def bool(self, key: str, default: Any = _REQUIRED) -> bool:
        """A JSON boolean (true/false); the string "false" is refused, not read as true."""
        if key not in self.cfg:
            return bool(self._default(key, default))
        v = self.cfg[key]
        if not isinstance(v, bool):
            raise self.fail(key, v, "true or false")
        return v

    def str(self, key: str, default: Any = _REQUIRED) -> str:
        if key not in self.cfg:
            return self._default(key, default)
        v = self.cfg[key]
        if not isinstance(v, str):
            raise self.fail(key, v, "a string")
        return v

    def obj(self, key: str) -> dict[str, Any] | None:
        """An object or null/absent (None)."""
        v = self.cfg.get(key)
        if v is not None and not isinstance(v, dict):
            raise self.fail(key, v, "an object or null")
        return v

    def layer_list(self, key: str, num_layers: int) -> tuple[int, ...]:
        """A list of distinct layer indices in 0..num_layers-1 (absent: empty)."""
        v = self.cfg.get(key, [])
        ok = isinstance(v, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_layers for i in v
        )
        if not ok or len(set(v)) != len(v):
            raise self.fail(key, v, f"a list of distinct layer indices 0..{num_layers - 1}")
        return tuple(sorted(v))


def _rope_scaling(k: _Keys) -> dict[str, Any] | None:
    """rope_scaling as given, after checking the numbers it holds."""
    rs = k.obj("rope_scaling")
    if rs is None:
        return None
    sub = _Keys(rs, k.path, k.prefix + "rope_scaling.", {})
    for key in _ROPE_NUMBERS:
        if key in rs:
            sub.number(key)
    if "original_max_position_embeddings" in rs:
        sub.int("original_max_position_embeddings")
    for key in ("rope_type", "type"):
        if key in rs:
            sub.str(key)
    return rs


def _family(cfg: dict[str, Any], path: str) -> tuple[str, bool]:
    """(family, whether the config named it).  Both keys, where given, must name one family."""
    mt = cfg.get("model_type")
    archs = cfg.get("architectures")
    tail = (f"; supported model_type: {', '.join(MODEL_TYPES)} (state-space and hybrid models such "
            f"as mamba and jamba are not modelled)")
    fam = None
    if "model_type" in cfg:
        if not isinstance(mt, str):
            raise InputError(f"config {path}: model_type={_short(mt)} must be a string{tail}")
        if mt not in MODEL_TYPES:
            raise InputError(f"config {path}: model_type {mt!r} (architectures {archs}) is not "
                             f"modelled{tail}")
        fam = MODEL_TYPES[mt]
    if "architectures" in cfg:
        if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
            raise InputError(f"config {path}: architectures={_short(archs)} must be a list of class "
                             f"names{tail}")
        fams = {ARCHITECTURES.get(a) for a in archs}
        if None in fams or len(fams) != 1:
            raise InputError(f"config {path}: architectures {archs} (model_type {mt!r}) are not a "
                             f"modelled family; supported: {', '.join(ARCHITECTURES)}{tail}")
        arch_fam = fams.pop()
        if fam is not None and arch_fam != fam:
            raise InputError(f"config {path}: architectures {archs} name the {arch_fam} family but "
                             f"model_type {mt!r} the {fam} family; they must agree")
        fam = arch_fam
    return (fam, True) if fam is not None else ("llama", False)


def _dtype(k: _Keys, top: dict[str, Any], path: str) -> int:
    key = "torch_dtype" if "torch_dtype" in k.cfg or "torch_dtype" in top else "dtype"
    raw = k.cfg.get(key, top.get(key))
    if raw is None:  # absent or null: bf16, documented
        return DTYPES["bfloat16"]
    if not isinstance(raw, str):
        raise k.fail(key, raw, f"one of {', '.join(DTYPES)}")
    name = raw.replace("torch.", "")
    if name not in DTYPES:
        raise InputError(
            f"config {path}: {key}={raw!r} is not a floating-point dtype the model reads; allowed: "
            f"{', '.join(DTYPES)} (quantized weights are described by quantization_config)"
        )
    return DTYPES[name]


def _quantization(k: _Keys, q: dict[str, Any] | None, moe: bool, path: str) -> tuple[str, str]:
    """(weight_dtype override or "", expert_weight_dtype or "") from quantization_config."""
    if q is None:
        return "", ""
    method = q.get("quant_method")
    where = f"config {path}: quantization_config.quant_method={_short(method)}"
    if method == "fp8":
        block = q.get("weight_block_size")
        if block is not None and not (isinstance(block, list) and len(block) == 2 and all(
                isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
            raise InputError(f"config {path}: quantization_config.weight_block_size={_short(block)} is "
                             f"not allowed; expected two positive integers")
        fmt = q.get("fmt", "e4m3")
        if fmt not in ("e4m3", "e5m2"):
            raise InputError(f"config {path}: quantization_config.fmt={_short(fmt)} is not allowed; "
                             f"expected e4m3 or e5m2")
        return f"fp8_{fmt}", ""
    if method == "mxfp4":
        # gpt-oss: experts in MXFP4; attention, router, embedding and head stay in torch_dtype
        return ("", "mxfp4") if moe else ("mxfp4", "")
    if method in ("awq", "gptq"):
        bits = q.get("bits", q.get("w_bit"))
        if bits not in (4, 8) or isinstance(bits, bool):
            raise InputError(f"config {path}: quantization_config.bits={_short(bits)} is not "
                             f"allowed for {method}; expected 4 or 8")
        return f"int{bits}", ""
    raise InputError(f"{where} is not read; supported: fp8, mxfp4, awq, gptq (remove "
                     f"quantization_config to cost the model at its torch_dtype)")


def _windows(k: _Keys, fam: str, L: int) -> tuple[int | None, tuple[int, ...]]:
    """(sliding_window, global_layers) for the family's layer pattern."""
    if "layer_types" in k.cfg:
        types = k.cfg["layer_types"]
        if not isinstance(types, list) or len(types) != L:
            raise k.fail("layer_types", types, f"a list of {L} layer types")
        for t in types:
            if t not in _LAYER_TYPES:
                raise InputError(f"config {k.path}: {k.prefix}layer_types has {t!r}, which is not "
                                 f"modelled; allowed: {', '.join(_LAYER_TYPES)}")
        if "sliding_attention" not in types:
            return None, ()
        window = k.int("sliding_window", null_is_absent=False)
        return window, tuple(i for i, t in enumerate(types) if t == "full_attention")
    if fam in ("llama", "deepseek_v2", "deepseek_v3"):
        return None, ()  # these decoders have no windowed layers (a sliding_window key is unused)
    if fam in ("mistral", "mixtral"):
        return k.int("sliding_window", None, null_is_absent=True), ()
    if fam.startswith("qwen"):
        if not k.bool("use_sliding_window"):
            return None, ()
        window = k.int("sliding_window", None, null_is_absent=True)
        if window is None:
            return None, ()
        first = min(k.int("max_window_layers", minimum=0), L)
        return window, tuple(range(first))  # layers below max_window_layers are global
    window = k.int("sliding_window", null_is_absent=True)
    if fam == "gemma2":  # even layers local, odd layers global
        return window, tuple(i for i in range(L) if i % 2 == 1)
    if fam == "gemma3":  # every sliding_window_pattern-th layer global
        key = "sliding_window_pattern" if k.has("sliding_window_pattern") else "_sliding_window_pattern"
        p = k.int(key, k.defaults["sliding_window_pattern"])
        return window, tuple(i for i in range(L) if (i + 1) % p == 0)
    # gpt_oss without layer_types: transformers' default alternation, sliding first
    return window, tuple(i for i in range(L) if i % 2 == 1)


def _moe(k: _Keys, fam: str, L: int, inter: int) -> dict[str, Any]:
    """MoE fields of the record ({} for a dense family or a DeepSeek config without experts)."""
    if fam in ("mixtral", "gpt_oss"):
        experts = k.int("num_local_experts")
        top = k.int("num_experts_per_tok") if k.has("num_experts_per_tok") or fam == "mixtral" \
            else k.int("experts_per_token")
        return dict(num_experts=experts, experts_per_token=top, expert_intermediate_size=inter,
                    router_bias=fam == "gpt_oss")
    if fam in ("qwen2_moe", "qwen3_moe"):
        experts = k.int("num_experts")
        step = k.int("decoder_sparse_step")
        mlp_only = set(k.layer_list("mlp_only_layers", L))
        dense = tuple(i for i in range(L) if i in mlp_only or (i + 1) % step)
        out = dict(num_experts=experts, experts_per_token=k.int("num_experts_per_tok"),
                   expert_intermediate_size=k.int("moe_intermediate_size"), dense_layers=dense)
        if fam == "qwen2_moe":  # one shared expert behind a sigmoid gate, always present
            out.update(num_shared_experts=1, shared_expert_gate=True,
                       shared_expert_intermediate_size=k.int("shared_expert_intermediate_size"))
        return out
    if fam in ("deepseek_v2", "deepseek_v3"):
        experts = k.int("n_routed_experts", 0, minimum=0, null_is_absent=True)
        if not experts:
            return {}
        width = k.int("moe_intermediate_size")
        shared = k.int("n_shared_experts", 0, minimum=0, null_is_absent=True)
        first = k.int("first_k_dense_replace", minimum=0)
        freq = k.int("moe_layer_freq")
        dense = tuple(i for i in range(L) if not (i >= first and i % freq == 0))
        return dict(num_experts=experts, experts_per_token=k.int("num_experts_per_tok"),
                    expert_intermediate_size=width, num_shared_experts=shared,
                    shared_expert_intermediate_size=width if shared else 0, dense_layers=dense,
                    router_bias=k.str("topk_method") == "noaux_tc")
    return {}


def from_hf_config(cfg: dict[str, Any], name: str = "custom", path: str = "<dict>") -> ModelArch:
    """Build a :class:`ModelArch` from a Hugging Face ``config.json`` dict (families: module doc).

    Missing (or null) ``num_key_value_heads`` means multi-head attention; missing (or null)
    ``head_dim`` means ``hidden_size // num_attention_heads`` (Gemma: 256, its config default);
    ``tie_word_embeddings`` must be a JSON boolean.
    """
    if not isinstance(cfg, dict):
        raise InputError(f"config {path}: expected a JSON object, got {type(cfg).__name__}")
    fam, named = _family(cfg, path)
    defaults = {**_BASE_DEFAULTS, **FAMILY_DEFAULTS.get(fam, {})}
    body, prefix = cfg, ""
    if fam == "gemma3" and "text_config" in cfg:
        if not isinstance(cfg["text_config"], dict):
            raise InputError(f"config {path}: text_config={_short(cfg['text_config'])} must be an object")
        body, prefix = cfg["text_config"], "text_config."
        for key in ("tie_word_embeddings", "quantization_config"):
            if key in cfg and key not in body:
                body = {**body, key: cfg[key]}
    k = _Keys(body, path, prefix, defaults)

    h = k.int("hidden_size")
    heads = k.int("num_attention_heads")
    L = k.int("num_hidden_layers")
    inter = k.int("intermediate_size")
    vocab = k.int("vocab_size")
    kv = k.int("num_key_value_heads", heads, null_is_absent=True)
    mla: dict[str, Any] = {}
    if fam.startswith("deepseek"):
        if k.bool("attention_bias", False):
            raise InputError(f"config {path}: attention_bias=true is not modelled for MLA; expected false")
        mla = dict(q_lora_rank=k.int("q_lora_rank", 0, minimum=0, null_is_absent=True),
                   kv_lora_rank=k.int("kv_lora_rank"), qk_nope_head_dim=k.int("qk_nope_head_dim"),
                   qk_rope_head_dim=k.int("qk_rope_head_dim"), v_head_dim=k.int("v_head_dim"))
        head_dim, kv = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"], heads
    elif k.has("head_dim") and k.cfg["head_dim"] is not None:
        head_dim = k.int("head_dim")
    elif "head_dim" in defaults:
        head_dim = defaults["head_dim"]
    else:
        if h % heads:
            raise InputError(f"config {path}: hidden_size={h} is not divisible by "
                             f"num_attention_heads={heads} and no head_dim is given")
        head_dim = h // heads

    if fam in ("qwen2", "qwen2_moe"):
        qkv_bias, o_bias = True, False  # hard-coded in transformers' Qwen2 attention
    elif fam in ("mistral", "mixtral") or fam.startswith("deepseek"):
        qkv_bias = o_bias = False
    elif not named:
        qkv_bias, o_bias = k.bool("attention_bias", False), False
    else:
        qkv_bias = o_bias = k.bool("attention_bias", False)

    # MLP biases: gpt-oss experts have them; LLaMA reads mlp_bias; the other families have none
    mlp_bias = True if fam == "gpt_oss" else (named and fam == "llama" and k.bool("mlp_bias", False))

    act_key = "hidden_activation" if fam.startswith("gemma") and k.has("hidden_activation") else "hidden_act"
    act = k.str(act_key, "silu")
    gated = act in _GATED_ACTS if not named else True

    dtype_bytes = _dtype(k, cfg, path)
    moe = _moe(k, fam, L, inter)
    weight_dtype, expert_dtype = _quantization(k, k.obj("quantization_config"), bool(moe), path)
    window, global_layers = _windows(k, fam, L)

    if k.has("rope_theta") or not isinstance(k.cfg.get("rope_parameters"), dict):
        rope_theta = k.number("rope_theta")
    else:  # transformers >= 5 nests it
        rope_theta = _Keys(k.cfg["rope_parameters"], path, prefix + "rope_parameters.", defaults).number(
            "rope_theta")
    hf_id = cfg.get("_name_or_path", "")
    return ModelArch(
        name=name,
        hidden_size=h,
        num_layers=L,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        max_positions=k.int("max_position_embeddings"),
        tie_embeddings=k.bool("tie_word_embeddings"),
        gated_mlp=gated,
        qkv_bias=qkv_bias,
        rope_theta=rope_theta,
        rope_scaling=_rope_scaling(k),
        rms_norm_eps=k.number("rms_norm_eps"),
        sliding_window=window,
        dtype_bytes=dtype_bytes,
        hf_id=hf_id if isinstance(hf_id, str) else "",
        source=f"config.json at {path}",
        family=fam,
        global_layers=global_layers,
        o_bias=o_bias,
        qk_norm=fam in ("qwen3", "qwen3_moe", "gemma3"),
        attn_sinks=fam == "gpt_oss",
        norms_per_layer=4 if fam.startswith("gemma") else 2,
        mtp_layers=k.int("num_nextn_predict_layers", 0, minimum=0) if fam.startswith("deepseek") else 0,
        mlp_bias=mlp_bias,
        weight_dtype=weight_dtype,
        expert_weight_dtype=expert_dtype,
        quantization=k.obj("quantization_config"),
        **mla,
        **moe,
    )


def load_hf_config(path: str | Path) -> ModelArch:
    """Read a Hugging Face ``config.json`` file (or a folder holding one) into a :class:`ModelArch`."""
    from .inputs import read_json

    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise InputError(f"config file {str(p)!r} does not exist")
    cfg = read_json(p, "config")
    name = p.parent.name or p.stem
    return from_hf_config(cfg, name=name, path=str(p))
