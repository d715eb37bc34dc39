"""An interrupted validate run (SIGINT, then SIGKILL) resumes without re-measuring or losing points."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from child_signals import default_sigint

ARGS = ["--device", "cpu", "--model", "llama-68m", "--layers", "1", "--batch", "1",
        "--seq-len", "128,256", "--kv-budget", "32", "--gamma", "2", "--new-tokens", "8",
        "--threads", "1"]
#: the command line torchrun also starts on every rank
VALIDATE = [sys.executable, "-m", "magicdec_model.cli.main", "validate"]


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _start(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [*VALIDATE, *ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)


def _interrupt_after(proc: subprocess.Popen, csv_path: Path, rows: int, sig: int) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run finished before it could be interrupted:\n{proc.stderr.read()}")
        if len(_rows(csv_path)) >= rows:
            proc.send_signal(sig)
            proc.wait(timeout=60)
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no measurements appeared in time")


def _point_rows(rows: list[dict]) -> Counter:
    # a point owns one row per quantity it measures: (key, op) is unique over the whole file
    return Counter((r["key"], r["op"]) for r in rows)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)  # its own waits add up to 540 s; ~25 s when the machine is quiet
def test_interrupted_run_resumes_without_remeasuring_or_losing_points(tmp_path):
    out = tmp_path / "run"
    csv_path = out / "measurements.csv"

    # 1. Ctrl-C mid-way: exit 130, a consistent CSV, a hint to resume
    proc = _start(out)
    _interrupt_after(proc, csv_path, 6, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr.read()
    assert "--resume" in proc.stderr.read()
    after_int = _rows(csv_path)
    assert after_int and all(r["status"] == "ok" for r in after_int)

    # 2. without --resume the folder is refused (nothing is overwritten)
    refused = subprocess.run([*VALIDATE, *ARGS, "--out", str(out)],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    assert _rows(csv_path) == after_int

    # 3. resume, then SIGKILL (no chance to clean up) a few points later
    proc = _start(out, "--resume")
    _interrupt_after(proc, csv_path, len(after_int) + 8, signal.SIGKILL)
    after_kill = _rows(csv_path)
    assert after_kill[: len(after_int)] == after_int  # nothing rewritten
    assert max(_point_rows(after_kill).values()) == 1  # nothing measured twice so far

    # 4. resume to the end
    done = subprocess.run([*VALIDATE, *ARGS, "--out", str(out),
                           "--resume"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    final = _rows(csv_path)
    counts = _point_rows(final)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    # every row measured before the interruptions is still there, unchanged and first
    kept = [r for r in after_kill if r]
    assert final[: len(kept)] == kept
    # and the run is complete: the same keys as an uninterrupted plan
    keys = {r["key"] for r in final}
    assert sum(k.startswith("micro|") for k in keys) == 23
    assert sum(k.startswith("check|ar") for k in keys) == 2
    assert sum(k.startswith("check|sd") for k in keys) == 2
    assert sum(k.startswith("peak|") for k in keys) == 1
    assert "already in" in done.stdout
    for name in ("profile.toml", "comparison.csv", "report.html"):
        assert (out / name).stat().st_size > 0


@pytest.mark.unit
def test_a_row_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    from magicdec_model.validate.results import MeasurementLog

    path = tmp_path / "measurements.csv"
    log = MeasurementLog(path)
    log.append([{"key": "micro|a", "stage": "micro", "value": 1.0, "status": "ok"}])
    log.append([{"key": "micro|b", "stage": "micro", "value": 2.0, "status": "ok"}])
    whole = path.read_bytes()
    path.write_bytes(whole + b"micro|c,micro,att")  # a kill in the middle of a write
    again = MeasurementLog(path)
    assert again.keys == {"micro|a", "micro|b"}
    assert path.read_bytes() == whole
    again.append([{"key": "micro|c", "stage": "micro", "value": 3.0, "status": "ok"}])
    assert [r["key"] for r in MeasurementLog(path).rows] == ["micro|a", "micro|b", "micro|c"]


@pytest.mark.unit
def test_out_of_memory_and_errors_become_a_status_not_a_crash():
    import torch

    from magicdec_model.validate.stages import attempt

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def cpu_oom():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    def broken():
        raise ValueError("shape mismatch\nsecond line")

    assert attempt(oom, torch.device("cpu"))["status"] == "oom"
    assert attempt(cpu_oom, torch.device("cpu"))["status"] == "oom"
    err = attempt(broken, torch.device("cpu"))
    assert err["status"] == "error" and err["detail"] == "ValueError: shape mismatch"

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(interrupted, torch.device("cpu"))
