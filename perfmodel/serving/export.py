"""The speculative-decoding configuration of a policy, in an engine's own format.

* vLLM: the JSON of ``--speculative-config`` (``method``, ``num_speculative_tokens`` and, for a
  batch-dependent gamma, ``num_speculative_tokens_per_batch_size``, inclusive ranges, PR #32374);
* SGLang: its server flags (``--speculative-algorithm``, ``--speculative-num-steps``,
  ``--speculative-eagle-topk 1``, ``--speculative-num-draft-tokens`` = steps + 1 for a chain);
  a batch-dependent gamma becomes ``--speculative-adaptive`` with
  ``--speculative-adaptive-config {"candidate_steps": [...]}`` (PRs #21599, #24055);
* TensorRT-LLM: the YAML of ``--extra_llm_api_options`` with ``speculative_config``
  (``decoding_type``, ``max_draft_len``, ``draft_len_schedule`` by concurrency, PRs #8194,
  #10860) and ``max_concurrency`` above which speculation is off (PR #6676).

docs/serving.md cites each engine's documentation.  A sparse-KV self-draft (MagicDec) has no
engine implementation, so it is refused.
"""

from __future__ import annotations

import json

from ..errors import InputError
from .policy import Policy

ENGINES = ("vllm", "sglang", "trtllm")

_VLLM = {"eagle": "eagle", "mtp": "mtp", "ngram": "ngram", "model": "draft_model"}
_SGLANG = {"eagle": "EAGLE", "mtp": "EAGLE", "ngram": "NGRAM", "model": "STANDALONE"}
_TRTLLM = {"eagle": "Eagle3", "mtp": "MTP", "ngram": "NGram", "model": "DraftTarget"}


def schedule_from_counts(gamma_by_batch: dict[str, int]) -> tuple[tuple[int, int, int], ...]:
    """A batch -> gamma table (inclusive ranges) from the steps an adaptive policy took: the
    step-weighted mean gamma in power-of-two batch buckets (1, 2-3, 4-7, ...), rounded, with
    neighbouring buckets of the same gamma merged; the last range is open (to 1,000,000)."""
    sums: dict[int, list[float]] = {}
    for key, steps in gamma_by_batch.items():
        b, g = (int(x) for x in key.split(":"))
        acc = sums.setdefault(b.bit_length() - 1, [0.0, 0.0])
        acc[0] += g * steps
        acc[1] += steps
    rows: list[list[int]] = []
    for k in sorted(sums):
        g = int(round(sums[k][0] / sums[k][1]))
        lo = 1 if not rows else 2 ** k
        if rows and rows[-1][2] == g:
            rows[-1][1] = 2 ** (k + 1) - 1
            continue
        if rows:
            rows[-1][1] = lo - 1
        rows.append([lo, 2 ** (k + 1) - 1, g])
    if rows:
        rows[-1][1] = 1_000_000
    return tuple((a, b, c) for a, b, c in rows)


def export_config(engine: str, policy: Policy, draft_kind: str, draft_name: str,
                  table: tuple[tuple[int, int, int], ...] = ()) -> str:
    """The text to write for ``engine`` (vllm JSON, sglang flags, trtllm YAML).

    ``table``: the batch -> gamma ranges of an ``optimal`` policy (:func:`schedule_from_counts`).
    """
    if engine not in ENGINES:
        raise InputError(f"--export {engine!r} is not one of: {', '.join(ENGINES)}")
    if draft_kind == "self":
        raise InputError("--export: no engine ships a sparse-KV self-draft (MagicDec's); allowed: "
                         "--draft eagle, mtp, ngram or a draft model")
    if policy.kind == "schedule":
        table = policy.table
    elif policy.kind == "fixed":
        table = ((1, 1_000_000, policy.gamma),)
    elif policy.kind == "off":
        table = ()
    if table and all(g == 0 for *_, g in table):
        table = ()
    max_g = max((g for *_, g in table), default=0)
    model = f"<path of the {draft_name} draft checkpoint>"
    if engine == "vllm":
        if not table:
            return "# the best policy is off: start vLLM without --speculative-config\n"
        cfg: dict = {"method": _VLLM.get(draft_kind, "draft_model"), "num_speculative_tokens": max_g}
        if draft_kind != "ngram":
            cfg["model"] = model
        if len(table) > 1:
            cfg["num_speculative_tokens_per_batch_size"] = {f"{lo}-{hi}": g for lo, hi, g in table}
        return json.dumps(cfg, indent=1) + "\n"
    if engine == "sglang":
        if not table:
            return "# the best policy is off: start SGLang without --speculative-* flags\n"
        algo = _SGLANG.get(draft_kind, "STANDALONE")
        flags = [f"--speculative-algorithm {algo}"]
        if draft_kind != "ngram":
            flags.append(f"--speculative-draft-model-path {model}")
        flags += [f"--speculative-num-steps {max_g}", "--speculative-eagle-topk 1",
                  f"--speculative-num-draft-tokens {max_g + 1}"]
        steps = sorted({g for *_, g in table if g > 0})
        if len(table) > 1:
            flags += ["--speculative-adaptive",
                      f"--speculative-adaptive-config '{json.dumps({'candidate_steps': steps})}'"]
        return " \\\n".join(flags) + "\n"
    if not table:
        return "# the best policy is off: no speculative_config\n"
    lines = ["speculative_config:", f"  decoding_type: {_TRTLLM.get(draft_kind, 'DraftTarget')}",
             f"  max_draft_len: {max_g}"]
    if draft_kind != "ngram":
        lines.append(f"  speculative_model_dir: \"{model}\"")
    if len(table) > 1:
        on = [(hi, g) for lo, hi, g in table if g > 0]
        lines.append("  draft_len_schedule: {" + ", ".join(f"{hi}: {g}" for hi, g in on) + "}")
        off_from = next((lo for lo, hi, g in table if g == 0), None)
        if off_from is not None:
            lines.append(f"  max_concurrency: {off_from - 1}")
    return "\n".join(lines) + "\n"
