"""Benchmark: speed of the serving simulator, and a peer simulator on the same requests in the same run.

1. Ours at scale: ``--requests`` (default 100,000) ShareGPT-like requests (the ``sharegpt`` length
   preset), LLaMA-3.1-8B on one H100 under the vllm-h100 engine with an EAGLE head at fixed gamma 3,
   Poisson arrivals at ``--qps``: wall time, simulated engine steps per second, requests per second,
   peak resident memory.
2. The peer: SpecDecode-Bench's simulator (its public repository, a checkout given by
   ``--peer-dir``; Vidur, the first choice, installs from pip but ships none of the profiling data
   it needs, so it does not run offline).  Its ``simulate_like_experiment`` runs 300 sampled requests
   of a dataset, each as a static batch of ``B`` copies, with and without EAGLE at fixed gamma 3; its
   engine steps are counted by wrapping its ``predict_forward_pass_time``.  Ours then serves the same
   300 requests' lengths (``B`` copies each) in a closed loop of ``B`` in flight, with and without
   EAGLE, and the two steps-per-second figures are compared.

Goal (issue 19): at least 10x the peer's simulated steps per second, and 100,000 ShareGPT-like
requests in under a minute on a 2-core machine.

Run: python benchmarks/bench_simulate.py --peer-dir PATH/TO/SpecDecode-Bench/simulator
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from magicdec_model.perfmodel.serving.costs import serving_model
from magicdec_model.perfmodel.serving.policy import Policy
from magicdec_model.perfmodel.serving.runner import Point, SimSpec, simulate_point
from magicdec_model.perfmodel.serving.simulator import simulate
from magicdec_model.perfmodel.serving.workload import Requests, parse_length
from magicdec_model.perfmodel.sweep import Query


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _model(seq: int):
    q = Query(model="llama-3.1-8b", batch=[1], seq_len=[seq], draft="eagle", hardware="h100-sxm",
              engine="vllm-h100", gamma=[3])
    return serving_model(q, seq)


def ours_at_scale(n: int, qps: float) -> dict:
    m = _model(700)
    spec = SimSpec(m, parse_length("sharegpt", "--prompt", "prompt"),
                   parse_length("sharegpt", "--output", "output"), n)
    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate_point(spec, Point(Policy("fixed", gamma=3, text="fixed:3"), qps=qps, seed=0))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"requests": n, "qps": qps, "wall_s": wall, "cpu_s": cpu, "steps": res.steps,
            "steps_per_s": res.steps / wall,
            "requests_per_s": n / wall, "simulated_s": float(np.nanmax(res.finish)),
            "output_tokens": int(res.generated.sum()), "peak_rss_mb": _rss_mb(),
            "rss_growth_mb": _rss_mb() - before}


def peer(peer_dir: Path, dataset: str, batch: int) -> tuple[dict, list[tuple[int, int]]]:
    """Run the peer; return its timing and the (prompt, output) lengths of the requests it used."""
    sys.path.insert(0, str(peer_dir))
    cwd = os.getcwd()
    os.chdir(peer_dir)
    try:
        import predictor
        import simulator as peer_sim
        from request import AccLenGroundTruth

        calls = {"n": 0}
        orig = predictor.TimePredictor.predict_forward_pass_time

        def counted(self, *a, **k):
            calls["n"] += 1
            return orig(self, *a, **k)
        predictor.TimePredictor.predict_forward_pass_time = counted
        sim = peer_sim.SpecSimulator(f"data/llama3.1-8B/combined_{dataset}.jsonl",
                                     predictor.AccLenPredictMethod.FIXED_3, AccLenGroundTruth.EAGLE, dataset)
        import random
        random.seed(peer_sim.SEED)
        used = random.sample(sim.data, k=300)
        lengths = [(r.prompt_len, r.generated_len) for r in used]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            sim.simulate_like_experiment(batch_size=batch)
        wall = time.perf_counter() - t0
        predictor.TimePredictor.predict_forward_pass_time = orig
    finally:
        os.chdir(cwd)
        sys.path.remove(str(peer_dir))
    return {"dataset": dataset, "batch": batch, "wall_s": wall, "steps": calls["n"],
            "steps_per_s": calls["n"] / wall}, lengths


def ours_on_peer_workload(lengths: list[tuple[int, int]], batch: int) -> dict:
    p = np.repeat([a for a, _ in lengths], batch).astype(np.int64)
    o = np.repeat([b for _, b in lengths], batch).astype(np.int64)
    m = _model(int(p.mean() + o.mean() / 2))
    steps, t0 = 0, time.perf_counter()
    for pol in (Policy("off", text="off"), Policy("fixed", gamma=3, text="fixed:3")):
        req = Requests(np.full(len(p), np.nan), p, o)
        req.arrival[:batch] = 0.0
        res = simulate(m, req, pol, np.full(len(p), m.rate), SimSpec(m, None, None, 0).sched, 0, batch)
        steps += res.steps
    wall = time.perf_counter() - t0
    return {"batch": batch, "requests": len(p), "wall_s": wall, "steps": steps, "steps_per_s": steps / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--qps", type=float, default=8.0, help="Poisson load of the scale run (requests/s)")
    ap.add_argument("--peer-dir", type=Path, default=None, help="a SpecDecode-Bench/simulator checkout")
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    out: dict = {}
    if a.peer_dir is not None:
        pr, lengths = peer(a.peer_dir, a.dataset, a.batch)
        ours = ours_on_peer_workload(lengths, a.batch)
        out["peer"] = pr
        out["ours_on_peer_workload"] = ours
        out["steps_per_s_ratio"] = ours["steps_per_s"] / pr["steps_per_s"]
        print(f"peer (SpecDecode-Bench, {a.dataset}, batch {a.batch}): {pr['steps']:,} steps in "
              f"{pr['wall_s']:.2f} s = {pr['steps_per_s']:,.0f} steps/s")
        print(f"ours on the same requests (closed loop of {a.batch}): {ours['steps']:,} steps in "
              f"{ours['wall_s']:.2f} s = {ours['steps_per_s']:,.0f} steps/s "
              f"({out['steps_per_s_ratio']:.1f}x the peer)")
    sc = ours_at_scale(a.requests, a.qps)
    out["ours_at_scale"] = sc
    print(f"ours: {sc['requests']:,} ShareGPT-like requests at {sc['qps']:g} req/s: {sc['wall_s']:.1f} s "
          f"wall ({sc['cpu_s']:.1f} s CPU), {sc['steps']:,} steps ({sc['steps_per_s']:,.0f} steps/s), "
          f"{sc['requests_per_s']:,.0f} requests/s, {sc['simulated_s'] / 3600:.2f} h simulated, "
          f"peak RSS {sc['peak_rss_mb']:.0f} MB")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
