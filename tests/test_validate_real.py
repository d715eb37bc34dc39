"""`validate --checkpoint FILE.gguf | smollm2 --text FILE`: real weights, real text, measured greedy
acceptance; and the flags' one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from gguf_files import write_gguf  # noqa: E402

from magicdec_model.perfmodel.errors import InputError  # noqa: E402
from magicdec_model.validate.decoder import Decoder  # noqa: E402
from magicdec_model.validate.run import ValidateConfig, check_config  # noqa: E402

CLI = [sys.executable, "-m", "magicdec_model.cli.main"]
SMALL = ["--device", "cpu", "--layers", "1", "--batch", "1", "--seq-len", "96", "--kv-budget", "32",
         "--gamma", "2", "--new-tokens", "6", "--threads", "1"]
MAPE_LINE = re.compile(r"MAPE AR \(fit\): [0-9.]+%  MAPE SD step-time \(held out\): [0-9.]+%  "
                       r"MAPE SD speedup \(held out\): [0-9.]+%")
#: a byte-level vocabulary in which "ab ab ab ..." tokenises to "ab", then "Ġab" per word
TOKENS = ["<|endoftext|>", "a", "b", "ab", "Ġ", "Ġab"]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_arch) -> Path:
    arch = tiny_arch("tiny-gguf", max_position_embeddings=512, torch_dtype="float32")
    dec = Decoder.synthetic(arch, seed=11, dtype=torch.float32)
    tokens = TOKENS + [f"t{i}" for i in range(arch.vocab_size - len(TOKENS))]
    return write_gguf(dec, tmp_path_factory.mktemp("gguf") / "tiny.gguf", tokens, ["a b", "Ġ ab"])


def _cfg(tmp_path: Path, **kw) -> ValidateConfig:
    base = dict(device="cpu", model="llama-68m", layers=1, batch=[1], seq_len=[96], kv_budget=[32],
                kv_method="streamingllm", gamma=[2], acceptance=None, out=tmp_path / "o", new_tokens=6)
    return ValidateConfig(**{**base, **kw})


@pytest.mark.unit
def test_a_gguf_checkpoint_gives_its_architecture(tmp_path, tiny_gguf):
    arch = check_config(_cfg(tmp_path, checkpoint=str(tiny_gguf)))
    assert (arch.num_layers, arch.hidden_size, arch.max_positions) == (2, 64, 512)


@pytest.mark.unit
def test_text_and_checkpoint_flag_errors_are_one_line(tmp_path, tiny_gguf):
    words = tmp_path / "words.txt"
    words.write_text("ab " * 50)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "intermediate_size": 96, "vocab_size": 89}))
    (folder / "model.safetensors").write_bytes(b"")  # never read: the flags are refused first
    cases = [
        (dict(text=str(words)), "--text .* needs a real model"),
        (dict(checkpoint=str(folder), text=str(words)), "no tokenizer.json"),
        (dict(checkpoint=str(tiny_gguf), text=str(tmp_path / "none.txt")),
         "--text .*none.txt.* does not exist"),
        # 500 + 6 new tokens + 2 x 2 + 2 = 512 fits; 501 reaches 513 > the file's context of 512
        (dict(checkpoint=str(tiny_gguf), seq_len=[501]), "reaches position 513, past"),
        (dict(checkpoint=str(tmp_path / "nope.gguf")), "no such file or folder"),
    ]
    for kw, match in cases:
        with pytest.raises(InputError, match=match) as err:
            check_config(_cfg(tmp_path, **kw))
        assert "\n" not in str(err.value)
    check_config(_cfg(tmp_path, checkpoint=str(tiny_gguf), seq_len=[500]))  # the limit itself is fine


def _run(argv: list[str], out: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([*CLI, "validate", *argv, "--out", str(out)], capture_output=True, text=True,
                         timeout=400)
    assert res.returncode == 0, res.stderr
    assert MAPE_LINE.fullmatch(res.stdout.strip().splitlines()[-1]), res.stdout[-400:]
    return res


def _acceptance(out: Path) -> pd.Series:
    meas = pd.read_csv(out / "measurements.csv")
    sd = meas[meas["key"].str.startswith("check|sd")]
    assert sd["key"].str.contains("a=greedy").all()
    return sd[sd["op"] == "acceptance_rate"]["value"].astype(float)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_validate_with_a_gguf_file_and_a_text_file(tmp_path, tiny_gguf):
    text = tmp_path / "words.txt"
    text.write_text("ab " * 400)
    out = tmp_path / "v"
    _run([*SMALL, "--checkpoint", str(tiny_gguf), "--text", str(text)], out)
    rate = _acceptance(out)
    assert len(rate) == 1 and 0.0 <= rate.iloc[0] <= 1.0
    cfg = json.loads((out / "config.json").read_text())
    # no name in the metadata: the record is named after the file
    assert cfg["checkpoint"] == str(tiny_gguf.resolve()) and cfg["model"] == "tiny"
    assert cfg["text"].startswith(str(text.resolve())) and "sha256:" in cfg["text"]
    comp = pd.read_csv(out / "comparison.csv")
    speed = comp[comp["quantity"] == "speedup"]
    assert len(speed) == 1 and speed["acceptance"].iloc[0] == pytest.approx(min(rate.iloc[0], 0.999))
    assert f"--text {text}" in (out / "report.html").read_text()
    # another text is another configuration: --resume refuses to mix them
    other = tmp_path / "other.txt"
    other.write_text("ab " * 401)
    res = subprocess.run([*CLI, "validate", *SMALL, "--checkpoint", str(tiny_gguf), "--text", str(other),
                          "--out", str(out), "--resume"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "text" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validate_with_the_shipped_smollm2_on_the_default_text(tmp_path):
    from magicdec_model.validate.real_model import smollm2_path

    try:
        smollm2_path()
    except InputError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "s"
    _run([*SMALL, "--checkpoint", "smollm2"], out)
    rate = _acceptance(out)
    assert len(rate) == 1 and 0.0 <= rate.iloc[0] <= 1.0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "smollm2-135m" and cfg["checkpoint"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert "pydoc_data" in cfg["text"]
    assert "pydoc_data" in (out / "report.html").read_text()
