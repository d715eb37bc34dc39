"""Benchmark: the validator's all-reduce microbenchmark on 2 gloo processes (CPU), message sizes of
1, 64 and 1024 tokens of llama-68m's hidden state in fp32 (3 KiB, 192 KiB, 3 MiB).

What it shows: the time grows with the message (the 1024-token all-reduce takes longer than the
1-token one on an idle machine).  That is a timing claim, so it lives here and not in the test suite:
on a loaded machine (the 2-core CI box with other jobs) the two medians can swap.
tests/test_validate_allreduce.py checks what holds under any load: every rank reports the same
(maximum) time, the message sizes come from perfmodel, the reduction sums.

Run: python benchmarks/bench_allreduce.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import json
    from dataclasses import replace
    import torch
    import torch.distributed as dist
    from magicdec_model.perfmodel.architecture import get_model
    from magicdec_model.validate.decoder import Decoder
    from magicdec_model.validate.distributed import TensorParallel
    from magicdec_model.validate.microbench import MicroBench, MicroPoint
    from magicdec_model.validate.tensor_parallel import parallelize
    from magicdec_model.validate.timing import Timer, TimerConfig

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    arch = replace(get_model("llama-68m"), dtype_bytes=4)
    dec = parallelize(Decoder.synthetic(arch, layers=1), TensorParallel(rank, world))
    bench = MicroBench(dec, None, Timer("cpu", TimerConfig(flush_cache=False)), dist_group=True)
    out = {}
    for tokens in (1, 64, 1024):
        t = bench.measure(MicroPoint("allreduce_attn", "ladder", tokens, 1, 0, world))
        out[tokens] = [t.median, t.p75]
    dist.destroy_process_group()
    print(json.dumps(out))
    """
)


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                                           MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)))
                 for r in range(2)]
        results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    times = results[0]
    print("all-reduce over 2 gloo processes (max over ranks), llama-68m hidden 768, fp32")
    for tokens, (median, p75) in times.items():
        kib = int(tokens) * 768 * 4 / 1024
        print(f"  {int(tokens):5d} tokens ({kib:7.0f} KiB): median {median * 1e6:9.1f} us, "
              f"p75 {p75 * 1e6:9.1f} us")
    ratio = times["1024"][0] / times["1"][0]
    verdict = "grows with the message" if ratio > 1 else "NOT larger"
    print(f"1024-token / 1-token median: {ratio:.1f}x ({verdict})")


if __name__ == "__main__":
    main()
