"""Real text offline (validate/corpus.py): the default text, --text files, token windows."""

from __future__ import annotations

import pytest

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.validate import corpus
from magicdec_model.validate.corpus import default_text, read_text, token_windows

pytestmark = pytest.mark.unit


class _Words:
    """A stand-in tokenizer with one token per whitespace-separated word (ids = word numbers)."""

    class _Enc:
        def __init__(self, ids):
            self.ids = ids

    def encode(self, text, add_special_tokens=True):
        return self._Enc([int(w) for w in text.split()])


def test_default_text_is_the_python_documentation_and_long_enough():
    text, origin = default_text()
    assert "pydoc_data" in origin and "CPython" in origin and "\n" not in origin
    # several 8K-token windows: ~4 characters per token in English, so well over 8 x 8,192 x 4
    assert len(text) > 300_000
    assert "The \"if\" statement is used for conditional execution" in text  # natural English prose


def test_windows_are_exact_non_overlapping_and_spread():
    text = " ".join(str(i) for i in range(100))
    wins = token_windows(_Words(), 10, 4, text)
    assert [len(w) for w in wins] == [10] * 4
    # stride 100 // 4 = 25: starts 0, 25, 50, 75 (hand count)
    assert [w[0] for w in wins] == [0, 25, 50, 75] and wins[1] == list(range(25, 35))
    flat = [t for w in wins for t in w]
    assert len(set(flat)) == len(flat)
    assert token_windows(_Words(), 25, 4, text)[-1] == list(range(75, 100))  # exactly fits


def test_too_short_text_says_how_many_windows_fit():
    text = " ".join(str(i) for i in range(100))
    with pytest.raises(InputError, match=r"100 tokens: 3 window\(s\) of 30 tokens fit, 4 asked") as err:
        token_windows(_Words(), 30, 4, text)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="length >= 1"):
        token_windows(_Words(), 0, 1, text)


def test_read_text_reads_utf8(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("Grüße, world\n", encoding="utf-8")
    assert read_text(f) == "Grüße, world\n"


def test_read_text_errors_are_one_line(tmp_path, monkeypatch):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    big = tmp_path / "big.txt"
    big.write_text("x" * 100)
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 50)
    for path, why in ((tmp_path / "none.txt", "does not exist"), (tmp_path, "is a folder"),
                      (empty, "empty"), (latin, r"not UTF-8 text \(byte 3"), (big, "100 bytes .*too large")):
        with pytest.raises(InputError, match=why) as err:
            read_text(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
