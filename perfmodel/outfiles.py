"""Output files: one writer per target, and nothing half-written under a final name.

* :class:`OutputLock` - a lock file next to a target file (``grid.csv.lock``) or inside a target
  folder (``DIR/magicdec-model.lock``) holding the owner's pid, host and start time.  The lock is
  an ``flock`` on that file, so the kernel releases it when its owner dies, even by SIGKILL: a
  lock file left behind by a dead process is stale and the next run simply takes it over.  A lock
  held by a live process is a one-line :class:`OutputLockedError` error naming that process.
* :func:`atomic_output` / :func:`atomic_write_text` / :func:`atomic_write_bytes` - write to a
  temporary ``NAME.<pid>-<random>.partial`` file in the target's folder, fsync, then ``os.replace``
  it onto the target: readers see the old file or the complete new one, never a part.  On any
  exception (Ctrl-C included) the temporary file is removed; after a SIGKILL it stays, under its
  ``.partial`` name, and the next locked run on that target removes it
  (:func:`remove_stale_partials`).
* :func:`check_out_file` / :func:`check_out_folder` - refuse a bad ``--out`` (a folder where a
  file is wanted, a missing or read-only folder, a wrong suffix) before anything is computed.

Errors while writing (disk full, permission denied) become one-line :class:`~.errors.InputError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: pid-based locking only
    fcntl = None  # type: ignore[assignment]

PARTIAL_SUFFIX = ".partial"
FOLDER_LOCK_NAME = "magicdec-model.lock"


class OutputLockedError(InputError):
    """Another live process holds the lock of an output."""


def lock_path(target: str | Path, folder: bool = False) -> Path:
    """The lock file of ``target``: inside it for a folder, ``NAME.lock`` beside it for a file."""
    t = Path(target)
    return t / FOLDER_LOCK_NAME if folder else t.with_name(t.name + ".lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class OutputLock:
    """Exclusive right to write one output (a file or a folder) while held.

    Use as a context manager: ``with OutputLock(path, flag="--out"): ...``.
    """

    def __init__(self, target: str | Path, *, folder: bool = False, flag: str = "--out") -> None:
        self.target = Path(target)
        self.path = lock_path(self.target, folder)
        self.flag = flag
        self._fd: int | None = None

    def _held_error(self, info: dict) -> OutputLockedError:
        pid = info.get("pid", "?")
        host = info.get("host")
        since = info.get("since")
        who = f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        who += f", since {since}" if since else ""
        return OutputLockedError(
            f"{self.flag} {self.target} is being written by another magicdec-model run ({who}); "
            f"wait for it to finish, or choose another {self.flag} (lock: {self.path})"
        )

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`OutputLockedError` (never waits)."""
        if self._fd is not None:
            return self
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o644)
            except FileExistsError:  # pragma: no cover - non-POSIX fallback
                owner = _owner(self.path)
                if isinstance(owner.get("pid"), int) and _pid_alive(owner["pid"]):
                    raise self._held_error(owner) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            except OSError as exc:
                raise InputError(f"{self.flag} {self.target}: cannot create the lock file "
                                 f"{self.path} ({exc.strerror or exc})") from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise self._held_error(_owner(self.path)) from None
                try:  # the file may have been removed and re-created by its last owner meanwhile
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, (json.dumps(info) + "\n").encode())
            except OSError as exc:  # a full disk: no lock, and no empty lock file left behind
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                os.close(fd)
                raise InputError(f"{self.flag} {self.target}: cannot create the lock file {self.path} "
                                 f"({exc.strerror or exc}); nothing was written") from None
            self._fd = fd
            return self
        raise InputError(  # pragma: no cover
            f"{self.flag} {self.target}: could not take the lock {self.path}")

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------- atomic writes
def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_error(target: str | Path, exc: OSError, flag: str = "--out") -> InputError:
    """A one-line error for an OSError met while writing ``target`` (disk full, permission...)."""
    reason = exc.strerror or type(exc).__name__
    return InputError(f"{flag} {target}: cannot write ({reason}); nothing was written there")


def new_partial(target: str | Path) -> Path:
    """Create an empty, uniquely named ``NAME.<pid>-<random>.partial`` file beside ``target``.

    The name says whose it is: the target's name and the writing process (see
    :func:`remove_stale_partials`).
    """
    t = Path(target)
    fd, name = tempfile.mkstemp(prefix=f"{t.name}.{os.getpid()}-", suffix=PARTIAL_SUFFIX, dir=t.parent)
    os.close(fd)
    return Path(name)


def _partial_owner(target: Path, name: str) -> int | None:
    """The pid in the name of a partial file of ``target`` (None: a partial of another file)."""
    # mkstemp's random part: 8 characters of [a-z0-9_]; a partial of 'g.csv.x.csv' does not match 'g.csv'
    m = re.fullmatch(rf"{re.escape(target.name)}\.(\d+)-[a-z0-9_]{{8}}{re.escape(PARTIAL_SUFFIX)}", name)
    return int(m.group(1)) if m else None


def commit_partial(partial: Path, target: Path) -> None:
    """fsync ``partial`` and rename it onto ``target`` (atomic within one filesystem)."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(partial, _file_mode(target))
    os.replace(partial, target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_output(target: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on error it is removed.

    OSErrors (disk full, permission denied, missing folder) become one-line InputErrors.
    """
    t = Path(target)
    try:
        partial = new_partial(t)
    except OSError as exc:
        raise write_error(t, exc, flag) from None
    try:
        yield partial
        commit_partial(partial, t)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise write_error(t, exc, flag) from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def atomic_write_bytes(target: str | Path, data: bytes, flag: str = "--out") -> Path:
    """Write ``data`` to ``target`` atomically (temporary file, fsync, rename); the target path."""
    with atomic_output(target, flag) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str, flag: str = "--out", encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(target, text.encode(encoding), flag)


def remove_stale_partials(target: str | Path) -> list[Path]:
    """Remove the partial files of ``target`` left by killed runs; call with its lock held.

    Only files named as :func:`new_partial` names those of ``target`` whose process is gone: the
    partial file of a concurrent run on another target (``g.csv.x.csv`` beside ``g.csv``), or of a
    live process, is never touched.
    """
    t = Path(target)
    removed = []
    for p in t.parent.glob(f"{glob_escape(t.name)}.*{PARTIAL_SUFFIX}"):
        pid = _partial_owner(t, p.name)
        if pid is None or (pid != os.getpid() and _pid_alive(pid)):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


# ---------------------------------------------------------------------------- checks up front
def _probe_writable(folder: Path, flag: str, shown: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".magicdec-model-probe-", dir=folder)
    except OSError as exc:
        raise InputError(f"{flag} {shown}: folder {str(folder)!r} is not writable "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def check_out_file(text: str | Path, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    """An output file path: allowed suffix, not a folder, in an existing writable folder."""
    shown = str(text)
    if not shown.strip():
        raise InputError(f"{flag} '' is empty; allowed: a file path ending in {' or '.join(suffixes)}")
    path = Path(text)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {shown!r} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{flag} {shown!r} is a folder; allowed: a file path ending in "
                         f"{' or '.join(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{flag} {shown!r}: folder {str(folder)!r} does not exist")
    _probe_writable(folder, flag, repr(shown))
    return path


def check_not_an_input(out: str | Path, inputs: Mapping[str, str | Path | None], flag: str = "--out") -> None:
    """Refuse an output file that is one of the command's input files (``inputs``: flag -> path;
    None or a registry name that is no file is skipped): writing it would destroy the input."""
    target = Path(out)
    for in_flag, value in inputs.items():
        if value is None or not str(value).strip() or isinstance(value, bytes):
            continue
        source = Path(value)
        try:
            same = os.path.samefile(source, target)
        except OSError:  # either is missing (or unreadable): the same file only by its path
            same = os.path.realpath(source) == os.path.realpath(target)
        if same:
            raise InputError(f"{flag} {str(out)!r} is the {in_flag} file; writing it would replace that "
                             f"input; allowed: another {flag} file")


def check_out_folder(text: str | Path, flag: str = "--out") -> Path:
    """An output folder: not a file; it, or the nearest existing folder above it, writable.

    Creates nothing (the caller creates the folder once every other input has been checked).
    """
    path = Path(text)
    shown = repr(str(text))
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {shown} is a file; allowed: a folder (created when missing)")
    existing = path
    while not existing.exists():
        parent = existing.parent
        if parent == existing:
            break
        existing = parent
    if not existing.is_dir():
        raise InputError(f"{flag} {shown}: {str(existing)!r} is a file, so the folder cannot be created")
    _probe_writable(existing, flag, shown)
    return path


def make_out_folder(path: Path, flag: str = "--out") -> Path:
    """Create the output folder (and parents); OSErrors become one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{flag} {str(path)!r}: cannot create the folder ({exc.strerror or exc})") from None
    return path
