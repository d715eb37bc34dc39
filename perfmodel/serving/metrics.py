"""Serving metrics of a simulation, as the engines' benchmarks define them (seconds, tokens).

* TTFT: first token - arrival (queueing and the whole prefill included);
* TPOT: (finish - first token) / (output tokens - 1), per request (requests of one token have
  none), then its percentiles over requests (vLLM's ``benchmark_serving``);
* ITL: the gap between consecutive token-emitting steps of a request - per engine step, not per
  token: under SD one step emits several tokens (BLIS's convention); percentiles from a 2 %-wide
  log histogram;
* E2E: finish - arrival;
* throughput: output tokens / (last finish - first arrival); goodput: requests meeting both SLOs
  per second of the same span; SLO attainment: their share of all requests;
* mean batch: running sequences per engine step; mean gamma and tokens per step: over the steps
  with decoding sequences (tokens per decoding sequence per step).
"""

from __future__ import annotations

import numpy as np

from .simulator import ITL_BINS, SimResult

#: The columns of ``simulate --format json|csv``, in order.
COLUMNS = ("policy", "qps", "concurrency", "throughput_tok_s", "goodput_req_s", "ttft_p50_s",
           "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "itl_p50_s", "e2e_p50_s", "e2e_p99_s",
           "mean_batch", "mean_gamma", "tokens_per_step", "preemptions", "slo_attainment")


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else 0.0


def hist_quantile(hist: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0..1) of the ITL histogram (geometric bin centre, seconds)."""
    total = hist.sum()
    if total == 0:
        return 0.0
    i = int(np.searchsorted(np.cumsum(hist), q * total))
    edges = np.concatenate([[ITL_BINS[0] / 1.02], ITL_BINS, [ITL_BINS[-1] * 1.02]])
    return float(np.sqrt(edges[i] * edges[i + 1]))


def merge(results: list[SimResult]) -> SimResult:
    """The results of N replicas as one (requests concatenated, counters added)."""
    if len(results) == 1:
        return results[0]
    cat = {k: np.concatenate([getattr(r, k) for r in results])
           for k in ("arrival", "first_token", "finish", "prompt", "output", "generated")}
    out = SimResult(**cat)
    for k in ("steps", "decode_steps", "busy_s", "batch_sum", "gamma_sum", "decode_tokens",
              "decode_seq_steps", "preemptions", "in_system_area"):
        setattr(out, k, sum(getattr(r, k) for r in results))
    out.max_kv_fraction = max(r.max_kv_fraction for r in results)
    out.itl_hist = sum(r.itl_hist for r in results)
    for r in results:
        for key, v in r.gamma_by_batch.items():
            out.gamma_by_batch[key] = out.gamma_by_batch.get(key, 0) + v
    return out


def summarize(res: SimResult, slo_ttft: float, slo_tpot: float) -> dict[str, float]:
    """The metric columns (without policy and load) of one simulation."""
    ttft = res.first_token - res.arrival
    e2e = res.finish - res.arrival
    multi = res.output > 1
    tpot = (res.finish[multi] - res.first_token[multi]) / (res.output[multi] - 1)
    tpot_all = np.zeros(len(res.output))
    tpot_all[multi] = tpot
    ok = (ttft <= slo_ttft) & (tpot_all <= slo_tpot)
    span = float(np.nanmax(res.finish) - np.nanmin(res.arrival)) or 1e-30
    return {
        "throughput_tok_s": float(res.generated.sum()) / span,
        "goodput_req_s": float(ok.sum()) / span,
        "ttft_p50_s": _pct(ttft, 50), "ttft_p99_s": _pct(ttft, 99),
        "tpot_p50_s": _pct(tpot, 50), "tpot_p99_s": _pct(tpot, 99),
        "itl_p50_s": hist_quantile(res.itl_hist, 0.5),
        "e2e_p50_s": _pct(e2e, 50), "e2e_p99_s": _pct(e2e, 99),
        "mean_batch": res.batch_sum / max(res.steps, 1),
        "mean_gamma": res.gamma_sum / max(res.decode_steps, 1),
        "tokens_per_step": res.decode_tokens / max(res.decode_seq_steps, 1),
        "preemptions": int(res.preemptions),
        "slo_attainment": float(ok.mean()),
        # extra columns (not in COLUMNS): for checks and the page
        "ttft_p90_s": _pct(ttft, 90), "tpot_p90_s": _pct(tpot, 90), "e2e_p90_s": _pct(e2e, 90),
        "itl_p99_s": hist_quantile(res.itl_hist, 0.99), "e2e_mean_s": float(np.mean(e2e)),
        "ttft_mean_s": float(np.mean(ttft)), "tpot_mean_s": float(np.mean(tpot)) if len(tpot) else 0.0,
        "in_system_mean": res.in_system_area / span, "span_s": span, "steps": res.steps,
        "max_kv_fraction": res.max_kv_fraction,
    }
