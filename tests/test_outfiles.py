"""Output locks and atomic writes (perfmodel/outfiles.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.outfiles import (
    OutputLock,
    OutputLockedError,
    atomic_output,
    atomic_write_text,
    lock_path,
    remove_stale_partials,
)

pytestmark = pytest.mark.e2e

HOLD = """
import sys, time
from magicdec_model.perfmodel.outfiles import OutputLock
lock = OutputLock(sys.argv[1], folder=sys.argv[2] == "folder").acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(target, folder=False) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "folder" if folder else "file"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_file_holds_the_owner_and_is_removed_on_release(tmp_path):
    target = tmp_path / "grid.csv"
    with OutputLock(target) as lock:
        assert lock.path == tmp_path / "grid.csv.lock"
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            OutputLock(target).acquire()  # a second writer, even in the same process
    assert not lock.path.exists()
    with OutputLock(target):  # free again
        pass


def test_a_live_owner_in_another_process_is_named_and_its_death_frees_the_lock(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    proc = _holder(target, folder=True)
    try:
        with pytest.raises(OutputLockedError) as exc:
            OutputLock(target, folder=True).acquire()
        msg = str(exc.value)
        assert f"pid {proc.pid}" in msg and "another magicdec-model run" in msg and "\n" not in msg
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the lock file stays behind
        proc.wait()
    assert lock_path(target, folder=True).exists()
    with OutputLock(target, folder=True) as lock:  # stale: taken over
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_lock_file_naming_a_dead_pid_is_stale(tmp_path):
    target = tmp_path / "g.csv"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(target).write_text(json.dumps({"pid": dead.pid, "host": "x", "since": "then"}))
    with OutputLock(target):
        pass


def test_atomic_write_replaces_the_whole_file_or_nothing(tmp_path):
    target = tmp_path / "profile.toml"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("new but half")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]  # no partial left
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # the file's mode is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]


def test_a_full_disk_is_one_line_and_leaves_the_old_file(tmp_path):
    target = tmp_path / "comparison.csv"
    target.write_text("old\n")
    with pytest.raises(InputError) as exc, atomic_output(target) as tmp:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert "No space left on device" in str(exc.value) and str(target) in str(exc.value)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison.csv"]


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path):
    with pytest.raises(InputError, match="cannot write"):
        atomic_write_text("/proc/magicdec-model-test.txt", "x")


def test_stale_partials_of_a_target_are_removed_and_others_kept(tmp_path):
    target = tmp_path / "g[1].csv"
    mine = tmp_path / "g[1].csv.999999999-abc12345.partial"  # NAME.<pid>-<random>: a gone process
    other = tmp_path / "h.csv.abc123.partial"
    mine.write_text("x")
    other.write_text("y")
    assert remove_stale_partials(target) == [mine]
    assert other.exists()


def test_lock_is_not_left_behind_by_a_normal_exit_of_another_process(tmp_path):
    target = tmp_path / "g.csv"
    code = ("import sys\nfrom magicdec_model.perfmodel.outfiles import OutputLock\n"
            "with OutputLock(sys.argv[1]):\n    pass\n")
    subprocess.run([sys.executable, "-c", code, str(target)], check=True)
    assert not lock_path(target).exists()
    with OutputLock(target):
        pass
