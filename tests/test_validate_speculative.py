"""The SD loop: lossless under greedy acceptance, real and synthetic acceptance counting."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.speculative_loop import (  # noqa: E402
    DraftKV,
    SyntheticAcceptance,
    autoregressive_generate,
    speculative_generate,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("single_torch_thread")]

VOCAB = 97
PROMPT_LEN = 48
NEW = 24


@pytest.fixture(scope="module")
def target(tiny_arch):
    """The shared tiny model, deeper and wider in the MLP: a target for the draft below."""
    arch = tiny_arch("tiny-target", num_hidden_layers=3, intermediate_size=128, vocab_size=VOCAB)
    return Decoder.synthetic(arch, seed=1, dtype=torch.float64)


@pytest.fixture(scope="module")
def standalone(tiny_arch):
    """A standalone draft half the target's width: 2 query heads sharing 1 KV head, 1 layer."""
    arch = tiny_arch("tiny-draft", hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                     num_hidden_layers=1, intermediate_size=64, vocab_size=VOCAB)
    return Decoder.synthetic(arch, seed=2, dtype=torch.float64)


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(0, VOCAB, (3, PROMPT_LEN), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def ar_tokens(target, prompt):
    return autoregressive_generate(target, prompt, NEW, backend="torch").tokens


BUDGETS = [
    DraftKV("streamingllm", budget=24, sink_tokens=4),
    DraftKV("streamingllm", budget=40, sink_tokens=16),
    DraftKV("snapkv", budget=24, window=8),
    DraftKV("snapkv", budget=40, window=16),
    DraftKV("full"),
    DraftKV("streamingllm", budget=24, sink_tokens=4, positions="reindexed"),
]


@pytest.mark.parametrize("gamma", [1, 2, 4, 6])
@pytest.mark.parametrize("kv", BUDGETS, ids=lambda k: f"{k.method}-{k.budget}-{k.positions}")
def test_sd_is_lossless_self_speculation(target, prompt, ar_tokens, gamma, kv):
    res = speculative_generate(target, prompt, NEW, gamma=gamma, draft_kv=kv, backend="torch")
    assert res.tokens.shape == (3, NEW)
    assert torch.equal(res.tokens, ar_tokens)
    assert res.acceptance_mode == "greedy"
    assert 0.0 <= res.acceptance_rate <= 1.0


@pytest.mark.parametrize("gamma", [1, 3, 5])
@pytest.mark.parametrize("kv", BUDGETS[:1] + BUDGETS[2:3] + BUDGETS[4:],
                         ids=lambda k: f"{k.method}-{k.budget}-{k.positions}")
def test_sd_is_lossless_standalone_draft(target, standalone, prompt, ar_tokens, gamma, kv):
    res = speculative_generate(
        target, prompt, NEW, gamma=gamma, draft=standalone, draft_kv=kv, backend="torch"
    )
    assert torch.equal(res.tokens, ar_tokens)
    kinds = {s.kind for s in res.steps}
    assert {"prefill", "draft_prefill", "draft_select", "draft", "verify"} <= kinds


def test_sd_is_lossless_with_bf16_draft_disagreeing(target, prompt, ar_tokens):
    """A draft in another precision proposes different tokens; the output must not change."""
    rough = Decoder.synthetic(target.arch, seed=1, dtype=torch.float32)
    res = speculative_generate(target, prompt, NEW, gamma=3, draft=rough,
                               draft_kv=DraftKV("streamingllm", budget=20, sink_tokens=4))
    assert torch.equal(res.tokens, ar_tokens)


def test_self_speculation_with_budget_over_sequence_accepts_everything(target, prompt, ar_tokens):
    kv = DraftKV("streamingllm", budget=PROMPT_LEN + NEW + 8)
    res = speculative_generate(target, prompt, NEW, gamma=4, draft_kv=kv, backend="torch")
    assert torch.equal(res.tokens, ar_tokens)
    assert res.acceptance_rate == 1.0
    assert res.mean_accepted == 4.0
    assert res.rounds == -(-(NEW - 1) // 5)  # 5 tokens per round after the prefill's token
    for s in res.steps:
        if s.kind == "verify":
            assert s.accepted == [4, 4, 4] and s.q_len == 5


def test_small_budget_lowers_acceptance(target, prompt):
    full = speculative_generate(target, prompt, NEW, gamma=4, draft_kv=DraftKV("full"))
    small = speculative_generate(
        target, prompt, NEW, gamma=4, draft_kv=DraftKV("streamingllm", budget=12, sink_tokens=4)
    )
    assert full.acceptance_rate == 1.0
    assert small.acceptance_rate < 1.0
    assert small.rounds > full.rounds


def test_acceptance_counting_is_consistent_with_records(target, standalone, prompt):
    res = speculative_generate(target, prompt, NEW, gamma=3, draft=standalone)
    verifies = [s for s in res.steps if s.kind == "verify"]
    assert len(verifies) == res.rounds
    accepted = [a for s in verifies for a, on in zip(s.accepted, s.active, strict=True) if on]
    assert sum(accepted) == res.accepted_tokens
    assert sum(a < 3 for a in accepted) == res.rejected_rounds
    assert len(accepted) == res.request_rounds <= 3 * res.rounds
    assert res.proposed_tokens == 3 * res.request_rounds
    # every request stops once it has NEW tokens: its emitted count is sum(a + 1) + 1 >= NEW
    for b in range(3):
        emitted = 1 + sum(s.accepted[b] + 1 for s in verifies if s.active[b])
        assert NEW <= emitted < NEW + 4
    drafts = [s for s in res.steps if s.kind == "draft"]
    assert len(drafts) == 3 * res.rounds
    assert all(s.seconds >= 0 for s in res.steps)


def test_synthetic_acceptance_is_labelled_seeded_and_near_its_rate(target, prompt):
    acc = SyntheticAcceptance(rate=0.6, seed=3)
    a = speculative_generate(target, prompt, 40, gamma=4, acceptance=acc)
    b = speculative_generate(target, prompt[:, :8], 40, gamma=4, acceptance=acc)
    assert a.acceptance_mode == "synthetic-bernoulli(rate=0.6, seed=3)"
    assert [s.accepted for s in a.steps if s.kind == "verify"] == [
        s.accepted for s in b.steps if s.kind == "verify"
    ]
    assert 0.4 < a.acceptance_rate < 0.8  # about 80 Bernoulli trials
    never = speculative_generate(target, prompt, 10, gamma=4,
                                 acceptance=SyntheticAcceptance(0.0))
    assert never.accepted_tokens == 0 and never.rounds == 9
    with pytest.raises(ValueError):
        SyntheticAcceptance(1.5)


def test_on_step_hook_and_bad_arguments(target, prompt):
    seen = []
    speculative_generate(target, prompt[:1], 5, gamma=2, on_step=seen.append)
    assert seen[0].kind == "prefill" and seen[0].q_len == PROMPT_LEN
    assert any(s.kind == "verify" for s in seen)
    with pytest.raises(ValueError):
        speculative_generate(target, prompt, 5, gamma=0)
    with pytest.raises(ValueError):
        speculative_generate(target, prompt, 5, acceptance="sampling")
    with pytest.raises(ValueError):
        DraftKV("h2o")


def test_sd_is_lossless_on_a_registry_model_slice():
    """llama-68m (MHA, vocab 32000) sliced to one layer, as the docs example does for 8B."""
    dec = Decoder.synthetic("llama-68m", layers=1, seed=0, dtype=torch.float64)
    p = torch.randint(0, dec.arch.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    kv = DraftKV("streamingllm", budget=32)
    sd = speculative_generate(dec, p, 8, gamma=3, draft_kv=kv)
    assert torch.equal(sd.tokens, autoregressive_generate(dec, p, 8).tokens)


def test_sd_is_lossless_qwen_like_bias_tied_group7(tiny_arch):
    arch = tiny_arch("tiny-qwen", model_type="qwen2", hidden_size=56, num_attention_heads=7,
                     num_key_value_heads=1, intermediate_size=64, vocab_size=VOCAB,
                     tie_word_embeddings=True, rope_theta=1000000.0)
    assert arch.qkv_bias and arch.tie_embeddings and arch.gqa_group == 7
    dec = Decoder.synthetic(arch, seed=4, dtype=torch.float64)
    p = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(2))
    for kv in (DraftKV("snapkv", budget=20, window=8), DraftKV("streamingllm", 20, sink_tokens=4)):
        sd = speculative_generate(dec, p, 12, gamma=4, draft_kv=kv)
        assert torch.equal(sd.tokens, autoregressive_generate(dec, p, 12).tokens)


def test_custom_clock_times_every_step(target, prompt):
    ticks = iter(range(10_000))
    res = speculative_generate(target, prompt, 6, gamma=2, clock=lambda: float(next(ticks)))
    forward = [s for s in res.steps if s.kind != "sd_loop"]
    assert all(s.seconds == 1.0 for s in forward)  # one tick between start and stop
    assert res.seconds("verify") == res.rounds
    # each round's bookkeeping: one tick before its first draft step, one after its verify
    loops = [s for s in res.steps if s.kind == "sd_loop"]
    assert len(loops) == res.rounds and all(s.seconds == 2.0 for s in loops)
    ar = autoregressive_generate(target, prompt, 4, clock=lambda: 0.0)
    assert [s.kind for s in ar.steps] == ["prefill", "decode", "decode", "decode"]
    assert ar.seconds() == 0.0


def test_before_step_runs_untimed_before_every_forward_step(target, prompt):
    """The validator flushes the caches in ``before_step``: once per timed forward step (prefill,
    draft, verify, decode), never inside a step's timing nor inside the loop's bookkeeping."""
    now = [0.0]
    calls = []

    def before() -> None:  # a flush that "takes" 100 s of the clock
        calls.append(now[0])
        now[0] += 100.0

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    res = speculative_generate(target, prompt, 6, gamma=2, clock=clock, before_step=before)
    forward = [s for s in res.steps if s.kind != "sd_loop"]
    assert len(calls) == len(forward)
    assert all(s.seconds == 1.0 for s in forward)  # the 100 s never reach a step
    assert all(s.seconds < 100.0 for s in res.steps if s.kind == "sd_loop")
    calls.clear()
    ar = autoregressive_generate(target, prompt, 4, clock=clock, before_step=before)
    assert len(calls) == len(ar.steps) == 4 and all(s.seconds == 1.0 for s in ar.steps)
