"""An interrupted or concurrent `sweep` never leaves a file that could be taken for a complete one.

The sweep runs as a real process over a 300,000-row grid and is stopped while it is writing (its
temporary ``NAME.<pid>-<random>.partial`` file already holds data): by SIGINT (Ctrl-C), by SIGTERM, and
by SIGKILL (no chance to clean up).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from child_signals import default_sigint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI = [sys.executable, "-m", "magicdec_model.cli.main"]
BIG = ["--batch", ",".join(map(str, range(1, 3001))),
       "--seq-len", ",".join(map(str, range(1000, 100_001, 1000))), "--acceptance", "0.8"]
PREVIOUS = "a previous, complete file\n"


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.partial"))


#: 1,200,000 rows (about 20 s): long enough for a second process to start while it writes
HUGE = [*BIG[:2], "--seq-len", ",".join(map(str, range(250, 100_001, 250))), *BIG[4:]]


def _start(target: Path, grid: list[str] = BIG) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "sweep", "--out", str(target), *grid], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def _wait_mid_write(proc: subprocess.Popen, folder: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sweep ended before it could be interrupted: {proc.stderr.read()}")
        parts = _partials(folder)
        if parts and parts[0].stat().st_size > 1_000_000:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the sweep wrote nothing in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_ctrl_c_or_sigterm_mid_write_removes_the_partial_file_and_says_so(tmp_path, sig):
    target = tmp_path / "grid.csv"
    target.write_text(PREVIOUS)
    proc = _start(target)
    _wait_mid_write(proc, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "of 300,000 rows" in err and "nothing was written" in err
    assert "Traceback" not in err
    assert target.read_text() == PREVIOUS  # the complete file of before, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.csv"]  # no partial, no lock


def test_sigkill_mid_write_leaves_only_a_partial_and_a_concurrent_run_is_refused(tmp_path):
    target = tmp_path / "grid.csv"
    proc = _start(target, HUGE)
    _wait_mid_write(proc, tmp_path)
    # a second sweep on the same file while the first writes: refused, one line naming the owner
    second = subprocess.run([*CLI, "sweep", "--out", str(target), "--batch", "1"], capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and "another magicdec-model run" in lines[0]
    assert proc.poll() is None, "the first run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not target.exists()  # nothing under the final name
    parts = _partials(tmp_path)
    assert len(parts) == 1 and parts[0].name.startswith("grid.csv.")
    # the next run on that file replaces the stale lock and removes the killed run's partial
    done = subprocess.run([*CLI, "sweep", "--out", str(target), "--batch", "1,2", "--seq-len", "1k"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(target)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.csv"]
