"""Local LLaMA-family checkpoints (safetensors + config.json) and measured-acceptance CSVs.

:func:`load_checkpoint` reads a folder holding ``config.json`` and ``*.safetensors`` (one file,
several shards, or an ``model.safetensors.index.json``) with Hugging Face LLaMA tensor names into
the same :class:`~magicdec_model.validate.decoder.Decoder` as the synthetic weights.  Nothing is
ever downloaded.  :func:`save_checkpoint` writes the reverse (tests build tiny checkpoints with it).

:func:`measure_acceptance` runs the greedy SD loop per draft method and budget and
:func:`write_acceptance_csv` stores the result with the columns of the acceptance model:
``model, draft, method, budget, seq_len, acceptance, dataset, source``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..perfmodel.acceptance import BUDGET_KV_METHODS
from ..perfmodel.architecture import ModelArch, load_hf_config

if TYPE_CHECKING:  # pragma: no cover
    from .decoder import Decoder

ACCEPTANCE_COLUMNS = ("model", "draft", "method", "budget", "seq_len", "acceptance", "dataset",
                      "source")

_ATTN = "model.layers.{i}.self_attn.{p}_proj.{kind}"
_MLP = "model.layers.{i}.mlp.{p}_proj.weight"


def _tensor_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder}")
    return files


class _TensorSource:
    """Lazy access to tensors by name over several safetensors files."""

    def __init__(self, files: Sequence[Path]) -> None:
        from safetensors import safe_open

        self._handles = [safe_open(str(f), framework="pt") for f in files]
        self._where = {k: h for h in self._handles for k in h.keys()}  # noqa: SIM118

    def has(self, name: str) -> bool:
        return name in self._where

    def get(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise KeyError(f"checkpoint lacks tensor {name!r}")
        return self._where[name].get_tensor(name)


def load_checkpoint(
    path: str | Path,
    *,
    layers: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> Decoder:
    """Load a local LLaMA-family checkpoint folder into a :class:`Decoder` (never downloads).

    Args:
        path: folder with ``config.json`` and safetensors weights (HF LLaMA names).
        layers: keep only the first ``layers`` layers.
        device, dtype: target placement (default dtype: bf16 on CUDA, fp32 on CPU).

    Under tensor parallelism, shard the result with :func:`.tensor_parallel.parallelize`.
    """

    from .decoder import Decoder, DecoderWeights, LayerWeights

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    arch = load_hf_config(folder)
    src = _TensorSource(_tensor_files(folder))
    n = arch.num_layers if layers is None else layers
    if not 1 <= n <= arch.num_layers:
        raise ValueError(f"layers={layers} must be in 1..{arch.num_layers}")
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def t(name: str) -> torch.Tensor:
        return src.get(name).to(dtype)

    out_layers = []
    for i in range(n):
        q, k, v = (t(_ATTN.format(i=i, p=p, kind="weight")) for p in "qkv")
        bias = None
        if src.has(_ATTN.format(i=i, p="q", kind="bias")):
            bias = torch.cat([t(_ATTN.format(i=i, p=p, kind="bias")) for p in "qkv"])
        if arch.gated_mlp:
            gate_up = torch.cat([t(_MLP.format(i=i, p="gate")), t(_MLP.format(i=i, p="up"))])
        else:
            gate_up = t(_MLP.format(i=i, p="up"))
        out_layers.append(
            LayerWeights(
                attn_norm=t(f"model.layers.{i}.input_layernorm.weight"),
                wqkv=torch.cat([q, k, v]),
                bqkv=bias,
                wo=t(_ATTN.format(i=i, p="o", kind="weight")),
                mlp_norm=t(f"model.layers.{i}.post_attention_layernorm.weight"),
                w_gate_up=gate_up,
                w_down=t(_MLP.format(i=i, p="down")),
            )
        )
    head = t("lm_head.weight") if src.has("lm_head.weight") and not arch.tie_embeddings else None
    weights = DecoderWeights(
        embedding=t("model.embed_tokens.weight"),
        layers=out_layers,
        final_norm=t("model.norm.weight"),
        lm_head=head,
    )
    return Decoder(arch, weights, device=device, dtype=dtype)


def hf_config(arch: ModelArch) -> dict[str, Any]:
    """A Hugging Face LLaMA ``config.json`` dict for ``arch`` (inverse of ``from_hf_config``)."""
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": arch.hidden_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "intermediate_size": arch.intermediate_size,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.max_positions,
        "tie_word_embeddings": arch.tie_embeddings,
        "hidden_act": "silu" if arch.gated_mlp else "gelu",
        "attention_bias": arch.qkv_bias,
        "rope_theta": arch.rope_theta,
        "rms_norm_eps": arch.rms_norm_eps,
        "torch_dtype": {1: "float8_e4m3fn", 2: "bfloat16", 4: "float32"}[arch.dtype_bytes],
    }
    if arch.rope_scaling:
        cfg["rope_scaling"] = dict(arch.rope_scaling)
    return cfg


def save_checkpoint(decoder: Decoder, path: str | Path) -> Path:
    """Write ``decoder`` (single process) as ``config.json`` + ``model.safetensors`` in ``path``."""
    from safetensors.torch import save_file

    arch = decoder.arch
    if (decoder.num_heads, decoder.num_kv_heads, decoder.head.shape[0]) != (
            arch.num_heads, arch.num_kv_heads, arch.vocab_size):
        raise ValueError("save_checkpoint needs an unsharded decoder")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {"model.embed_tokens.weight": decoder.embed,
                                        "model.norm.weight": decoder.final_norm_w}
    if decoder.head is not decoder.embed:
        tensors["lm_head.weight"] = decoder.head
    qd, kd = arch.q_dim, arch.kv_dim
    for i, lw in enumerate(decoder.layers):
        splits = (("q", slice(0, qd)), ("k", slice(qd, qd + kd)), ("v", slice(qd + kd, None)))
        for p, rows in splits:
            tensors[_ATTN.format(i=i, p=p, kind="weight")] = lw.wqkv[rows]
            if lw.bqkv is not None:
                tensors[_ATTN.format(i=i, p=p, kind="bias")] = lw.bqkv[rows]
        tensors[_ATTN.format(i=i, p="o", kind="weight")] = lw.wo
        if arch.gated_mlp:
            gate, up = lw.w_gate_up.chunk(2, dim=0)
            tensors[_MLP.format(i=i, p="gate")] = gate
            tensors[_MLP.format(i=i, p="up")] = up
        else:
            tensors[_MLP.format(i=i, p="up")] = lw.w_gate_up
        tensors[_MLP.format(i=i, p="down")] = lw.w_down
        tensors[f"model.layers.{i}.input_layernorm.weight"] = lw.attn_norm
        tensors[f"model.layers.{i}.post_attention_layernorm.weight"] = lw.mlp_norm
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(folder / "model.safetensors"))
    cfg = hf_config(arch)
    cfg["num_hidden_layers"] = decoder.num_layers
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- acceptance
@dataclass(frozen=True)
class AcceptanceRow:
    """One measured acceptance rate, in the acceptance model's CSV format.

    ``acceptance`` is the per-token rate alpha (see
    :attr:`~magicdec_model.validate.speculative_loop.GenerationResult.acceptance_rate`);
    ``budget`` and ``seq_len`` are tokens (``seq_len`` = prompt length).
    """

    model: str
    draft: str
    method: str
    budget: int
    seq_len: int
    acceptance: float
    dataset: str
    source: str


def measure_acceptance(
    target: Decoder,
    prompts: torch.Tensor,
    *,
    methods: Iterable[str] = BUDGET_KV_METHODS,
    budgets: Iterable[int] = (256, 512),
    gamma: int = 4,
    max_new_tokens: int = 64,
    sink_tokens: int = 16,
    window: int = 32,
    draft: Decoder | None = None,
    model_name: str | None = None,
    draft_name: str | None = None,
    dataset: str = "unspecified",
    source: str | None = None,
    backend: Any = None,
) -> list[AcceptanceRow]:
    """Greedy SD acceptance of ``target`` per (method, budget) on ``prompts`` ``[B, S]``.

    Self-speculation when ``draft`` is None (``draft`` column ``"self"``).  Acceptance is real
    argmax agreement, pooled over the batch and all rounds.  ``sink_tokens`` (StreamingLLM) and
    ``window`` (SnapKV observation window) are in tokens, as in :class:`DraftKV`.
    """
    from .speculative_loop import DraftKV, speculative_generate

    model_name = model_name or target.arch.name
    draft_label = "self" if draft is None else (draft_name or draft.arch.name)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    src = source or (
        f"measured by magicdec_model.validate on {stamp}: greedy, gamma={gamma}, "
        f"{max_new_tokens} new tokens x {prompts.shape[0]} prompts"
    )
    rows = []
    for method in methods:
        for budget in budgets:
            res = speculative_generate(
                target, prompts, max_new_tokens, gamma=gamma, draft=draft,
                draft_kv=DraftKV(method, budget=budget, sink_tokens=sink_tokens, window=window),
                backend=backend,
            )
            rows.append(AcceptanceRow(model_name, draft_label, method, int(budget),
                                      int(prompts.shape[1]), float(res.acceptance_rate),
                                      dataset, src))
    return rows


def write_acceptance_csv(rows: Iterable[AcceptanceRow], path: str | Path) -> Path:
    """Write rows as CSV with the columns :data:`ACCEPTANCE_COLUMNS` (header included)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ACCEPTANCE_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    return out
