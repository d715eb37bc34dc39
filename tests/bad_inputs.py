"""A corpus of bad and edge inputs over every subcommand, with what each must do.

Each case is an argument list (placeholders ``{F:name}`` name an odd file built by
:func:`make_files`, ``{out}`` a fresh output folder) and an expectation:

* ``ERR``: exit code 2, stderr exactly one line starting with ``error:`` that contains every
  ``needle`` (the bad value and/or the flag), no traceback, and nothing left under ``{out}``;
* ``OK``: exit code 0 and no traceback (an edge input that is valid);
* ``EITHER``: ``ERR`` or ``OK``; with ``check``, an exit-0 result must also pass ``check`` (a
  predicate on stdout: the *correct* number, not a silently wrong one).

The corpus is run in-process through typer's CliRunner by ``tests/test_bad_inputs.py``; run this
file as a script (``python tests/bad_inputs.py``) to print how many cases fail and why, e.g.
against an older installed version of the package.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ERR, OK, EITHER = "ERR", "OK", "EITHER"

#: the issue's tiny validate run (llama-68m, one layer): fast when a bad flag is *not* refused
V = ["validate", "--device", "cpu", "--model", "llama-68m", "--layers", "1", "--batch", "1,2",
     "--seq-len", "128", "--kv-budget", "32", "--gamma", "2", "--acceptance", "0.8",
     "--new-tokens", "4", "--threads", "1", "--out", "{out}/v"]


@dataclass
class Case:
    """One input and what it must do."""

    id: str
    argv: list[str]
    expect: str = ERR
    needles: tuple[str, ...] = ()
    check: Callable[[str], bool] | None = None
    #: why a case is expected to fail for now (pytest xfail, strict=False); None: must pass
    pending: str | None = None
    #: does not make sense as root (root reads and writes any file)
    needs_non_root: bool = False
    tags: list[str] = field(default_factory=list)


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (replaced where present, else appended)."""
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


# numbers every integer flag must refuse, as a user types them
INT_BAD = ["0", "-1", "1e30", "2^63", "9223372036854775808", "nan", "inf", "-inf", "abc", "",
           "1.5", "1,,2", "0x10", "1e19"]
INT_BAD_SHORT = ["0", "-1", "1e30", "9223372036854775808", "abc", "nan"]


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(id_: str, argv: list[str], expect: str = ERR, needles: tuple[str, ...] = (), **kw) -> None:
        cases.append(Case(id_, argv, expect, needles, **kw))

    # ------------------------------------------------------------------ numbers
    base = {
        "predict": ["predict", "--batch", "32", "--seq-len", "8k"],
        "sweep": ["sweep", "--out", "{out}/g.csv", "--batch", "1,2", "--seq-len", "1k,2k"],
    }
    for flag in ("--batch", "--seq-len", "--kv-budget", "--gpus"):
        for v in INT_BAD:
            add(f"predict {flag} {v!r}", _with(base["predict"], flag, v), needles=(flag,))
    for flag in ("--batch", "--seq-len"):
        for v in INT_BAD_SHORT:
            add(f"sweep {flag} {v!r}", _with(base["sweep"], flag, v), needles=(flag,))
    for v in ["0", "17", "-5", "abc", "1.5", "", "auto,3", "nan", "1e30"]:
        add(f"predict --gamma {v!r}", _with(base["predict"], "--gamma", v), needles=("--gamma",))
    for v in ["1", "1.5", "-0.1", "nan", "inf", "abc", "1e400"]:
        add(f"predict --acceptance {v!r}", _with(base["predict"], "--acceptance", v),
            needles=("--acceptance",))
    # valid edge numbers
    add("predict --batch 1k", _with(base["predict"], "--batch", "1k"), OK)
    add("predict --batch ' 4 , 8 '", _with(base["predict"], "--batch", " 4 , 8 "), OK)
    add("predict --seq-len 1m", _with(base["predict"], "--seq-len", "1m"), OK)
    add("predict --acceptance 0", _with(base["predict"], "--acceptance", "0"), OK)
    add("predict --acceptance 0.999999", _with(base["predict"], "--acceptance", "0.999999"), OK)

    bd = ["breakdown", "--batch", "32", "--seq-len", "32k"]
    for v in ["0", "-5", "17", "abc", "1e30", "nan", ""]:
        add(f"breakdown --gamma {v!r}", [*bd, "--step", "verify", "--gamma", v], needles=("--gamma",))
    for flag in ("--batch", "--seq-len", "--gpus", "--kv-budget"):
        for v in ["0", "-1", "1e30", "1,2", "abc"]:
            add(f"breakdown {flag} {v!r}", _with(bd, flag, v), needles=(flag,))
    add("breakdown --step bogus", [*bd, "--step", "bogus"], needles=("--step", "bogus"))
    add("breakdown --format xml", [*bd, "--format", "xml"], needles=("--format", "xml"))

    adv = ["advise", "--batch", "32", "--seq-len", "8k"]
    for v in ["abc", "0", "-1", "1e30", "nan", "99999999999999999999999"]:
        add(f"advise --top {v!r}", [*adv, "--top", v], needles=("--top",))
    for v in ["0", "-1", "nan", "inf", "abc", "-inf"]:
        add(f"advise --latency-budget-ms {v!r}", [*adv, "--latency-budget-ms", v],
            needles=("--latency-budget-ms",))
    for flag in ("--batch", "--seq-len", "--gpus"):
        for v in ["0", "1e30", "1,2", "abc"]:
            add(f"advise {flag} {v!r}", _with(adv, flag, v), needles=(flag,))

    rep = ["report", "--out", "{out}/r.html", "--batch", "1,2", "--seq-len", "1k,2k"]
    for v in ["1:0:3", "1:10:100", "1:1e30:3", "a:b:c", "1:2", "1:1000000000:1000000000", "0:10:3",
              "1:10:0", "1e30", ""]:
        add(f"report --batch {v!r}", _with(rep, "--batch", v), needles=("--batch",))
    for v in ["1e19", "0", "1k:1e19:3"]:
        add(f"report --seq-len {v!r}", _with(rep, "--seq-len", v), needles=("--seq-len",))
    add("report --gpus 1,2", _with(rep, "--gpus", "1,2"), needles=("--gpus",))
    add("report --kv-method ''", _with(rep, "--kv-method", ""), needles=("--kv-method",))
    add("report --kv-method bogus", _with(rep, "--kv-method", "bogus"), needles=("bogus",))
    add("report --gamma 1,2", _with(rep, "--gamma", "1,2"), needles=("--gamma",))

    add("compare-paper --gamma best", ["compare-paper", "--gamma", "best"], needles=("best",))
    add("compare-paper --acceptance 2", ["compare-paper", "--acceptance", "2"], needles=("--acceptance",))
    add("compare-paper --hardware bogus", ["compare-paper", "--hardware", "bogus"], needles=("bogus",))

    # ------------------------------------------------------------------ validate flags
    for flag, values in {
        "--batch": ["1e30", "0", "abc", "2^63"],
        "--seq-len": ["1e19", "0"],
        "--layers": ["0", "-1", "1e30", "abc", "1000"],
        "--new-tokens": ["0", "1", "1e30", "abc", "99999999999999999999"],
        "--seed": ["1e30", "abc", "1180591620717411303424"],
        "--threads": ["-1", "1e30", "abc"],
        "--gpus": ["0", "-1", "1e30"],
        "--acceptance": ["1", "nan", "inf", "abc", "-0.5"],
        "--backend": ["bogus", "flashinfer"],
        "--device": ["tpu", ""],
        "--kv-method": ["full", "bogus"],
        "--gamma": ["0", "17", "abc", "1e30"],
        "--kv-budget": ["0", "1e30", "128"],
    }.items():
        for v in values:
            add(f"validate {flag} {v!r}", _with(V, flag, v), needles=(flag,))
    add("validate --start-profile bogus", _with(V, "--start-profile", "bogus"), needles=("bogus",))
    add("validate --engine bogus", _with(V, "--engine", "bogus"), needles=("bogus",))
    add("validate --start-profile binary", _with(V, "--start-profile", "{F:binary.toml}"),
        needles=("binary.toml",))
    add("validate --checkpoint empty dir", _with(V, "--checkpoint", "{F:emptydir}"),
        needles=("--checkpoint",))
    add("validate --checkpoint not a .gguf file", _with(V, "--checkpoint", "{F:binary.toml}"),
        needles=("--checkpoint", "binary.toml"))
    add("validate --checkpoint broken gguf", _with(V, "--checkpoint", "{F:broken.gguf}"),
        needles=("--checkpoint", "broken.gguf"))
    add("validate --text without --checkpoint", _with(V, "--text", "{F:empty.txt}"), needles=("--text",))
    add("validate --out a file", _with(V, "--out", "{F:empty.txt}"), needles=("--out",))
    add("validate --out under /proc", _with(V, "--out", "/proc/magicdec-out"), needles=("/proc",))

    # ------------------------------------------------------------------ acceptance measure flags
    acc = ["acceptance", "measure", "--checkpoint", "smollm2", "--kv-budget", "32", "--seq-len", "64",
           "--windows", "1", "--new-tokens", "2", "--threads", "1", "--out", "{out}/acc.csv"]
    for flag, values in {
        "--kv-method": ["h2o", "full", ""],
        "--kv-budget": ["0", "2", "abc", "1e30"],
        "--seq-len": ["0", "1", "1e30"],
        "--gamma": ["0", "17", "abc"],
        "--temperature": ["-1", "nan", "inf", "abc", "101"],
        "--windows": ["0", "abc", "1e30"],
        "--batch": ["0", "-1"],
        "--new-tokens": ["1", "abc"],
        "--seed": ["-1", "abc"],
        "--threads": ["-1"],
    }.items():
        for v in values:
            add(f"acceptance measure {flag} {v!r}", _with(acc, flag, v), needles=(flag,))
    add("acceptance measure --out not .csv", _with(acc, "--out", "{out}/acc.txt"), needles=("--out",))
    add("acceptance measure --out a folder", _with(acc, "--out", "{F:emptydir}"), needles=("--out",))
    add("acceptance measure --text binary", _with(acc, "--text", "{F:binary.toml}"), needles=("--text",))
    add("acceptance measure --text empty", _with(acc, "--text", "{F:empty.txt}"), needles=("--text",))
    add("acceptance measure --checkpoint empty dir", _with(acc, "--checkpoint", "{F:emptydir}"),
        needles=("--checkpoint",))
    add("acceptance measure --checkpoint broken gguf", _with(acc, "--checkpoint", "{F:broken.gguf}"),
        needles=("--checkpoint", "broken.gguf"))

    # ------------------------------------------------------------------ parse errors and names
    add("advise --top abc (typer)", ["advise", "--top", "abc"], needles=("--top", "abc"))
    add("unknown flag", ["predict", "--bogus-flag", "1"], needles=("--bogus-flag",))
    add("unknown command", ["predictt"], needles=("predictt",))
    add("sweep without --out", ["sweep"], needles=("--out",))
    add("flag without value", ["predict", "--batch"], needles=("--batch",))
    add("predict --format xml", ["predict", "--format", "xml"], needles=("xml",))
    add("predict --kv-method h2o", ["predict", "--kv-method", "h2o"], needles=("h2o",))
    add("predict --draft bogus", ["predict", "--draft", "bogus-model"], needles=("bogus-model",))
    add("predict --model unicode", ["predict", "--model", "модель-😀"], needles=("модель-😀",))
    add("predict --hardware markup name", ["predict", "--hardware", "[/bold]x"], needles=("[/bold]x",))
    add("models show bogus", ["models", "show", "gpt-5"], needles=("gpt-5",))
    add("hardware show bogus", ["hardware", "show", "tpu-v9"], needles=("tpu-v9",))
    add("help", ["predict", "--help"], OK)

    # ------------------------------------------------------------------ engines and calibrate
    add("engines show bogus", ["engines", "show", "vllm"], needles=("vllm",))
    add("predict --engine bogus", ["predict", "--engine", "no-such-engine"], needles=("no-such-engine",))
    add("predict --ideal --engine", ["predict", "--ideal", "--engine", "generic"], needles=("--ideal",))
    for name in ("binary.toml", "empty.toml", "invalid.toml", "sources_none.toml", "dir.toml",
                 "missing.toml"):
        add(f"--engine {name}", ["predict", "--engine", "{F:" + name + "}"], needles=(name,))
        add(f"engines show {name}", ["engines", "show", "{F:" + name + "}"], needles=(name,))
    cal = ["calibrate", "--model", "llama-2-7b-32k", "--gpus", "8", "--out", "{out}/e.toml"]
    for name in ("binary.csv", "empty.csv", "header.csv", "missing_col.csv", "dir.csv"):
        add(f"calibrate --steps {name}", [*cal, "--steps", "{F:" + name + "}"], needles=(name,))
    add("calibrate --out .txt", ["calibrate", "--steps", "{F:header.csv}", "--out", "{out}/e.txt"],
        needles=(".txt",))
    add("calibrate --out folder", ["calibrate", "--steps", "{F:header.csv}", "--out", "{F:dir.toml}"],
        needles=("dir.toml",))
    add("calibrate --gpus 0", [*_with(cal, "--gpus", "0"), "--steps", "{F:header.csv}"],
        needles=("--gpus",))

    # ------------------------------------------------------------------ draft kinds and formats
    for flag, value in (("--accept-len", "nan"), ("--accept-len", "-1"), ("--accept-len", "inf"),
                        ("--draft-fraction", "2"), ("--draft-fraction", "nan"),
                        ("--verify-tokens", "0"), ("--position-acceptance", "a,b"),
                        ("--position-acceptance", "1.5"), ("--weight-dtype", "int3"),
                        ("--kv-dtype", "nf4"), ("--draft-vocab", "0")):
        argv = ["predict", "--batch", "1", "--seq-len", "4k", "--gamma", "3", flag, value]
        if flag == "--draft-vocab":
            argv += ["--draft", "eagle"]
        add(f"predict {flag} {value}", argv, needles=(flag,))
    add("predict --draft mtp (no module)", ["predict", "--draft", "mtp"], needles=("mtp",))
    for name in ("mixtral-8x7b", "deepseek-v3", "mistral-7b", "qwen3-8b"):
        add(f"validate --model {name} (not dense)", _with(V, "--model", name), needles=(name, "dense"))

    # ------------------------------------------------------------------ odd files
    for name in ("binary.json", "emptydir", "empty.json", "list.json", "invalid.json", "nul.json",
                 "negative_layers.json", "bool_heads.json"):
        add(f"--model {name}", ["predict", "--model", "{F:" + name + "}"], needles=(name,))
        add(f"models show {name}", ["models", "show", "{F:" + name + "}"], needles=(name,))
    add("--model huge_hidden.json", ["predict", "--model", "{F:huge_hidden.json}"],
        needles=("hidden_size", "at most"))
    add("--model unreadable", ["predict", "--model", "{F:unreadable.json}"], needles=("unreadable",),
        needs_non_root=True)
    for name in ("kv0.json", "headdim0.json", "rope_abc.json"):
        add(f"--model {name}", ["predict", "--model", "{F:" + name + "}"], needles=(name,))
    add("--model rope_null.json", ["models", "show", "{F:rope_null.json}"], EITHER,
        needles=("rope_null",), check=lambda out: re.search(r"rope_theta\s+10000", out) is not None)
    add("--model tie_false.json", ["models", "show", "{F:tie_false.json}"], EITHER,
        needles=("tie_word_embeddings",), check=lambda out: re.search(r"tie_embeddings\s+False", out)
        is not None)
    add("--model int8.json", ["models", "show", "{F:int8.json}"], EITHER, needles=("int8",),
        check=lambda out: re.search(r"dtype_bytes\s+1\b", out) is not None)

    for name in ("binary.toml", "empty.toml", "invalid.toml", "sources_none.toml", "meta_abc.toml",
                 "datasheet_str.toml", "efficiency_int.toml", "inf_bw.toml", "nan_bw.toml",
                 "str_bw.toml", "dir.toml", "missing.toml", "name_table.toml"):
        add(f"--hardware {name}", ["predict", "--hardware", "{F:" + name + "}"], needles=(name,))
    for name in ("sources_none.toml", "meta_abc.toml", "binary.toml"):
        add(f"hardware show {name}", ["hardware", "show", "{F:" + name + "}"], needles=(name,))
    add("--hardware unreadable", ["predict", "--hardware", "{F:unreadable.toml}"],
        needles=("unreadable",), needs_non_root=True)
    add("--hardware markup name (predict)", ["predict", "--hardware", "{F:markup.toml}"], OK)
    add("--hardware markup name (advise)", ["advise", "--hardware", "{F:markup.toml}"], OK)
    add("--hardware markup name (show)", ["hardware", "show", "{F:markup.toml}"], OK)
    add("--model markup folder (predict)", ["predict", "--model", "{F:[red]m/config.json}"], OK)

    for name in ("binary.csv", "empty.csv", "header.csv", "seqinf.csv", "budget_neg.csv",
                 "budget_inf.csv", "method_bogus.csv", "acc_nan.csv", "acc_2.csv", "missing_col.csv",
                 "dir.csv", "seq_neg.csv", "budget_frac.csv"):
        add(f"--acceptance-table {name}", ["predict", "--acceptance-table", "{F:" + name + "}"],
            needles=(name,))
        if name in ("seqinf.csv", "method_bogus.csv", "binary.csv"):
            add(f"advise --acceptance-table {name}", [*adv, "--acceptance-table", "{F:" + name + "}"],
                needles=(name,))
    add("--acceptance-table unreadable", ["predict", "--acceptance-table", "{F:unreadable.csv}"],
        needles=("unreadable",), needs_non_root=True)

    # ------------------------------------------------------------------ outputs
    for sub, suffix in (("sweep", "csv"), ("report", "html")):
        b = base["sweep"] if sub == "sweep" else rep
        add(f"{sub} --out a directory", _with(b, "--out", "{F:dir." + suffix + "}"), needles=("--out",))
        add(f"{sub} --out missing folder", _with(b, "--out", "{out}/no/such/x." + suffix),
            needles=("--out",))
        add(f"{sub} --out wrong suffix", _with(b, "--out", "{out}/x.xlsx"), needles=("--out",))
        add(f"{sub} --out under /proc", _with(b, "--out", "/proc/x." + suffix), needles=("/proc",))
        add(f"{sub} --out read-only folder", _with(b, "--out", "{F:rodir}/x." + suffix),
            needles=("rodir",), needs_non_root=True)
        add(f"{sub} --out unicode name", _with(b, "--out", "{out}/é😀." + suffix), OK)
    add("sweep --out parquet", _with(base["sweep"], "--out", "{out}/g.parquet"), OK)
    return cases


CASES = _cases()

# ---------------------------------------------------------------------------- odd files
_CFG = {"hidden_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 512,
        "vocab_size": 32000, "num_key_value_heads": 2, "max_position_embeddings": 2048}
_TOML = """name = "x"
description = "test profile"
[datasheet]
peak_flops_bf16 = 1e14
peak_flops_fp32 = 1e13
mem_bw = 1e12
mem_capacity = 8e10
[efficiency]
gemm_bw = 0.8
gemm_flops = 0.7
attention_bw = 0.6
attention_flops = 0.5
elementwise_bw = 0.6
elementwise_flops = 0.5
kernel_fixed_s = 5e-6
allreduce_latency_s = 1e-5
allreduce_hop_latency_s = 1e-6
allreduce_busbw = 1e11
"""
_ACC_HEAD = "model,draft,method,budget,seq_len,acceptance,dataset,source\n"
_ACC_ROW = "llama-3.1-8b,self,streamingllm,{budget},{seq},{acc},pg19,test\n"


def make_files(root: Path) -> dict[str, Path]:
    """Write every odd input file under ``root``; return name -> path."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, content: str | bytes | None) -> None:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            p.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        files[name] = p

    binary = bytes(range(256)) * 8
    for ext in ("json", "toml", "csv"):
        put(f"binary.{ext}", b"\xff\xfe\x00\x81" + binary)
        put(f"unreadable.{ext}", "x")
        os.chmod(root / f"unreadable.{ext}", 0)
        put(f"dir.{ext}", None)
    put("dir.html", None)
    put("emptydir", None)
    put("broken.gguf", b"GGUF" + binary)
    put("rodir", None)
    os.chmod(root / "rodir", 0o555)
    put("empty.txt", "")
    put("empty.json", "")
    put("list.json", "[1, 2, 3]")
    put("invalid.json", "{not json")
    put("nul.json", "\x00" * 16)
    put("huge_hidden.json", json.dumps({**_CFG, "hidden_size": 10**30}))
    put("negative_layers.json", json.dumps({**_CFG, "num_hidden_layers": -2}))
    put("bool_heads.json", json.dumps({**_CFG, "num_attention_heads": True}))
    put("kv0.json", json.dumps({**_CFG, "num_key_value_heads": 0}))
    put("headdim0.json", json.dumps({**_CFG, "head_dim": 0}))
    put("rope_abc.json", json.dumps({**_CFG, "rope_theta": "abc"}))
    put("rope_null.json", json.dumps({**_CFG, "rope_theta": None}))
    put("tie_false.json", json.dumps({**_CFG, "tie_word_embeddings": "false"}))
    put("int8.json", json.dumps({**_CFG, "torch_dtype": "int8"}))
    put("[red]m/config.json", json.dumps(_CFG))

    put("empty.toml", "")
    put("invalid.toml", "[datasheet\nmem_bw = ")
    put("sources_none.toml", _TOML.replace('description = "test profile"\n',
                                           'description = "t"\nsources = "none"\n'))
    put("meta_abc.toml", _TOML.replace('description = "test profile"\n', 'description = "t"\nmeta = "abc"\n'))
    put("datasheet_str.toml", 'name = "x"\ndatasheet = "fast"\n[efficiency]\ngemm_bw = 0.5\n')
    put("efficiency_int.toml", _TOML.split("[efficiency]")[0] + "efficiency = 1\n")
    put("inf_bw.toml", _TOML.replace("mem_bw = 1e12", "mem_bw = inf"))
    put("nan_bw.toml", _TOML.replace("mem_bw = 1e12", "mem_bw = nan"))
    put("str_bw.toml", _TOML.replace("mem_bw = 1e12", 'mem_bw = "1e12"'))
    put("name_table.toml", _TOML.replace('name = "x"', "[name]\nx = 1\n[other]"))
    files["missing.toml"] = root / "missing.toml"
    put("markup.toml", _TOML.replace('name = "x"', 'name = "[/bold]evil[red"').replace(
        'description = "test profile"', 'description = "[link=x]d[/]"'))

    put("empty.csv", "")
    put("header.csv", _ACC_HEAD)
    put("seqinf.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq="inf", acc=0.7))
    put("seq_neg.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=-8000, acc=0.7))
    put("budget_neg.csv", _ACC_HEAD + _ACC_ROW.format(budget=-512, seq=8000, acc=0.7))
    put("budget_inf.csv", _ACC_HEAD + _ACC_ROW.format(budget="inf", seq=8000, acc=0.7))
    put("budget_frac.csv", _ACC_HEAD + _ACC_ROW.format(budget=0.5, seq=8000, acc=0.7))
    put("method_bogus.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc=0.7).replace(
        "streamingllm", "h2o-bogus"))
    put("acc_nan.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc="nan"))
    put("acc_2.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc=2))
    put("missing_col.csv", "model,draft\nllama-3.1-8b,self\n")
    return files


_PLACEHOLDER = re.compile(r"\{F:([^}]*)\}")


def resolve(argv: list[str], files: dict[str, Path], out: Path) -> list[str]:
    """Fill the ``{F:name}`` and ``{out}`` placeholders of an argument list."""
    return [_PLACEHOLDER.sub(lambda m: str(files[m.group(1)]), a).replace("{out}", str(out))
            for a in argv]


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None
    leftovers: list[str]


def run_case(case: Case, files: dict[str, Path], work: Path) -> Outcome:
    """Run one case in-process (cwd = ``work``); ``work/out`` is its fresh output folder."""
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.rglob("*"))
    result = CliRunner().invoke(app, resolve(case.argv, files, out))
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    left = sorted(str(p.relative_to(out)) for p in set(out.rglob("*")) - before)
    return Outcome(result.exit_code, result.stdout, result.stderr, exc, left)


def judge(case: Case, o: Outcome) -> str | None:
    """None when the outcome is what the case expects, else a short reason."""
    text = o.stdout + o.stderr
    if o.exception is not None or "Traceback" in text:
        name = type(o.exception).__name__ if o.exception else "Traceback"
        return f"traceback ({name}: {str(o.exception)[:80]})"
    if o.exit_code == 0:
        if case.expect == ERR:
            return "silently accepted (exit 0)"
        if case.check is not None and not case.check(o.stdout):
            return "silently wrong result (exit 0)"
        return None
    if o.exit_code != 2:
        return f"exit {o.exit_code}"
    if case.expect == OK:
        return f"refused a valid input: {o.stderr.strip()[:100]}"
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"message not one 'error:' line ({len(lines)} lines)"
    missing = [n for n in case.needles if n.lower() not in lines[0].lower()]
    if missing:
        return f"message does not name {missing}: {lines[0][:120]}"
    if o.leftovers:
        return f"left files behind after an error: {o.leftovers[:3]}"
    return None


def main() -> int:
    """Run the whole corpus; print each failure and the counts."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    failures = tried = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_files(root / "files")
        cwd = os.getcwd()
        for i, case in enumerate(CASES):
            if case.needs_non_root and is_root:
                continue
            work = root / f"w{i}"
            work.mkdir()
            os.chdir(work)
            try:
                reason = judge(case, run_case(case, files, work))
            finally:
                os.chdir(cwd)
            tried += 1
            if reason:
                failures += 1
                print(f"FAIL {case.id}: {reason}")
        os.chmod(root / "files" / "rodir", 0o755)
    print(f"{tried} cases tried, {failures} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
