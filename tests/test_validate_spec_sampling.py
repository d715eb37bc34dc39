"""Speculative sampling follows the target's distribution; the measure path's prefill-once reuse is
lossless; a self-draft whose budget covers the context accepts every greedy token."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy.stats import chisquare  # noqa: E402

from magicdec_model.validate.acceptance_measure import (  # noqa: E402
    MeasureGrid,
    draft_kv,
    measure_windows,
    prefill_windows,
)
from magicdec_model.validate.attention import TorchSDPABackend  # noqa: E402
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.speculative_loop import (  # noqa: E402
    DraftKV,
    autoregressive_generate,
    build_draft_cache,
    speculative_continue,
    speculative_generate,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]

V = 4  # vocabulary of the sampling test: 4^3 = 64 joint outcomes of three tokens
P_LEN = 6
N_RUNS = 4000
# The test fails when the chi-square p-value is below ALPHA. With a correct sampler the statistic
# is (asymptotically) chi-square distributed, so a correct implementation fails with probability
# ALPHA = 0.1 % over seeds (bins with expected count < 5 are pooled so that the approximation
# holds); the seed is fixed, so the outcome is reproducible.
ALPHA = 1e-3


@pytest.fixture(scope="module")
def pair(tiny_arch):
    """A target and a standalone draft with other weights: q differs from p, so rejections and
    residual draws happen often."""
    target = Decoder.synthetic(tiny_arch("samp-target", vocab_size=V), seed=3, dtype=torch.float64)
    draft = Decoder.synthetic(tiny_arch("samp-draft", vocab_size=V, num_hidden_layers=1), seed=4,
                              dtype=torch.float64)
    return target, draft


def _joint(dec: Decoder, prompt: list[int], temperature: float) -> np.ndarray:
    """Exact P(x1, x2, x3 | prompt) of ``dec`` sampling at ``temperature``, from teacher-forced
    forward passes over all V^2 continuations (independent of the SD loop)."""
    conts = list(itertools.product(range(V), repeat=2))
    x = torch.tensor([prompt + list(c) for c in conts])
    logits = dec.forward(x, dec.new_cache(len(conts), x.shape[1]), TorchSDPABackend())
    p = torch.softmax(logits.double() / temperature, -1).numpy()  # [V^2, P+2, V]
    joint = np.zeros((V, V, V))
    for i, (a, b) in enumerate(conts):
        joint[a, b, :] = p[i, P_LEN - 1, a] * p[i, P_LEN, b] * p[i, P_LEN + 1, :]
    return joint.reshape(-1)


def _chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(chisquare(obs, exp).pvalue)


@pytest.mark.parametrize(("gamma", "temperature"), [(3, 1.0), (2, 0.6)])
def test_speculative_sampling_follows_the_target_distribution(pair, temperature, gamma):
    target, draft = pair
    prompt = [1, 3, 0, 2, 2, 1]
    res = speculative_generate(target, torch.tensor([prompt] * N_RUNS), 3, gamma=gamma, draft=draft,
                               draft_kv=DraftKV("full"), temperature=temperature, seed=11,
                               backend="torch")
    assert res.acceptance_mode == f"sampled(temperature={temperature:g})"
    assert 0.05 < res.acceptance_rate < 0.95  # the draft really differs: both branches are exercised
    cells = (res.tokens[:, 0] * V * V + res.tokens[:, 1] * V + res.tokens[:, 2]).numpy()
    counts = np.bincount(cells, minlength=V**3).astype(float)
    p_target = _joint(target, prompt, temperature)
    assert _chi2_pvalue(counts, p_target) > ALPHA
    # the same test has power: samples of the draft's own distribution are rejected
    q_draft = _joint(draft, prompt, temperature)
    fake = np.random.default_rng(0).multinomial(N_RUNS, q_draft).astype(float)
    assert _chi2_pvalue(fake, p_target) < ALPHA


def test_sampling_rejects_bad_temperatures_and_synthetic_mix(pair):
    from magicdec_model.validate.speculative_loop import SyntheticAcceptance

    target, _ = pair
    prompt = torch.zeros(1, 4, dtype=torch.long)
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            speculative_generate(target, prompt, 4, temperature=bad, draft_kv=DraftKV("full"))
    with pytest.raises(ValueError, match="synthetic"):
        speculative_generate(target, prompt, 4, temperature=1.0, acceptance=SyntheticAcceptance(0.5),
                             draft_kv=DraftKV("full"))


# --------------------------------------------------------------------------- the measure path
VOCAB = 97


@pytest.fixture(scope="module")
def target(tiny_arch):
    arch = tiny_arch("tiny-target", num_hidden_layers=3, intermediate_size=128, vocab_size=VOCAB)
    return Decoder.synthetic(arch, seed=1, dtype=torch.float64)


@pytest.fixture(scope="module")
def windows():
    g = torch.Generator().manual_seed(5)
    return {w: torch.randint(0, VOCAB, (160,), generator=g).tolist() for w in range(2)}


def test_prefill_once_then_shorter_contexts_is_lossless(target, windows):
    """One chunked prefill of the longest context serves every shorter one: greedy SD from the
    truncated cache equals AR from a fresh prefill, token for token, longest context first."""
    new, gamma = 12, 3
    spare = new + 2 * gamma + 4
    ids = sorted(windows)
    pre = prefill_windows(target, [windows[w] for w in ids], [64, 100, 160], spare, chunk=48)
    for L in (160, 100, 64):  # each run writes past L, which the shorter contexts never read
        for spec in (DraftKV("streamingllm", budget=24, sink_tokens=4),
                     DraftKV("snapkv", budget=40, window=16)):
            pre.cache.truncate(torch.full((2,), L))
            dc = build_draft_cache(target, pre.cache, spec, spare, queries=pre.queries[L])
            prompt = torch.tensor([windows[w][:L] for w in ids])
            res = speculative_continue(target, pre.cache, dc, prompt, pre.logits[L], new, gamma=gamma,
                                       backend="torch")
            ar = autoregressive_generate(target, prompt, new, backend="torch").tokens
            assert torch.equal(res.tokens, ar), (L, spec.method)
            assert sum(map(sum, res.request_counts)) == res.request_rounds


def test_full_budget_self_draft_accepts_every_greedy_token(target, windows):
    grid = MeasureGrid(("streamingllm", "snapkv"), (20, 160), (64, 160), (4,), (0.0,), new_tokens=16)
    rows = measure_windows(target, windows, grid)
    assert len(rows) == 2 * 2 * 2 * 2  # windows x methods x budgets x contexts
    for r in rows:
        counts = [int(c) for c in r["accept_counts"].split()]
        assert sum(counts) == r["rounds"]
        assert r["accepted"] == sum(a * c for a, c in enumerate(counts))
        if r["budget"] >= r["seq_len"]:  # the draft is the target itself
            assert r["rejections"] == 0 and r["accepted"] == 4 * r["rounds"]
    small = [r for r in rows if r["budget"] == 20]
    assert any(r["rejections"] > 0 for r in small)  # a 20-token draft does reject
    # resuming: nothing left to run once every key is done
    assert measure_windows(target, windows, grid, done={r["key"] for r in rows}) == []


def test_draft_kv_rules():
    assert draft_kv("streamingllm", 512, 512).method == "full"
    s = draft_kv("streamingllm", 20, 1000)
    assert (s.method, s.budget, s.sink_tokens) == ("streamingllm", 20, 10)
    k = draft_kv("snapkv", 512, 1000)
    assert (k.method, k.window, k.kernel_size) == ("snapkv", 32, 5)
