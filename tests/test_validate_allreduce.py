"""The all-reduce microbenchmark over 2 gloo processes: max over ranks, sizes from perfmodel, the sum.

Only what holds under any load is asserted here (no comparison of two measured times: the time's
growth with the message size is benchmarks/bench_allreduce.py's)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

# two gloo worker processes; each is given 120 s (communicate), within the 300 s default
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from magicdec_model.perfmodel.architecture import get_model
    from magicdec_model.perfmodel.parallel import shard
    from magicdec_model.validate.decoder import Decoder
    from magicdec_model.validate.microbench import MicroBench, MicroPoint, point_cost
    from magicdec_model.validate.microbench import _max_over_ranks
    from magicdec_model.validate.distributed import TensorParallel
    from magicdec_model.validate.tensor_parallel import parallelize
    from magicdec_model.validate.timing import Timer, TimerConfig, Timing

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    from dataclasses import replace
    arch = replace(get_model("llama-68m"), dtype_bytes=4)  # fp32 on CPU, as validate runs it
    dec = parallelize(Decoder.synthetic(arch, layers=1), TensorParallel(rank, world))
    bench = MicroBench(dec, None, Timer("cpu", TimerConfig(flush_cache=False)), dist_group=True)
    out = {"rank": rank, "points": []}
    for tokens in (1, 64, 1024):
        p = MicroPoint("allreduce_attn", "ladder", tokens, 1, 0, world)
        t = bench.measure(p)
        cost = point_cost(arch, shard(arch, world), p)
        out["points"].append({"tokens": tokens, "median": t.median, "p75": t.p75,
                              "comm_bytes": float(cost.comm_bytes)})
    # the reduction is a maximum: each rank reports a different time, all get the largest
    m = _max_over_ranks(Timing(0.001 * (rank + 1), 0.0, 0.002 * (rank + 1), 5), "cpu")
    out["max"] = [m.median, m.p75]
    # the decoder's TP all-reduce sums the shards' partial outputs
    x = torch.full((2, 3), float(rank + 1))
    out["sum"] = float(TensorParallel(rank, world).all_reduce(x)[0, 0])
    dist.barrier()
    dist.destroy_process_group()
    print(json.dumps(out))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_allreduce_microbenchmark_on_two_gloo_processes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    r0, r1 = sorted(results, key=lambda r: r["rank"])
    # every rank reports the same (maximum) time per point
    for a, b in zip(r0["points"], r1["points"], strict=True):
        assert a["median"] == b["median"] > 0
        assert a["p75"] >= a["median"]
    # message sizes come from perfmodel: tokens x hidden x dtype bytes (llama-68m: 768 x fp32)
    assert [p["comm_bytes"] for p in r0["points"]] == [t * 768 * 4 for t in (1, 64, 1024)]
    # (that a 1024-token message takes longer than a 1-token one is a timing claim that fails on a
    # loaded machine, 2 of 6 runs in issue 17: it is shown by benchmarks/bench_allreduce.py instead)
    assert r0["max"] == pytest.approx([0.002, 0.004]) and r1["max"] == r0["max"]
    assert r0["sum"] == r1["sum"] == 3.0
