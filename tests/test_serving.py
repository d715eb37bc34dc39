"""The serving simulator: checks that can fail (queueing laws, agreement with predict at one request,
saturation, KV pool bounds, conservation of requests and tokens) and its parsers."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.serving.costs import serving_model
from magicdec_model.perfmodel.serving.export import export_config, schedule_from_counts
from magicdec_model.perfmodel.serving.policy import Policy, parse_policies, parse_schedule
from magicdec_model.perfmodel.serving.runner import Point, SimSpec, run_point, simulate_point
from magicdec_model.perfmodel.serving.simulator import SchedulerConfig
from magicdec_model.perfmodel.serving.workload import parse_length
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit

OFF = Policy("off", text="off")


def fixed(g: int) -> Policy:
    return Policy("fixed", gamma=g, text=f"fixed:{g}")


OPTIMAL = Policy("optimal", text="optimal", gamma_max=8)


@cache
def model(draft: str = "self", acceptance: float = 0.8, hardware: str = "h100-sxm", seq: int = 4200):
    q = Query(model="llama-3.1-8b", batch=[1], seq_len=[seq], draft=draft, hardware=hardware,
              engine="vllm-h100", gamma=[3], acceptance=acceptance, kv_budget=[512])
    return serving_model(q, seq)


def spec(m, prompt="4000", output="400", n=30, **kw) -> SimSpec:
    return SimSpec(m, parse_length(prompt, "--prompt", "prompt"), parse_length(output, "--output", "output"),
                   n, **kw)


# ----------------------------------------------------------------- one request at a time
def _predict_row(draft: str, seq: int, acceptance: float = 0.8):
    return predict(Query(model="llama-3.1-8b", batch=[1], seq_len=[seq], draft=draft, hardware="h100-sxm",
                         engine="vllm-h100", gamma=[3], acceptance=acceptance, kv_budget=[512],
                         intervals=False)).iloc[0]


def test_one_request_at_a_time_ar_tpot_is_predicts_latency():
    """Closed loop of 1: each decode step is predict's target step at batch 1.  Decode steps read
    4000 + 1 .. 4000 + 398 cached tokens; KV time is linear in them, so the mean step is the step
    at the mean, 4000 + 199.5 (predict at 4200 tokens: within 0.1 %)."""
    m = model()
    res = simulate_point(spec(m, n=3), Point(OFF, concurrency=1))
    tpot = (res.finish - res.first_token) / (res.output - 1)
    ref = _predict_row("self", 4200)["latency_ar_s"]
    assert np.all(np.abs(tpot / ref - 1) < 1e-3)


def test_one_request_at_a_time_sd_tpot_is_predicts_latency():
    """Closed loop of 1 under fixed gamma 3 with every request at the mean rate 0.8 (no spread):
    tokens per step average Omega(3, 0.8) = 2.952, so TPOT -> predict's latency_sd_s.  12,000
    tokens in ~4,000 steps: the sampling error of the mean is about 0.6 % (sd 1.21 tokens/step);
    allowed 2.5 %."""
    m = model()
    res = simulate_point(spec(m, n=30, spread=0.0), Point(fixed(3), concurrency=1, seed=3))
    tpot = (res.finish - res.first_token).sum() / (res.output - 1).sum()
    ref = _predict_row("self", 4200)["latency_sd_s"]
    assert tpot == pytest.approx(ref, rel=0.025)


# ----------------------------------------------------------------- queueing
def test_littles_law_in_steady_state():
    """L = lambda W: the time-average of requests in the system (sampled at every step) equals the
    arrival rate times the mean time in system, below capacity."""
    m = model("eagle", 0.645)
    s = spec(m, prompt="gsm8k", output="gsm8k", n=1500)
    row = run_point(s, Point(fixed(3), qps=20.0, seed=1))
    lam = 1500 / row["span_s"]
    assert row["in_system_mean"] == pytest.approx(lam * row["e2e_mean_s"], rel=0.05)


@pytest.mark.slow
def test_throughput_saturates_and_ttft_grows_past_capacity():
    m = model("eagle", 0.645)
    s = spec(m, prompt="gsm8k", output="gsm8k", n=1500)
    cap = run_point(s, Point(OFF, concurrency=256))["throughput_tok_s"] / s.output.mean  # requests/s
    rows = [run_point(s, Point(OFF, qps=f * cap, seed=2)) for f in (0.3, 2.0, 4.0)]
    thr = [r["throughput_tok_s"] for r in rows]
    ttft = [r["ttft_p50_s"] for r in rows]
    assert thr[0] < 0.5 * thr[1]  # below capacity: throughput follows the load
    assert thr[2] == pytest.approx(thr[1], rel=0.15)  # past capacity: it saturates
    assert ttft[2] > 1.5 * ttft[1] > 3 * ttft[0]  # and the queue (TTFT) keeps growing


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_optimal_is_never_worse_than_off_or_fixed_beyond_seed_noise():
    """Per load, optimal's TPOT p50 (low load) or output throughput (closed loop of 200) against
    the best of off and fixed 1/3; noise = the spread of the best other policy over three seeds."""
    m = model("eagle", 0.645)
    s = spec(m, prompt="gsm8k", output="gsm8k", n=300)
    for load in (Point(OFF, qps=4.0), Point(OFF, concurrency=200)):
        by = {}
        for pol in (OFF, fixed(1), fixed(3), OPTIMAL):
            by[pol.name] = [run_point(s, Point(pol, load.qps, load.concurrency, seed)) for seed in (0, 1, 2)]
        key = "tpot_p50_s" if load.qps else "throughput_tok_s"
        sign = -1 if load.qps else 1
        means = {k: sign * np.mean([r[key] for r in v]) for k, v in by.items()}
        best = max((k for k in means if k != "optimal"), key=means.get)
        noise = np.ptp([r[key] for r in by[best]]) + 1e-12
        assert means["optimal"] >= means[best] - max(noise, 0.02 * abs(means[best])), (load, means)


def test_kv_never_exceeds_the_pool_and_preemption_happens():
    """32K-token prompts, 600 outputs: 64 in flight need far more KV than one H100 holds."""
    m = model("eagle", 0.645, seq=32_000)
    s = spec(m, prompt="32000", output="600", n=64)
    res = simulate_point(s, Point(fixed(3), concurrency=64))
    assert res.preemptions > 0
    assert 0.5 < res.max_kv_fraction <= 1.0
    assert np.array_equal(res.generated, res.output)


def test_advancing_to_the_next_event_is_the_same_simulation():
    """Decode-only stretches advanced together (the default) against one step at a time: without
    speculation the run is deterministic and identical; with it, equal within sampling noise."""
    from magicdec_model.perfmodel.serving.runner import workload
    from magicdec_model.perfmodel.serving.simulator import simulate

    m = model("eagle", 0.645)
    s = spec(m, prompt="gsm8k", output="gsm8k", n=300)
    req, rates = workload(s, 8.0, 0, 1)
    a = simulate(m, req, OFF, rates, s.sched, 1, 0, macro=True)
    b = simulate(m, req, OFF, rates, s.sched, 1, 0, macro=False)
    assert a.steps == b.steps and np.allclose(a.finish, b.finish, rtol=1e-9)
    a = simulate(m, req, fixed(3), rates, s.sched, 1, 0, macro=True)
    b = simulate(m, req, fixed(3), rates, s.sched, 1, 0, macro=False)
    tpot = [np.median((r.finish - r.first_token) / (r.output - 1)) for r in (a, b)]
    assert tpot[0] == pytest.approx(tpot[1], rel=0.03)


def test_two_replicas_serve_twice_the_load():
    """Round-robin over 2 replicas at 2 lambda: each replica sees lambda (Erlang-2 gaps, smoother than
    Poisson): output throughput doubles and the median TPOT stays within 10 %."""
    from dataclasses import replace

    m = model("eagle", 0.645)
    one = spec(m, prompt="gsm8k", output="gsm8k", n=400)
    a = run_point(one, Point(fixed(3), qps=6.0, seed=4))
    b = run_point(replace(one, num_requests=800, replicas=2), Point(fixed(3), qps=12.0, seed=4))
    assert b["throughput_tok_s"] == pytest.approx(2 * a["throughput_tok_s"], rel=0.1)
    assert b["tpot_p50_s"] == pytest.approx(a["tpot_p50_s"], rel=0.1)


def test_a_closed_loop_larger_than_the_requests():
    m = model("eagle", 0.645)
    res = simulate_point(spec(m, prompt="gsm8k", output="gsm8k", n=10), Point(fixed(3), concurrency=50))
    assert np.array_equal(res.generated, res.output) and np.all(res.arrival == 0.0)


def test_same_seed_same_numbers():
    m = model("eagle", 0.645)
    s = spec(m, prompt="gsm8k", output="gsm8k", n=100)
    a = run_point(s, Point(OPTIMAL, qps=10.0, seed=5))
    b = run_point(s, Point(OPTIMAL, qps=10.0, seed=5))
    assert a == b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 25), prompt=st.integers(1, 3000), out_hi=st.integers(1, 200),
       qps=st.floats(0.5, 200), pol=st.sampled_from(["off", "fixed:1", "fixed:4", "optimal",
                                                    "schedule:1-4:3,5-8:1,9-100:0"]),
       max_tokens=st.integers(16, 4096), max_seqs=st.integers(1, 16), seed=st.integers(0, 99))
def test_requests_and_tokens_are_conserved(n, prompt, out_hi, qps, pol, max_tokens, max_seqs, seed):
    m = model("eagle", 0.645)
    s = spec(m, prompt=f"uniform:1:{prompt}", output=f"uniform:1:{out_hi}", n=n,
             sched=SchedulerConfig(max_seqs=max_seqs, max_batched_tokens=max_tokens))
    policy = parse_policies(pol, [3])[0]
    res = simulate_point(s, Point(policy, qps=qps, seed=seed))
    assert np.array_equal(res.generated, res.output)  # every request: exactly its output tokens
    assert np.all(np.isfinite(res.finish)) and np.all(np.isfinite(res.first_token))
    assert np.all(res.arrival <= res.first_token) and np.all(res.first_token <= res.finish)
    assert res.decode_tokens + n == res.output.sum() or res.preemptions  # prefill emits one each
    assert res.max_kv_fraction <= 1.0
    row = run_point(s, Point(policy, qps=qps, seed=seed))
    for k, v in row.items():
        if isinstance(v, float):
            assert math.isfinite(v), k


# ----------------------------------------------------------------- parsers and export
def test_schedules_follow_vllm_and_trtllm_semantics():
    vllm = Policy("schedule", table=parse_schedule("1-16:3,64-128:2,256-4096:0", "x"))
    # vLLM PR #32374: inclusive ranges, a gap keeps the gamma of the range below it
    assert [vllm.gamma_at(b) for b in (1, 16, 17, 63, 64, 128, 200, 256, 5000)] == [3, 3, 3, 3, 2, 2, 2, 0, 0]
    trt = Policy("schedule", table=parse_schedule("4:4,8:2,32:1", "x"))
    # TensorRT-LLM draft_len_schedule {4: 4, 8: 2, 32: 1}: <= 4 -> 4, <= 8 -> 2, <= 32 -> 1, else off
    assert [trt.gamma_at(b) for b in (1, 4, 5, 8, 9, 32, 33)] == [4, 4, 2, 2, 1, 1, 0]


@pytest.mark.parametrize("bad", ["schedule:", "schedule:1-4:3,2-8:1", "fixed:0", "fixed:99", "bogus",
                                 "schedule:4:2,1-8:1", "off,off"])
def test_bad_policies_are_refused(bad):
    with pytest.raises(InputError):
        parse_policies(bad, [3])


@pytest.mark.parametrize("bad", ["0", "uniform:5:2", "lognormal:0:1", "lognormal:10:9", "abc", "1.5"])
def test_bad_lengths_are_refused(bad):
    with pytest.raises(InputError):
        parse_length(bad, "--prompt", "prompt")


def test_export_of_an_adaptive_policy_in_each_engines_format():
    import json

    table = schedule_from_counts({"1:4": 10, "3:4": 5, "20:2": 7, "40:2": 1, "300:0": 9})
    assert table == ((1, 15, 4), (16, 255, 2), (256, 1_000_000, 0))
    cfg = json.loads(export_config("vllm", OPTIMAL, "eagle", "eagle", table))
    assert cfg["method"] == "eagle" and cfg["num_speculative_tokens"] == 4
    assert cfg["num_speculative_tokens_per_batch_size"] == {"1-15": 4, "16-255": 2, "256-1000000": 0}
    trt = export_config("trtllm", OPTIMAL, "ngram", "ngram", table)
    assert "decoding_type: NGram" in trt and "draft_len_schedule: {15: 4, 255: 2}" in trt
    assert "max_concurrency: 255" in trt
    sg = export_config("sglang", fixed(3), "eagle", "eagle")
    assert "--speculative-num-steps 3" in sg and "--speculative-num-draft-tokens 4" in sg
    with pytest.raises(InputError):
        export_config("vllm", OPTIMAL, "self", "self", table)
