"""Output locks and atomic writes (perfmodel/outfiles.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from magicdec_model.perfmodel import outfiles
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.outfiles import (
    OutputLock,
    OutputLockedError,
    atomic_output,
    atomic_write_text,
    check_not_an_input,
    lock_path,
    new_partial,
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


def test_a_concurrent_sweeps_partial_file_is_never_removed(tmp_path):
    """Issue 17: a sweep to g.csv removed the partial file of a sweep to g.csv.x.csv."""
    other = new_partial(tmp_path / "g.csv.x.csv")  # a run on another target, in progress
    assert other.name.startswith(f"g.csv.x.csv.{os.getpid()}-")
    assert remove_stale_partials(tmp_path / "g.csv") == []
    assert other.exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a partial of g.csv itself whose writer is alive is its own
        owned = tmp_path / f"g.csv.{live.pid}-abcd1234.partial"
        owned.write_text("x")
        assert remove_stale_partials(tmp_path / "g.csv") == []
        assert owned.exists()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_partials(tmp_path / "g.csv") == [owned]  # its writer is gone: stale


def test_a_full_disk_when_the_lock_is_written_is_one_line_and_leaves_no_lock_file(tmp_path, monkeypatch):
    target = tmp_path / "g.csv"

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(outfiles.os, "write", full)
        with pytest.raises(InputError) as exc:
            OutputLock(target, flag="--out").acquire()
    msg = str(exc.value)
    assert "--out" in msg and str(target) in msg and "lock" in msg and "No space left on device" in msg
    assert list(tmp_path.iterdir()) == []  # no empty .lock left behind
    with OutputLock(target):  # and the next run takes the lock
        pass


def test_an_output_that_is_one_of_the_inputs_is_refused(tmp_path):
    table = tmp_path / "acc.csv"
    table.write_text("x\n")
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    for spelling in (table, tmp_path / "." / "acc.csv", link):
        with pytest.raises(InputError, match="is the --acceptance-table file"):
            check_not_an_input(spelling, {"--acceptance-table": str(table), "--model": "llama-3.1-8b"})
    check_not_an_input(tmp_path / "new.csv", {"--acceptance-table": str(table), "--engine": None})
    assert table.read_text() == "x\n"

