"""Shared fixtures, and the rules of the test tiers.

Tiers (markers registered in pyproject.toml; ``--strict-markers`` rejects any other):

* ``unit``: runs inside the pytest process (perfmodel, the CLI through typer's CliRunner, the
  validator on tiny tensors);
* ``e2e``: starts other processes (CLI subprocesses, validate runs, torch.distributed workers,
  a browser);
* ``slow``: left out of the fast tier ``pytest -m "not slow"`` (102 s for 1,665 tests on the idle
  2-core CI machine, December 2026): the long tests (validate runs, the real model, workers)
  belong here; ``browser``: needs headless Chromium; ``gpu``: needs CUDA, skipped here where
  ``torch.cuda.is_available()`` is false.

Every test carries exactly one of ``unit`` and ``e2e`` (a module-level ``pytestmark`` is
enough); collection stops, naming the tests, where one does not.  Time limits (pytest-timeout):
300 s by default (pyproject.toml), 60 s for unit tests unless a test sets its own.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

TIERS = ("unit", "e2e")
UNIT_TIMEOUT_S = 60


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check the tier of every test; give unit tests their time limit; skip GPU tests without CUDA."""
    wrong = [it.nodeid for it in items
             if sum(it.get_closest_marker(t) is not None for t in TIERS) != 1]
    if wrong:
        listed = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise pytest.UsageError(
            f"{len(wrong)} test(s) without exactly one tier marker (unit or e2e): {listed}; "
            "add e.g. `pytestmark = pytest.mark.unit` to the module (see tests/conftest.py)"
        )
    gpu_skip = None
    for it in items:
        if it.get_closest_marker("unit") and not it.get_closest_marker("timeout"):
            it.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))
        if it.get_closest_marker("gpu"):
            if gpu_skip is None:
                gpu_skip = _gpu_skip_reason()
            if gpu_skip:
                it.add_marker(pytest.mark.skip(reason=gpu_skip))


def _gpu_skip_reason() -> str:
    """Why GPU tests cannot run here ('' where CUDA is usable)."""
    try:
        import torch
    except ImportError:
        return "needs CUDA: torch is not installed"
    return "" if torch.cuda.is_available() else "needs CUDA: torch.cuda.is_available() is false"


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run a module's tiny torch tensors on one thread: as fast, and immune to oversubscription
    on shared CI cores (two threads once took the validate suite from ~18 s to over 400 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: The tiny LLaMA-shaped model the validator tests share, as Hugging Face ``config.json`` keys:
#: GQA (2 query heads per KV head), head_dim 16, gated SiLU MLP, untied embeddings, 2 layers.
#: The sizes are arbitrary but pairwise different, so that a transposed shape fails loudly.
TINY_CONFIG = {
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 96,
    "vocab_size": 89,
}


@pytest.fixture(scope="session")
def tiny_config():
    """Factory: ``tiny_config(**overrides)`` is a fresh ``TINY_CONFIG`` dict with the overrides
    (any config.json key: ``num_attention_heads=8``, ``tie_word_embeddings=True``, ...)."""

    def make(**overrides) -> dict:
        return {**TINY_CONFIG, **overrides}

    return make


@pytest.fixture(scope="session")
def tiny_arch(tiny_config):
    """Factory: ``tiny_arch(name="tiny", **overrides)`` is the ``ModelArch`` of ``tiny_config``."""
    from magicdec_model.perfmodel.architecture import from_hf_config

    def make(name: str = "tiny", **overrides):
        return from_hf_config(tiny_config(**overrides), name=name)

    return make


# ------------------------------------------------------------------ MagicDec 8xA100 reference


@pytest.fixture(scope="session")
def paper_speedups() -> list[float]:
    """MagicDec's published end-to-end speedups on 8xA100, in the row order of
    perfmodel/data/paper_8xa100.csv. Source: MagicDec project page, "End-to-end Speculative
    Decoding Speedups for Various Target-Draft pairs on 8xA100s" (same numbers: Together AI blog
    Table 2; /work/shared/reference/magicdec-paper.md section 2). Rows: LLaMA-2-7B-32K with
    TinyLlama-1.1B (8K x B 32, 64, 128; 32K x B 32), LLaMA-2-7B-32K self-speculation (same
    points), LLaMA-3.1-8B self-speculation (32K x B 32, 64, 128; 100K x B 32)."""
    return [1.29, 1.57, 1.66, 1.91, 1.18, 1.48, 1.63, 2.00, 1.22, 1.38, 1.47, 1.84]


@pytest.fixture(scope="session")
def hand_ideal_paper_row() -> SimpleNamespace:
    """Row 5 of the paper table predicted by hand in ``--ideal`` (speed-of-light) mode.

    The point: LLaMA-2-7B-32K self-speculation, StreamingLLM budget 512, prefill 8000, batch 32,
    the paper's gamma 3 (``speedup_at(gamma)`` for others), acceptance 0.8, 8 x A100-80GB-SXM.
    The arithmetic follows the op list and formulas of docs/model.md (perfmodel/ops.py), written
    out here by hand; the kernel-only model is pinned, so a change to a formula, or an overhead
    reaching --ideal, shows here.

    Speed of light: datasheet 2.039 TB/s and 312 TFLOP/s (ridge 153 FLOP/B), fp32 19.5 TFLOP/s
    for element-wise ops (ridge 9.6), no fixed kernel cost, all-reduce at NVLink3's 300 GB/s per
    direction, no latency (A100 datasheet). For gamma <= 4 every op is memory-bound: a (T x k)
    @ (k x m) projection does T k m / (k m + T (k + m)) FLOP/B, at most 148 (the LM head,
    4096 x 4000) for the T = 32 x 5 = 160 tokens of a gamma-4 verify; attention does 4 FLOP per
    key, head and query row over 4 B of K and V per key and head (MHA): 1 FLOP/B at decode, at
    most 5 at verify; element-wise ops <= 1 FLOP/B. A step then takes its bytes / 2.039e12 s plus
    its all-reduces. From gamma 5 (192 verify tokens) the large projections cross the ridge, and
    the figures below become a lower bound on the verify time and an upper bound on the speedup.
    """
    # LLaMA-2-7B-32K (models.md): h 4096, 32 layers, 32 heads = 32 KV heads of d 128, I 11008,
    # vocab 32000, bf16 (2 B), untied. Per GPU at TP=8: 4 query + 4 KV heads (Q, K, V widths
    # 512 each), I 1376, vocab 4000.
    # Weights read per step (elements): per layer 2 norm vectors, QKV 4096 x 1536, O 512 x 4096,
    # gate+up 4096 x 2752, down 1376 x 4096; per step final norm and LM head 4096 x 4000 (the
    # embedding table is not read, its rows are gathered).
    weights = 2 * (32 * (2 * 4096 + 4096 * 1536 + 512 * 4096 + 4096 * 2752 + 1376 * 4096)
                   + 4096 + 4096 * 4000)
    # Activations per token (elements): per layer two fused norms 4 x 4096 each (read x and
    # residual, write both), QKV in + out 4096 + 1536, rotary q, k read + written 2 x 1024,
    # attention q read + output written 2 x 512 and new K, V written 2 x 512, O 512 + 4096,
    # gate+up 4096 + 2752, activation 3 x 1376, down 1376 + 4096; per step embedding rows
    # 2 x 4096, final norm 4 x 4096, LM head 4096 + 4000, sampling over the logits 4000.
    per_token = 2 * (32 * (2 * 4 * 4096 + (4096 + 1536) + 2 * 1024 + 2 * 512 + 2 * 512
                           + (512 + 4096) + (4096 + 2752) + 3 * 1376 + (1376 + 4096))
                     + 2 * 4096 + 4 * 4096 + (4096 + 4000) + 4000)
    # KV read per cached token per sequence: 32 layers x (K, V) x 512 x 2 B.
    kv_per_token = 32 * 2 * 512 * 2
    # All-reduces per token: 2 per layer of 4096 x 2 B, plus the greedy argmax's 2 of 2 x 4 B
    # (value and index); a ring over 8 GPUs moves 2 (8 - 1) / 8 of the message per GPU.
    comm_s_per_token = 2 * (8 - 1) / 8 * (2 * 32 * 4096 * 2 + 2 * 2 * 4) / 300e9

    def step_s(new_tokens: int, keys_read: int) -> float:
        tokens = 32 * new_tokens  # batch 32
        nbytes = weights + per_token * tokens + kv_per_token * 32 * keys_read
        return nbytes / 2.039e12 + comm_s_per_token * tokens

    # decode reads 8000 cached + 1 new keys; the draft 512 + 1; verify gamma + 1 new tokens
    # over 8000 + gamma + 1 keys
    t_target, t_draft = step_s(1, 8001), step_s(1, 513)

    def t_verify(gamma: int) -> float:
        return step_s(gamma + 1, 8000 + gamma + 1)

    def omega(gamma: int) -> float:  # expected tokens per round at acceptance 0.8 (Eq. 1)
        return (1 - 0.8 ** (gamma + 1)) / (1 - 0.8)

    def speedup(gamma: int) -> float:  # MagicDec Eq. 1
        return t_target * omega(gamma) / (gamma * t_draft + t_verify(gamma))

    # The paper's gamma is 3: omega(3) = (1 - 0.8^4) / 0.2 = 2.952, speedup(3) = 1.9135.
    return SimpleNamespace(
        target="llama-2-7b-32k", draft="self", kv_budget=512, prefill=8000, batch=32, gamma=3,
        acceptance=0.8, published=1.18, t_target_s=t_target, t_draft_s=t_draft,
        t_verify_s=t_verify(3), speedup=speedup(3), t_verify=t_verify, omega=omega,
        speedup_at=speedup,
    )
