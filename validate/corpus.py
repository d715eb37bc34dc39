"""Real text offline: the default corpus, a user's ``--text FILE``, and token windows cut from it.

The default text is the CPython documentation that every Python install ships as
``pydoc_data/topics.py`` (the language reference and library topics behind ``help()``: English
prose with short code examples, about 465,000 characters or 110,000 SmolLM2 tokens in Python 3.11,
enough for thirteen independent 8K-token windows).  Its text follows the running Python version,
which :func:`default_text` names.  Where a distribution strips ``pydoc_data``, the licence texts
that installed packages ship in their ``*.dist-info`` folders are used instead.  Nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..perfmodel import inputs
from ..perfmodel.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

#: Largest ``--text`` file read (bytes): far more than any window set needs.
MAX_TEXT_BYTES = 256 * 2**20


def _pydoc_topics() -> str | None:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return None
    # sorted by topic name, so the text (and every window cut from it) is the same on every run
    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def _licence_texts() -> str:
    seen: set[str] = set()
    parts = []
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    for root in sorted(roots):
        for path in sorted(Path(root).glob("*.dist-info/**/LICEN[CS]E*")):
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            if text and digest not in seen:
                seen.add(digest)
                parts.append(text)
    return "\n\n".join(parts)


@lru_cache(maxsize=1)
def default_text() -> tuple[str, str]:
    """The default real text and a one-line description of where it comes from.

    Returns ``(text, origin)``; ``origin`` suits a table's ``dataset`` column.
    """
    version = platform.python_version()
    topics = _pydoc_topics()
    if topics:
        return topics, f"CPython {version} documentation (pydoc_data.topics, shipped with Python)"
    text = _licence_texts()
    if not text:
        raise InputError("no default text: this Python has no pydoc_data and no package licence texts; "
                         "pass --text FILE")
    return text, f"licence texts of the packages installed in {sys.prefix} (Python {version})"


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a ``--text`` file (one-line InputError: missing, a folder, binary, not UTF-8,
    over :data:`MAX_TEXT_BYTES`, or empty): :func:`perfmodel.inputs.read_text` with this limit."""
    text = inputs.read_text(path, "--text", max_bytes=MAX_TEXT_BYTES)
    if not text.strip():
        raise InputError(f"--text {path}: the file is empty; allowed: a UTF-8 text file with text")
    return text


def token_windows(tokenizer: Tokenizer, length: int, count: int, text: str | None = None) -> list[list[int]]:
    """``count`` non-overlapping windows of exactly ``length`` token ids from ``text``.

    The windows start at evenly spaced offsets over the whole tokenised text (default:
    :func:`default_text`), so they come from different parts of it.  One-line InputError when the
    text holds fewer than ``count * length`` tokens, saying how many windows fit.
    """
    if length < 1 or count < 1:
        raise InputError(f"token windows need length >= 1 and count >= 1; got length={length}, count={count}")
    if text is None:
        text, origin = default_text()
    else:
        origin = "the text"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    fit = len(ids) // length
    if fit < count:
        raise InputError(f"{origin} has {len(ids):,} tokens: {fit} window(s) of {length:,} tokens fit, "
                         f"{count} asked; allowed: a shorter length, fewer windows or a longer --text")
    stride = len(ids) // count  # >= length, so the windows never overlap
    return [ids[i * stride: i * stride + length] for i in range(count)]
