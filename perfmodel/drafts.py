"""Draft kinds: what one draft step runs, built from the target's own op list.

``--draft`` names one of:

* ``self`` - the target itself over a sparse budget KV (MagicDec's self-speculation);
* a registry model or config.json - a standalone small model of the same tokenizer;
* ``eagle`` - an EAGLE-style head: one decoder layer of the target's width (its attention type,
  a dense MLP of the target's ``intermediate_size``) fed with the target's hidden state, with an
  input projection of [hidden, token embedding] (2h -> h), the target's embedding table and LM
  head (or its own LM head over a reduced draft vocabulary, ``draft_vocab``), and its own KV
  cache of one layer over the whole context (or a budget);
* ``mtp`` - the model's own multi-token-prediction module (DeepSeek-V3: an input projection
  2h -> h and one decoder layer like the model's last, MoE included, sharing the embedding and
  LM head), with its own one-layer KV cache;
* ``ngram`` - prompt lookup: no GPU work; its host cost per sequence is the engine's
  ``ngram_lookup_s``.

A head's step is costed by :func:`ops.step_ops` on a one-layer slice of the target
(:attr:`Draft.arch`) with ``fuse_inputs`` = 2: the same formulas as the target's layers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .acceptance import KV_METHODS
from .architecture import ModelArch, get_model, tokenizer_family
from .errors import InputError
from .inputs import nonempty

#: Draft kinds that are not a model name.
HEAD_KINDS = ("eagle", "mtp", "ngram")


@dataclass(frozen=True)
class Draft:
    """A draft strategy: its kind, what a draft step runs (None for n-gram) and its KV method."""

    name: str  # "self", "eagle", "mtp", "ngram" or the draft model's name
    arch: ModelArch | None
    kv_method: str  # "streamingllm", "snapkv" or "full"
    kind: str = "model"  # "self", "model", "eagle", "mtp" or "ngram"
    fuse_inputs: int = 0  # input projection of a head: fuse_inputs x h -> h
    shares_head: bool = False  # a head uses the target's embedding and LM head (not stored twice)

    @property
    def is_self(self) -> bool:
        """True for self-speculation (the target's own weights)."""
        return self.kind == "self"

    @property
    def is_head(self) -> bool:
        """True for a draft head that runs on the target's hidden states (EAGLE, MTP)."""
        return self.kind in ("eagle", "mtp")

    @property
    def has_forward(self) -> bool:
        """False for n-gram lookup (no GPU model)."""
        return self.arch is not None

    def kv_len(self, budget: np.ndarray, seq_len: np.ndarray) -> np.ndarray:
        """Tokens of KV the draft's attention reads: the budget, capped at the sequence (tokens)."""
        S = np.asarray(seq_len, dtype=float)
        if not self.has_forward:
            return np.zeros_like(S)
        if self.kv_method == "full":
            return S
        return np.minimum(np.asarray(budget, dtype=float), S)


def _one_layer(target: ModelArch, name: str, *, moe: bool, vocab: int) -> ModelArch:
    """A one-layer slice of ``target`` attending to the whole context (a head's decoder layer)."""
    changes: dict = {"name": name, "num_layers": 1, "sliding_window": None, "global_layers": (),
                     "mtp_layers": 0, "vocab_size": vocab, "dense_layers": ()}
    if not moe:
        changes.update(num_experts=0, experts_per_token=0, expert_intermediate_size=0,
                       num_shared_experts=0, shared_expert_intermediate_size=0,
                       shared_expert_gate=False, router_bias=False, expert_weight_dtype="")
    return replace(target, **changes)


def make_draft(spec: str, target: ModelArch, kv_method: str, draft_vocab: int | None = None) -> Draft:
    """Resolve ``--draft`` (``self``, ``eagle``, ``mtp``, ``ngram`` or a model) and ``--kv-method``."""
    method = kv_method.lower()
    if method == "auto":  # a head keeps its one-layer cache over the whole context, as EAGLE does
        method = "full" if spec in HEAD_KINDS else "streamingllm"
    if method not in KV_METHODS:
        raise InputError(f"--kv-method {kv_method!r} is not one of: {', '.join(KV_METHODS)}, auto")
    if draft_vocab is not None and spec != "eagle":
        raise InputError(f"--draft-vocab applies to --draft eagle only, not --draft {spec}")
    if spec == "self":
        if method == "full":
            raise InputError(
                "--draft self with --kv-method full is the target itself: no speculation; "
                "allowed: --kv-method streamingllm or snapkv"
            )
        return Draft("self", target, method, kind="self")
    if spec == "eagle":
        if draft_vocab is not None and not 1 <= draft_vocab <= target.vocab_size:
            raise InputError(f"--draft-vocab {draft_vocab} must be in 1..{target.vocab_size} "
                             f"(the target's vocabulary)")
        vocab = draft_vocab or target.vocab_size
        arch = _one_layer(target, f"{target.name}-eagle", moe=False, vocab=vocab)
        return Draft("eagle", arch, method, kind="eagle", fuse_inputs=2,
                     shares_head=vocab == target.vocab_size)
    if spec == "mtp":
        if not target.mtp_layers:
            raise InputError(f"--draft mtp: {target.name} has no multi-token-prediction module; "
                             f"allowed for models whose config sets num_nextn_predict_layers "
                             f"(e.g. deepseek-v3)")
        arch = _one_layer(target, f"{target.name}-mtp", moe=target.is_moe, vocab=target.vocab_size)
        return Draft("mtp", arch, method, kind="mtp", fuse_inputs=2, shares_head=True)
    if spec == "ngram":
        return Draft("ngram", None, "full", kind="ngram")
    nonempty(spec, "--draft", "self, eagle, mtp, ngram, a registry model (see 'magicdec-model models "
             "list') or a path to a config.json")
    arch = get_model(spec)
    if tokenizer_family(arch) != tokenizer_family(target):
        raise InputError(
            f"--draft {spec!r} has vocabulary {arch.vocab_size}, the target {target.name!r} has "
            f"{target.vocab_size}; a draft must share the target's tokenizer"
        )
    return Draft(arch.name, arch, method, kind="model")
