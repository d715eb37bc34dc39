"""Simulation points (policy x load x seed), run in local processes or on a Dask cluster.

A point's workload (arrivals, lengths, per-request acceptance) depends on its load and seed only,
so every policy at a point serves the same requests (common random numbers: policy differences
are not seed noise).  N replicas behind a round-robin router each serve every N-th request.

Executors: ``local`` (a process pool of ``jobs`` processes; 1 runs in this process) and ``dask``
(``dask.distributed``: a ``LocalCluster`` of ``jobs`` workers, or the scheduler at an address).
Dask, not Ray: a pure-Python wheel that installs quickly and starts an in-process cluster for tests,
with the same futures API as the local pool (docs/serving.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .costs import ServingModel
from .metrics import merge, summarize
from .policy import Policy
from .simulator import SchedulerConfig, SimResult, simulate
from .workload import Arrivals, LengthDist, Requests, make_requests

#: Default spread (standard deviation) of the per-request acceptance rate around the mean: the
#: per-request equivalent i.i.d. rates of EAGLE on ShareGPT at gamma 3 in SpecDecode-Bench's traces
#: (data/llama3.1-8B/combined_sharegpt.jsonl, 310 requests) have sd 0.117 around a mean of 0.617;
#: CNN/DM 0.062, GSM8K 0.057; n-gram on ShareGPT 0.161 (docs/serving.md).
ACCEPTANCE_SPREAD = 0.12

EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class SimSpec:
    """Everything a simulation point needs besides its policy, load and seed."""

    model: ServingModel
    prompt: LengthDist
    output: LengthDist
    num_requests: int
    sched: SchedulerConfig = SchedulerConfig()
    burstiness: float = 1.0
    spread: float = ACCEPTANCE_SPREAD
    slo_ttft: float = math.inf
    slo_tpot: float = math.inf
    replicas: int = 1
    trace: Requests | None = None


@dataclass(frozen=True)
class Point:
    """One simulation: a policy at a load (qps, or concurrency for a closed loop) and a seed."""

    policy: Policy
    qps: float = 0.0
    concurrency: int = 0
    seed: int = 0


def request_rates(mean: float, spread: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-request acceptance rates: Beta with mean ``mean`` and sd ``spread`` (clipped where
    the Beta cannot have that sd), in [0, 1]."""
    if spread <= 0 or mean <= 0 or mean >= 1:
        return np.full(n, float(mean))
    var = min(spread ** 2, 0.9 * mean * (1 - mean))
    k = mean * (1 - mean) / var - 1
    return rng.beta(mean * k, (1 - mean) * k, n)


def workload(spec: SimSpec, qps: float, concurrency: int, seed: int) -> tuple[Requests, np.ndarray]:
    """The requests and per-request acceptance rates of a load point and seed."""
    rng = np.random.default_rng([seed, 1])
    if spec.trace is not None:
        req = spec.trace
    else:
        if concurrency:
            arr = Arrivals("closed", concurrency=concurrency)
        else:
            arr = Arrivals("gamma" if spec.burstiness != 1.0 else "poisson", qps=qps,
                           burstiness=spec.burstiness)
        req = make_requests(spec.num_requests, spec.prompt, spec.output, arr, rng)
    return req, request_rates(spec.model.rate, spec.spread, len(req), rng)


def _split(req: Requests, rates: np.ndarray, k: int, n: int) -> tuple[Requests, np.ndarray]:
    sl = slice(k, None, n)
    return Requests(req.arrival[sl], req.prompt[sl], req.output[sl]), rates[sl]


def simulate_point(spec: SimSpec, point: Point) -> SimResult:
    """Simulate one point (all replicas) and merge the replicas' results."""
    req, rates = workload(spec, point.qps, point.concurrency, point.seed)
    n = spec.replicas
    results = []
    for k in range(n):
        r, a = _split(req, rates, k, n) if n > 1 else (req, rates)
        conc = 0
        if point.concurrency:
            conc = point.concurrency // n + (1 if k < point.concurrency % n else 0)
            if conc == 0:
                continue
        results.append(simulate(spec.model, r, point.policy, a, spec.sched, point.seed * 1009 + k, conc))
    return merge(results)


def run_point(spec: SimSpec, point: Point) -> dict:
    """One output row: the policy, the load and the metrics (:data:`.metrics.COLUMNS` first)."""
    res = simulate_point(spec, point)
    row = {"policy": point.policy.name, "qps": point.qps, "concurrency": point.concurrency}
    row.update(summarize(res, spec.slo_ttft, spec.slo_tpot))
    row["seed"] = point.seed
    row["gamma_by_batch"] = {f"{b}:{g}": v for (b, g), v in sorted(res.gamma_by_batch.items())}
    return row


def _call(args: tuple[SimSpec, Point]) -> dict:
    return run_point(*args)


def run_points(spec: SimSpec, points: Sequence[Point], executor: str = "local", jobs: int = 1,
               scheduler: str | None = None, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Rows of every point, in the order given (``progress(done)`` after each)."""
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r} is not one of: {', '.join(EXECUTORS)}")
    tasks = [(spec, p) for p in points]
    rows: list[dict] = []
    if executor == "dask":
        return _run_dask(tasks, jobs, scheduler, progress)
    if jobs <= 1 or len(tasks) == 1:
        for t in tasks:
            rows.append(_call(t))
            if progress:
                progress(len(rows))
        return rows
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        for row in pool.map(_call, tasks):
            rows.append(row)
            if progress:
                progress(len(rows))
    return rows


def _run_dask(tasks, jobs: int, scheduler: str | None, progress) -> list[dict]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--executor dask needs dask.distributed: pip install 'magicdec-model[dask]'"
                         ) from None
    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=jobs > 1,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = client.map(_call, tasks, pure=False)
        rows = []
        for f in futures:
            rows.append(f.result())
            if progress:
                progress(len(rows))
        return rows
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def max_qps_under_slo(spec: SimSpec, policy: Policy, seed: int, attainment: float = 0.9,
                      start: float = 1.0, rel_tol: float = 0.02) -> float:
    """The largest Poisson load (requests/s) whose SLO attainment is at least ``attainment``:
    doubling until it fails, then bisection to ``rel_tol`` (0 if even a tiny load fails)."""
    def ok(q: float) -> bool:
        return run_point(spec, Point(policy, qps=q, seed=seed))["slo_attainment"] >= attainment
    lo, hi = 0.0, start
    for _ in range(30):
        if not ok(hi):
            break
        lo, hi = hi, hi * 2
    else:
        return lo
    if lo == 0.0:  # shrink to find a feasible load
        for _ in range(12):
            hi_try = hi / 2
            if ok(hi_try):
                lo = hi_try
                break
            hi = hi_try
        if lo == 0.0:
            return 0.0
    while (hi - lo) > rel_tol * lo:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo

