"""Draft kinds (eagle, mtp, ngram), verification shapes (trees) and acceptance modes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.drafts import make_draft
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.method_acceptance import lookup_method
from magicdec_model.perfmodel.scenario import step_shape
from magicdec_model.perfmodel.speculative import expected_tokens, omega_positions, rate_from_accept_len
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit
runner = CliRunner()


def _row(**kw):
    base = dict(model="llama-3.1-8b", hardware="h100-sxm", gpus=[1], batch=[1], seq_len=[4000],
                intervals=False)
    base.update(kw)
    return predict(Query(**base)).iloc[0]


def test_expected_tokens_of_each_acceptance_mode_by_hand():
    # per-position rates 0.92, 0.68, 0.38 (vLLM, GLM-4.5-Air MTP): 1 + 0.92 + 0.68 + 0.38 = 2.98
    assert float(omega_positions([0.92, 0.68, 0.38], 3)) == pytest.approx(2.98)
    assert float(omega_positions([0.92, 0.68, 0.38], 1)) == pytest.approx(1.92)
    # tau 2.33 at gamma 3: a with 1 + a + a^2 + a^3 = 2.33; by hand 1 + 0.645 + 0.416 + 0.268 = 2.329
    a = rate_from_accept_len(2.33, 3)
    assert 1 + a + a**2 + a**3 == pytest.approx(2.33, abs=1e-9)
    assert a == pytest.approx(0.645, abs=1e-3)


def test_eagle_head_is_one_target_layer_with_an_input_projection():
    target = get_model("llama-3.1-8b")
    d = make_draft("eagle", target, "auto")
    assert d.kind == "eagle" and d.kv_method == "full" and d.fuse_inputs == 2
    assert d.arch.num_layers == 1 and d.arch.hidden_size == target.hidden_size
    small = make_draft("eagle", target, "auto", draft_vocab=32000)  # EAGLE-3's reduced vocabulary
    assert small.arch.vocab_size == 32000 and not small.shares_head
    with pytest.raises(InputError, match="has no multi-token-prediction module"):
        make_draft("mtp", target, "auto")
    mtp = make_draft("mtp", get_model("deepseek-v3"), "auto")
    assert mtp.arch.num_layers == 1 and mtp.arch.is_moe and mtp.arch.is_mla


def test_tree_shapes():
    d = make_draft("eagle", get_model("llama-3.1-8b"), "auto")
    # a tree of 21 nodes verified with depth 4: q = 21; each draft step expands ceil(20 / 4) = 5
    q, _ = step_shape("verify", d, 4, 8000, 0, verify_tokens=21)
    qd, _ = step_shape("draft", d, 4, 8000, 0, verify_tokens=21)
    assert float(q) == 21 and float(qd) == 5
    chain = _row(draft="eagle", gamma=[4], accept_len=3.0)
    tree = _row(draft="eagle", gamma=[4], accept_len=3.0, verify_tokens=21)
    assert tree["verify_tokens"] == 21 and chain["verify_tokens"] == 5
    assert tree["t_verify_s"] > chain["t_verify_s"] and tree["t_draft_s"] > chain["t_draft_s"]


def test_ngram_has_no_forward_step_and_pays_lookup_and_fraction():
    r = _row(draft="ngram", gamma=[3], accept_len=1.17, draft_fraction=0.16, engine="generic")
    assert r["t_draft_s"] == 0.0 and r["regime_draft"] == "none"
    assert r["t_draft_phase_s"] == pytest.approx(42e-6)  # generic.toml: 42 us per sequence
    # Eq. 1 by hand: tokens 1.17 per iteration; time 0.16 T_V + 0.84 T_T + lookup + SD loop
    cycle = 0.16 * r["t_verify_s"] + 0.84 * r["t_target_s"] + 42e-6 + r["t_sd_loop_s"]
    assert r["speedup"] == pytest.approx(r["t_target_s"] * 1.17 / cycle, rel=1e-9)


def test_vllm_h100_engine_checks():
    # EAGLE, accept length 2.4 at gamma 3 (Llama-3.1-8B GSM8K traces): falls with batch, stays > 1
    df = predict(Query(model="llama-3.1-8b", hardware="h100-sxm", batch=[1, 8, 32, 128], seq_len=[2000],
                       draft="eagle", accept_len=2.4, gamma=[3], engine="vllm-h100", intervals=False))
    sp = df["speedup"].to_numpy()
    assert np.all(np.diff(sp) < 0) and sp.min() > 1.0
    # n-gram, 1.17 tokens per step, proposing in 16% of steps: about 1.1-1.2x at batch 1
    r = _row(draft="ngram", accept_len=1.17, draft_fraction=0.16, gamma=[3], engine="vllm-h100",
             seq_len=[2000])
    assert 1.1 <= r["speedup"] <= 1.2
    # the target step at batch 1 is vLLM's fitted 5.886 ms + 1.207 ms overhead + KV (39 ns/token)
    assert r["t_target_s"] == pytest.approx(5.886e-3 + 1.207e-3 + 2.10e-5 + 2001 * 3.93e-8, rel=0.01)


def test_published_acceptance_of_the_new_kinds():
    e = lookup_method("llama-3.1-8b", "eagle")
    assert e.measured and "eagle3" in e.source and 0.4 < e.rate < 0.8
    m = lookup_method("deepseek-v3", "mtp")
    assert m.rate == pytest.approx(0.875)  # DeepSeek-V3 report: 85-90% second-token acceptance
    missing = lookup_method("qwen3-32b", "eagle")
    assert not missing.measured and missing.source.startswith("default")


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["self", "eagle", "ngram", "llama-3.2-1b"]), batch=st.integers(1, 256),
       seq=st.integers(1000, 64000), gamma=st.integers(1, 8), a=st.floats(0.0, 0.95),
       frac=st.floats(0.05, 1.0))
def test_speedup_never_exceeds_the_tokens_verified(kind, batch, seq, gamma, a, frac):
    r = _row(draft=kind, batch=[batch], seq_len=[seq], gamma=[gamma], acceptance=a,
             draft_fraction=frac, kv_budget=[256], engine="cuda-graph")
    assert 0 < r["speedup"] <= gamma + 1
    assert 1.0 <= r["expected_tokens"] <= gamma + 1
    omega = frac * float(expected_tokens(a, gamma)) + (1 - frac)
    assert r["expected_tokens"] == pytest.approx(omega)


@pytest.mark.parametrize("argv,needle", [
    (["--draft", "mtp"], "no multi-token-prediction module"),
    (["--draft", "eagle", "--accept-len", "2.4"], "not auto"),
    (["--draft", "eagle", "--accept-len", "5", "--gamma", "3"], "exceeds the gamma + 1 = 4"),
    (["--draft", "eagle", "--gamma", "3", "--verify-tokens", "21"], "needs --accept-len"),
    (["--gamma", "3", "--verify-tokens", "3", "--accept-len", "2"], "smaller than a chain"),
    (["--position-acceptance", "0.5,0.9"], "must not increase"),
    (["--draft", "ngram", "--draft-fraction", "0"], "--draft-fraction 0.0 is outside (0, 1]"),
    (["--weight-dtype", "int3"], "--weight-dtype 'int3' is not one of"),
    (["--kv-dtype", "int4"], "--kv-dtype 'int4' is not one of"),
    (["--expert-parallel"], "has no experts"),
    (["--acceptance", "0.8", "--accept-len", "2"], "both set the acceptance"),
])
def test_bad_method_flags_exit_2_with_one_line(argv, needle):
    res = runner.invoke(app, ["predict", "--batch", "1", "--seq-len", "4k", *argv])
    assert res.exit_code == 2, res.output
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_advise_ranks_every_draft_kind_and_report_maps_the_winners():
    from magicdec_model.perfmodel.advise import advise
    from magicdec_model.perfmodel.report import MAP_KINDS, build_report
    from magicdec_model.perfmodel.strategy import cross_strategies

    adv = advise("llama-3.1-8b", "h100-sxm", 1, 8, 8000)
    drafts = set(adv.ranking["draft"])
    assert {"self", "eagle", "ngram", "llama-3.2-1b"} <= drafts
    assert any("mtp: llama-3.1-8b has no multi-token-prediction module" in s for s in adv.skipped)
    q = Query(model="llama-3.1-8b", hardware="h100-sxm", batch=[1, 64], seq_len=[1000, 32000])
    rep = build_report(q, cross_strategies(["self", "eagle", "ngram"], ["streamingllm", "full"], [512]))
    z = np.asarray(rep.figures["strategy_map"].data[0].z, float)
    preds = rep.predictions
    for i, b in enumerate([1, 64]):
        for j, s in enumerate([1000, 32000]):
            cell = preds[(preds["batch"] == b) & (preds["seq_len"] == s) & preds["fits_memory"]]
            if cell.empty:  # nothing fits: no cell is drawn
                assert np.isnan(z[i, j])
                continue
            best = cell.loc[cell["speedup"].idxmax()]
            kind = "self sparse-KV" if best["draft"] == "self" else best["draft"]
            expect = 0 if best["speedup"] < 1.05 else MAP_KINDS.index(kind)
            assert z[i, j] == expect
