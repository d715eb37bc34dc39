"""Generated argument lists over every subcommand: exit 0 or 2, never a traceback, no partial file.

Values are drawn from numbers of every kind (huge, negative, NaN, infinities, floats, suffixes,
ranges), unicode text, registry names, paths to odd files (binary, empty, folders, malformed
TOML/JSON/CSV, wrong table types) and output paths (folders, missing folders, wrong suffixes,
read-only places), in lists from empty to huge.  ``validate`` is fuzzed up to its checks (the
device, the flags, the memory bound): the kernels themselves are not run.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from bad_inputs import make_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from magicdec_model.cli.main import app

pytestmark = pytest.mark.unit

runner = CliRunner()

NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.integers(1, 300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "1e30", "2^63", "9223372036854775808", "1e19", "nan", "inf", "-inf",
                     "", " ", "1.5", "1k", "8k", "32k", "1m", "0x10", "1_000", "١٢", "auto", "table",
                     "1,,2", ",", "1:256:9", "1k:128k:5", "1:10:100", "5:1:3", "1:1e30:3", "a:b:c",
                     "1:2", "1:1000000:1000000"]),
    st.lists(st.integers(1, 4096), min_size=1, max_size=30).map(lambda v: ",".join(map(str, v))),
    st.integers(1, 20000).map(lambda n: ",".join(["7"] * n)),  # long lists
)
TEXT = st.one_of(
    st.text(max_size=24),
    st.sampled_from(["self", "llama-3.1-8b", "llama-68m", "tinyllama-1.1b", "llama-2-7b",
                     "a100-80gb-sxm", "h100-sxm", "streamingllm", "snapkv", "full", "table", "csv",
                     "json", "target", "verify", "draft", "cpu", "cuda", "torch", "flashinfer", "auto",
                     "paper", "[/bold]x", "[red]", "\x00", "é😀", "-", "--", "--help"]),
)
ODD_FILES = ["binary.json", "emptydir", "empty.json", "list.json", "invalid.json", "kv0.json",
             "binary.toml", "empty.toml", "invalid.toml", "sources_none.toml", "meta_abc.toml",
             "markup.toml", "inf_bw.toml", "str_bw.toml", "dir.toml", "missing.toml", "binary.csv",
             "empty.csv", "header.csv", "seqinf.csv", "budget_neg.csv", "method_bogus.csv",
             "acc_nan.csv", "dir.csv", "[red]m/config.json"]
OUT_NAMES = ["g.csv", "g.parquet", "r.html", "x.xlsx", "no/such/g.csv", "é😀.csv", "", "dir.csv",
             "dir.html", "/proc/x.csv", "/proc/x.html", "/proc/v"]

# every subcommand's flags: "num" numbers, "text" names and unicode, "file" odd files or names,
# "out" output paths, "flag" a boolean flag without a value
FLAGS = {
    "predict": {"--model": "file", "--draft": "text", "--kv-budget": "num", "--kv-method": "text",
                "--hardware": "file", "--gpus": "num", "--batch": "num", "--seq-len": "num",
                "--gamma": "num", "--acceptance": "num", "--acceptance-table": "file",
                "--ideal": "flag", "--format": "text"},
    "sweep": {"--out": "out", "--model": "file", "--draft": "text", "--kv-budget": "num",
              "--kv-method": "text", "--hardware": "file", "--gpus": "num", "--batch": "num",
              "--seq-len": "num", "--gamma": "num", "--acceptance": "num", "--acceptance-table": "file",
              "--ideal": "flag"},
    "breakdown": {"--model": "file", "--step": "text", "--batch": "num", "--seq-len": "num",
                  "--gpus": "num", "--hardware": "file", "--gamma": "num", "--draft": "text",
                  "--kv-method": "text", "--kv-budget": "num", "--ideal": "flag", "--format": "text"},
    "report": {"--out": "out", "--model": "file", "--draft": "text", "--kv-budget": "num",
               "--kv-method": "text", "--hardware": "file", "--gpus": "num", "--batch": "num",
               "--seq-len": "num", "--gamma": "num", "--acceptance": "num",
               "--acceptance-table": "file", "--ideal": "flag"},
    "advise": {"--model": "file", "--hardware": "file", "--gpus": "num", "--batch": "num",
               "--seq-len": "num", "--latency-budget-ms": "num", "--acceptance": "num",
               "--acceptance-table": "file", "--ideal": "flag", "--top": "num", "--format": "text"},
    "compare-paper": {"--hardware": "file", "--gamma": "text", "--acceptance": "num",
                      "--acceptance-table": "file", "--ideal": "flag", "--format": "text"},
    "validate": {"--device": "text", "--model": "file", "--layers": "num", "--batch": "num",
                 "--seq-len": "num", "--kv-budget": "num", "--kv-method": "text", "--gamma": "num",
                 "--acceptance": "num", "--out": "out", "--resume": "flag", "--new-tokens": "num",
                 "--backend": "text", "--cuda-graph": "flag", "--start-profile": "file",
                 "--seed": "num", "--gpus": "num", "--threads": "num", "--checkpoint": "file",
                 "--text": "file"},
    "models show": {"": "file"},
    "hardware show": {"": "file"},
    "models list": {},
    "hardware list": {},
}


def _ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    one = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi]))
    many = st.lists(one, min_size=1, max_size=12).map(lambda v: ",".join(map(str, v)))
    return st.one_of(one.map(str), many)


# values a flag accepts (drawn three times as often as the bad ones above)
VALID = {
    "--batch": _ints(1, 1_000_000), "--seq-len": _ints(1, 100_000_000),
    "--kv-budget": _ints(1, 100_000_000), "--gpus": st.sampled_from(["1", "2", "4", "8", "1,8"]),
    "--gamma": st.one_of(st.integers(1, 16).map(str), st.just("auto")),
    "--acceptance": st.floats(0, 0.999999).map(repr), "--top": st.integers(1, 1000).map(str),
    "--latency-budget-ms": st.floats(1e-3, 1e4).map(repr), "--layers": st.sampled_from(["1", "2"]),
    "--new-tokens": st.integers(2, 64).map(str), "--seed": st.integers(0, 2**63 - 1).map(str),
    "--threads": st.integers(0, 2).map(str),
    "--model": st.sampled_from(["llama-3.1-8b", "llama-68m", "llama-2-7b-32k", "qwen2.5-7b",
                                "{F:[red]m/config.json}"]),
    "--draft": st.sampled_from(["self", "tinyllama-1.1b", "llama-3.2-1b", "self,llama-3.2-1b"]),
    "--kv-method": st.sampled_from(["streamingllm", "snapkv", "full", "snapkv,full"]),
    "--hardware": st.sampled_from(["a100-80gb-sxm", "h100-sxm", "{F:markup.toml}"]),
    "--format": st.sampled_from(["table", "csv", "json"]),
    "--step": st.sampled_from(["target", "verify", "draft"]),
    "--device": st.just("cpu"), "--backend": st.sampled_from(["auto", "torch"]),
}


def _value(kind: str, flag: str = "") -> st.SearchStrategy[str]:
    if flag in VALID:
        return st.one_of(VALID[flag], VALID[flag], VALID[flag], _value(kind))
    if kind == "num":
        return st.one_of(NUMBERS, TEXT)
    if kind == "text":
        return st.one_of(TEXT, NUMBERS)
    if kind == "file":
        return st.one_of(st.sampled_from(ODD_FILES).map(lambda n: "{F:" + n + "}"), TEXT)
    if kind == "out":
        return st.sampled_from(OUT_NAMES)
    raise AssertionError(kind)


@st.composite
def argv(draw) -> list[str]:
    """A subcommand and a random subset of its flags with random values (plus stray tokens)."""
    sub = draw(st.sampled_from(sorted(FLAGS)))
    flags = FLAGS[sub]
    args = sub.split()
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), max_size=6, unique=True)) if flags else []
    for flag in chosen:
        kind = flags[flag]
        if kind == "flag":
            args.append(flag)
            continue
        value = draw(_value(kind, flag))
        args += [flag, value] if flag else [value]
    if sub in ("sweep", "report") and "--out" not in chosen and draw(st.integers(0, 9)) != 7:
        args += ["--out", "g.csv" if sub == "sweep" else "r.html"]
    if draw(st.integers(0, 9)) == 7:  # a stray token: unknown flag, a flag without its value
        args.append(draw(st.sampled_from(["--bogus", "--batch", "-x", "extra", "--out"])))
    return args


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    files = make_files(root / "files")
    yield root, files
    os.chmod(root / "files" / "rodir", 0o755)


@pytest.fixture
def no_kernels(monkeypatch):
    """validate up to its checks: the device and the memory bound, not the kernels."""
    import torch

    import magicdec_model.cli.validate as cli_validate
    from magicdec_model.validate import run as vrun
    from magicdec_model.validate.device import capacity

    def checks_only(cfg):
        vrun.check_device(cfg.device)
        arch = vrun.check_config(cfg)
        vrun.check_memory(cfg, arch, 4, capacity(torch.device(cfg.device)))

    monkeypatch.setattr(cli_validate, "run_config", checks_only)
    # --gpus N > 1 would start torchrun, whose ranks run the kernels: the checks above ran first
    monkeypatch.setattr(cli_validate, "_launch_torchrun", lambda gpus, ctx: 0)


_counter = itertools.count()


def _resolve(args: list[str], files: dict[str, Path], out: Path) -> list[str]:
    res = []
    for a in args:
        if a.startswith("{F:"):
            a = str(files[a[3:-1]])
        elif a in OUT_NAMES and a and not a.startswith("/"):
            a = str(files[a]) if a in files else str(out / a)
        res.append(a)
    return res


def check_one(args: list[str], root: Path, files: dict[str, Path]) -> None:
    work = root / f"w{next(_counter)}"
    out = work / "out"
    out.mkdir(parents=True)
    before = set(out.rglob("*"))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = runner.invoke(app, _resolve(args, files, out))
    finally:
        os.chdir(cwd)
    text = res.stdout + res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert "Traceback" not in text, (args, text[-2000:])
    assert res.exit_code in (0, 2), (args, res.exit_code, res.stderr[-500:])
    new = sorted(str(p.relative_to(out)) for p in set(out.rglob("*")) - before)
    assert not [n for n in new if n.endswith((".partial", ".lock"))], (args, new)
    if res.exit_code == 2:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
        assert not new, (args, new, res.stderr)  # an error leaves nothing behind


@pytest.mark.usefixtures("no_kernels")
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv())
def test_generated_arguments_exit_0_or_2_without_traceback_or_partial_files(args, world):
    check_one(args, *world)


@pytest.mark.slow
@pytest.mark.timeout(300)  # 1,000 CLI invocations: ~30 s alone, over 60 s seen when the draw is heavy
@pytest.mark.usefixtures("no_kernels")
@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv())
def test_generated_arguments_many_more(args, world):
    check_one(args, *world)
