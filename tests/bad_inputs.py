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
    #: text the error line must NOT contain (e.g. 'config.json' for an empty --model)
    absent: tuple[str, ...] = ()
    #: prepares the output folder before the run (files a case needs there)
    setup: Callable[[Path], None] | None = None
    #: after the run, whatever the exit: None when the output folder is as it must be, else why not
    after: Callable[[Path], str | None] | None = None


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
    add("acceptance measure --resume a run log without its configuration", [*acc, "--resume"],
        needles=("--resume", "acc.csv.config.json"), setup=_put("acc.csv.runs.csv", "key\nx\n"),
        after=_unchanged("acc.csv.runs.csv", "key\nx\n"))

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
    # acceptance fit: bad tables, a bad --out; --accept-rate
    for name in ("binary.csv", "acc_nan.csv", "missing_col.csv", "method_bogus.csv"):
        add(f"acceptance fit --table {name}", ["acceptance", "fit", "--table", "{F:" + name + "}"],
            needles=(name,))
    add("acceptance fit --out .txt", ["acceptance", "fit", "--out", "{out}/m.txt"], needles=("--out",))
    add("predict --accept-rate without gamma", ["predict", "--accept-rate", "0.5"],
        needles=("--accept-rate",))
    add("predict --accept-rate nan", ["predict", "--accept-rate", "nan", "--gamma", "3"],
        needles=("--accept-rate",))
    add("sweep --accept-rate above 1",
        ["sweep", "--out", "{out}/g.csv", "--accept-rate", "1.5", "--gamma", "3"], needles=("--accept-rate",))
    add("acceptance fit --published --out .txt", ["acceptance", "fit", "--published", "--out", "{out}/m.txt"],
        needles=("--out",))

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
    _wider_cases(add)

    # ------------------------------------------------------------------ simulate (docs/serving.md)
    sim = ["simulate", "--qps", "1", "--num-requests", "5", "--workload", "gsm8k"]
    add("simulate (valid)", sim, OK)
    for flag, value in (("--qps", "0"), ("--qps", "nan"), ("--qps", "abc"), ("--qps", "5:1:3"),
                        ("--concurrency", "0"), ("--concurrency", "0.4"), ("--num-requests", "0"),
                        ("--policy", "sometimes"), ("--policy", "schedule:1-4:3,2-8:1"),
                        ("--workload", "nosuch"), ("--prompt", "uniform:9:1"), ("--output", "lognormal:5:9"),
                        ("--slo-tpot", "0"), ("--slo-ttft", "nan"), ("--burstiness", "0"),
                        ("--acceptance-spread", "2"), ("--export", "tgi"), ("--gamma", "0"), ("--gpus", "0"),
                        ("--executor", "ray"), ("--max-seqs", "0"), ("--trace", "{F:empty.csv}"),
                        ("--trace", "{F:dir.csv}"), ("--gamma-max", "99")):
        add(f"simulate {flag} {value}", _with(sim, flag, value), needles=(flag,))
    add("simulate --export without --out", [*sim, "--export", "vllm"], needles=("--export",))
    add("simulate --export self-draft", [*sim, "--draft", "self", "--export", "vllm", "--out",
                                         "{out}/s.json"], needles=("--export",))
    add("simulate --out wrong suffix", [*sim, "--export", "vllm", "--out", "{out}/s.xlsx"],
        needles=("--out",))
    add("simulate --html wrong suffix", [*sim, "--html", "{out}/p.txt"], needles=("--html",))
    add("simulate --max-qps-under-slo without SLO", [*sim, "--max-qps-under-slo"],
        needles=("--max-qps-under-slo",))
    for flag, value in (("--model", ""), ("--draft", "nosuchdraft"), ("--kv-budget", "0"),
                        ("--kv-method", "sometimes"), ("--hardware", "nosuchgpu"),
                        ("--engine", "{F:dir.toml}"),
                        ("--acceptance", "1.5"), ("--acceptance-table", "{F:dir.csv}"), ("--accept-len", "0"),
                        ("--draft-fraction", "2"), ("--draft-vocab", "0"), ("--weight-dtype", "fp3"),
                        ("--kv-dtype", "int1"), ("--seed", "-1"), ("--max-batched-tokens", "0"),
                        ("--replicas", "0"), ("--slo-attainment", "1.5"), ("--format", "xml"),
                        ("--jobs", "0"), ("--scheduler", "{F:dir.toml}")):
        add(f"simulate {flag} {value}", _with(sim, flag, value), needles=(flag,))
    add("simulate --expert-parallel (dense model)", [*sim, "--expert-parallel"],
        needles=("--expert-parallel",))
    add("hardware show --toml unknown profile", ["hardware", "show", "nosuchgpu", "--toml"],
        needles=("nosuchgpu",))
    # ------------------------------------------------------------------ --config (every command)
    for path in _leaf_commands():
        add(f"{' '.join(path)} --config missing", [*path, "--config", "{out}/missing.toml"],
            needles=("--config", "missing.toml"))
    return cases


def _leaf_commands() -> list[tuple[str, ...]]:
    """Every command of the CLI, as the words that run it (``('engines', 'show')``)."""
    from typer.main import get_command

    from magicdec_model.cli.main import app

    def walk(group, prefix: tuple[str, ...] = ()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*prefix, name))
            else:
                yield (*prefix, name)

    return list(walk(get_command(app)))


#: a value far longer than any name or number (issue 17: 5-100 KB error lines)
LONG = "x" * 100_000
#: the longest error line allowed: long values are shown truncated
MAX_ERROR_LINE = 1000


def _unchanged(name: str, content: str) -> Callable[[Path], str | None]:
    def after(out: Path) -> str | None:
        p = out / name
        ok = p.is_file() and p.read_text(encoding="utf-8") == content
        return None if ok else f"{name} was overwritten or removed"
    return after


def _put(name: str, content: str) -> Callable[[Path], None]:
    def setup(out: Path) -> None:
        (out / name).write_text(content, encoding="utf-8")
    return setup


def _concurrent_partial(out: Path) -> None:
    """A sweep to g.csv.x.csv in progress: its lock and its partial file, made by the package."""
    from magicdec_model.perfmodel.outfiles import new_partial

    (out / "g.csv.x.csv.lock").write_text("{}", encoding="utf-8")
    new_partial(out / "g.csv.x.csv")


def _partial_kept(out: Path) -> str | None:
    left = [p.name for p in out.iterdir()
            if p.name.startswith("g.csv.x.csv.") and p.name.endswith(".partial")]
    return None if left else "the partial file of a concurrent sweep to g.csv.x.csv was removed"


def _rows(out: str) -> list[dict]:
    return json.loads(out)


def _tree_ok(out: str) -> bool:
    """A tree of depth 3 emits at most gamma + 1 = 4 tokens per step (3 drafted + 1 bonus)."""
    rows = _rows(out)
    return all(r["expected_tokens"] <= 4 and 0 < r["speedup"] <= r["expected_tokens"] for r in rows)


def _speedup_positive(out: str) -> bool:
    text = out.strip()
    if not text.startswith(("[", "{")):
        return True
    doc = json.loads(text)
    rows = doc if isinstance(doc, list) else doc.get("rows", [])
    return all(r.get("speedup", 1.0) > 0 and r.get("speedup_model", 1.0) > 0 for r in rows)


def _wider_cases(add: Callable[..., None]) -> None:
    """Issue 17 section 7: every class of mishandled input, over every subcommand and flag."""
    tree = ["predict", "--batch", "1", "--seq-len", "4k", "--gamma", "3", "--accept-len", "2"]
    chain = ["predict", "--batch", "1", "--seq-len", "4k", "--gamma", "3"]
    # ---- silently wrong numbers
    add("tree accept-len above depth + 1 (gamma 1)",
        ["predict", "--gamma", "1", "--verify-tokens", "16", "--accept-len", "16"],
        needles=("--accept-len", "2"))
    add("tree accept-len above depth + 1 (gamma 3)", [*chain, "--verify-tokens", "16", "--accept-len", "4.5"],
        needles=("--accept-len", "4"))
    add("sweep tree accept-len above depth + 1",
        ["sweep", "--out", "{out}/g.csv", "--gamma", "1", "--verify-tokens", "16", "--accept-len", "16"],
        needles=("--accept-len",))
    add("tree accept-len within depth + 1", [*chain, "--verify-tokens", "16", "--accept-len", "3.5",
                                             "--format", "json"], OK, check=_tree_ok)
    add("--hardware fp8_zero.toml --weight-dtype fp8",
        ["predict", "--hardware", "{F:fp8_zero.toml}", "--weight-dtype", "fp8"], needles=("peak_flops_fp8",))
    for name in ("tiny_bw.toml", "huge_peaks.toml", "tiny_eff.toml", "tiny_capacity.toml"):
        add(f"predict --hardware {name}", ["predict", "--hardware", "{F:" + name + "}", "--format", "json"],
            EITHER, needles=(name,), check=_speedup_positive)
        add(f"compare-paper --hardware {name} json",
            ["compare-paper", "--hardware", "{F:" + name + "}", "--format", "json"], EITHER,
            needles=(name,), check=_speedup_positive)
        add(f"advise --hardware {name}", ["advise", "--hardware", "{F:" + name + "}", "--format", "json"],
            EITHER, needles=(name,))
        add(f"breakdown --hardware {name}",
            ["breakdown", "--hardware", "{F:" + name + "}", "--format", "json"], EITHER, needles=(name,))
    for name in ("eng_host_huge.toml", "eng_stderr_huge.toml", "eng_quant_huge.toml", "eng_loop_huge.toml"):
        add(f"predict --engine {name}", ["predict", "--engine", "{F:" + name + "}", "--format", "json"],
            EITHER, needles=(name,), check=_speedup_positive)
    add("compare-paper --engine eng_host_huge.toml json",
        ["compare-paper", "--engine", "{F:eng_host_huge.toml}", "--format", "json"], EITHER,
        needles=("eng_host_huge.toml",), check=_speedup_positive)
    cal = ["calibrate", "--model", "llama-2-7b-32k", "--gpus", "8", "--out", "{out}/e.toml"]
    add("calibrate five copies of one step", [*cal, "--steps", "{F:steps_dup5.csv}"],
        needles=("steps_dup5.csv", "distinct"))
    add("calibrate collinear --fit", [*cal, "--steps", "{F:steps_ok.csv}", "--fit", "host_step_s,launch_s"],
        needles=("--fit", "launch_s"))
    add("calibrate a good steps file", [*cal, "--steps", "{F:steps_ok.csv}"], OK)
    add("predict --engine eng_cov_neg.toml", ["predict", "--engine", "{F:eng_cov_neg.toml}"],
        needles=("eng_cov_neg.toml", "covariance"))
    add("engines show eng_cov_neg.toml", ["engines", "show", "{F:eng_cov_neg.toml}"],
        needles=("covariance",))
    add("--acceptance-table conflicting duplicate rows", ["predict", "--acceptance-table",
                                                          "{F:acc_conflict.csv}"],
        needles=("acc_conflict.csv", "row"))
    add("--acceptance-table identical duplicate rows", ["predict", "--acceptance-table",
                                                        "{F:acc_dup_same.csv}"], OK)
    # ---- internal errors
    for v in (str(10**30), "9223372036854775808", "1e30", "0", "1", "-1", "abc", "nan", "3"):
        add(f"predict --verify-tokens {v[:24]!r}", [*tree, "--verify-tokens", v],
            needles=("--verify-tokens",))
    for v in (str(10**30), "0"):
        add(f"sweep --verify-tokens {v[:24]!r}",
            ["sweep", "--out", "{out}/g.csv", "--gamma", "3", "--accept-len", "2", "--verify-tokens", v],
            needles=("--verify-tokens",))
        add(f"breakdown --verify-tokens {v[:24]!r}",
            ["breakdown", "--step", "verify", "--gamma", "3", "--verify-tokens", v],
            needles=("--verify-tokens",))
    add("predict --engine eng_resid_huge.toml", ["predict", "--engine", "{F:eng_resid_huge.toml}"],
        needles=("residual_sd_log",))
    for argv, name in ((["predict", "--engine"], "deep.toml"), (["predict", "--hardware"], "deep.toml"),
                       (["predict", "--model"], "deep.json"), (["engines", "show"], "deep.toml"),
                       (["hardware", "show"], "deep.toml"), (["models", "show"], "deep.json"),
                       (["advise", "--hardware"], "deep.toml"), (["breakdown", "--engine"], "deep.toml"),
                       ([*cal, "--steps", "{F:steps_ok.csv}", "--prior"], "deep.toml"),
                       (["predict", "--model"], "deep_object.json")):
        add(f"{argv[0]} {argv[-1]} {name} (nested too deeply)", [*argv, "{F:" + name + "}"], needles=(name,))
    add("calibrate --draft ngram with draft rows",
        [*cal, "--steps", "{F:steps_draft.csv}", "--draft", "ngram"], needles=("ngram",))
    add("calibrate measurements without status", [*cal, "--steps", "{F:meas_nostatus.csv}"],
        needles=("meas_nostatus.csv", "status"))
    add("calibrate huge batch", [*cal, "--steps", "{F:steps_huge_batch.csv}"], needles=("batch",))
    add("calibrate huge step_s", [*cal, "--steps", "{F:steps_huge_time.csv}"], needles=("step_s",))
    # ---- data safety
    add("sweep beside a concurrent sweep's partial file",
        ["sweep", "--out", "{out}/g.csv", "--batch", "1", "--seq-len", "1k"], OK,
        setup=_concurrent_partial, after=_partial_kept)
    acc = _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc=0.7)
    add("sweep --out is the --acceptance-table",
        ["sweep", "--out", "{out}/acc.csv", "--acceptance-table", "{out}/acc.csv", "--batch", "1"],
        needles=("--out", "--acceptance-table"), setup=_put("acc.csv", acc), after=_unchanged("acc.csv", acc))
    add("sweep --out is the --acceptance-table (other spelling)",
        ["sweep", "--out", "{out}/acc.csv", "--acceptance-table", "{out}/./acc.csv", "--batch", "1"],
        needles=("--out",), setup=_put("acc.csv", acc), after=_unchanged("acc.csv", acc))
    add("calibrate --out is the --hardware profile",
        [*_with(cal, "--out", "{out}/hw.toml"), "--steps", "{F:steps_ok.csv}", "--hardware", "{out}/hw.toml"],
        needles=("--out", "--hardware"), setup=_put("hw.toml", _TOML), after=_unchanged("hw.toml", _TOML))
    add("breakdown --verify-tokens (a tree's verify step)",
        ["breakdown", "--step", "verify", "--gamma", "3", "--verify-tokens", "8"], OK)
    add("breakdown --verify-tokens below the chain",
        ["breakdown", "--step", "verify", "--gamma", "3", "--verify-tokens", "3"],
        needles=("--verify-tokens",))
    # ---- messages and guards
    for sub in ("predict", "sweep", "breakdown", "advise", "report", "calibrate"):
        argv = {"sweep": ["sweep", "--out", "{out}/g.csv"], "report": ["report", "--out", "{out}/r.html"],
                "calibrate": [*cal, "--steps", "{F:steps_ok.csv}"]}.get(sub, [sub])
        add(f"{sub} --model ''", [*argv, "--model", ""], needles=("--model",), absent=("'config.json'",))
        add(f"{sub} --hardware ''", [*argv, "--hardware", ""], needles=("--hardware",))
        if sub != "calibrate":
            add(f"{sub} --engine ''", [*argv, "--engine", ""], needles=("--engine",))
        if sub != "advise":
            add(f"{sub} --draft ''", [*argv, "--draft", ""], needles=("--draft",), absent=("'config.json'",))
    add("validate --model ''", _with(V, "--model", ""), needles=("--model",), absent=("'config.json'",))
    for flag in ("--engine", "--start-profile", "--checkpoint"):
        add(f"validate {flag} ''", _with(V, flag, ""), needles=(flag,))
    for sub, argv in (("advise", ["advise"]), ("report", ["report", "--out", "{out}/r.html"]),
                      ("compare-paper", ["compare-paper"]), ("sweep", ["sweep", "--out", "{out}/g.csv"])):
        add(f"{sub} --acceptance-table ''", [*argv, "--acceptance-table", ""],
            needles=("--acceptance-table",))
    add("compare-paper --hardware ''", ["compare-paper", "--hardware", ""], needles=("--hardware",))
    add("compare-paper --engine ''", ["compare-paper", "--engine", ""], needles=("--engine",))
    add("calibrate --prior ''", [*cal, "--steps", "{F:steps_ok.csv}", "--prior", ""], needles=("--prior",))
    add("calibrate --steps ''", [*cal, "--steps", ""], needles=("--steps",))
    add("predict --acceptance-table ''", ["predict", "--acceptance-table", ""],
        needles=("--acceptance-table",))
    for sub in ("models", "hardware", "engines"):
        add(f"{sub} show ''", [sub, "show", ""], needles=("empty",), absent=("'config.json'",))
    add("--engine a folder", ["predict", "--engine", "{F:dir.toml}"], needles=("dir.toml", "folder"))
    add("engines show a folder", ["engines", "show", "{F:dir.toml}"], needles=("dir.toml", "folder"))
    add("calibrate --steps a folder", [*cal, "--steps", "{F:dir.csv}"], needles=("dir.csv", "folder"))
    long_flags = {
        "predict": ("--model", "--draft", "--kv-budget", "--kv-method", "--hardware", "--gpus", "--batch",
                    "--seq-len", "--gamma", "--acceptance", "--acceptance-table", "--engine",
                    "--weight-dtype", "--kv-dtype", "--position-acceptance", "--format", "--accept-len",
                    "--verify-tokens", "--draft-fraction", "--draft-vocab"),
        "breakdown": ("--step", "--model", "--engine", "--batch"),
        "advise": ("--model", "--hardware", "--top", "--latency-budget-ms", "--format"),
        "compare-paper": ("--gamma", "--hardware", "--engine", "--format"),
        "calibrate": ("--steps", "--fit", "--prior", "--model", "--gpus", "--draft"),
        "report": ("--batch", "--kv-method"),
        "sweep": ("--batch", "--model"),
    }
    for sub, flags in long_flags.items():
        for flag in flags:
            argv = {"sweep": ["sweep", "--out", "{out}/g.csv"], "report": ["report", "--out", "{out}/r.html"],
                    "calibrate": [*cal, "--steps", "{F:steps_ok.csv}"]}.get(sub, [sub])
            add(f"{sub} {flag} (100 KB)", _with(argv, flag, LONG), needles=(flag,))
    add("predict --batch (5,000 digits)", ["predict", "--batch", "9" * 5000], needles=("--batch",))
    for sub in ("models", "hardware", "engines"):
        add(f"{sub} show (100 KB)", [sub, "show", LONG], needles=("xxx",))
    add("validate --device (100 KB)", _with(V, "--device", LONG), needles=("--device",))
    for argv, name in ((["predict", "--model"], "big.json"), (["predict", "--engine"], "big.toml"),
                       (["predict", "--hardware"], "big.toml"),
                       (["predict", "--acceptance-table"], "big.csv"),
                       ([*cal, "--steps"], "big.csv"), (["engines", "show"], "big.toml"),
                       (["models", "show"], "big.json"),
                       ([*cal, "--steps", "{F:steps_ok.csv}", "--prior"], "big.toml")):
        add(f"{argv[0]} {argv[-1]} {name} (over 64 MiB)", [*argv, "{F:" + name + "}"],
            needles=(name, "64 MiB"))
    # ---- widening: every value flag of every prediction command refuses a bad value, naming it
    bad_value = {"--acceptance": "2", "--kv-budget": "0", "--gpus": "0", "--kv-method": "bogus-method",
                 "--kv-dtype": "nf4", "--weight-dtype": "int3", "--draft-fraction": "2", "--draft-vocab": "0",
                 "--position-acceptance": "a,b"}
    shapes = {"sweep": ["sweep", "--out", "{out}/g.csv", "--gamma", "3"],
              "breakdown": ["breakdown", "--gamma", "3"], "report": ["report", "--out", "{out}/r.html"],
              "advise": ["advise"]}
    for sub, argv in shapes.items():
        for flag, value in bad_value.items():
            if sub != "sweep" and flag in ("--draft-fraction", "--position-acceptance", "--acceptance") \
                    and not (flag == "--acceptance" and sub in ("report", "advise")):
                continue
            if sub in ("report", "advise") and flag == "--draft-vocab":
                continue
            if sub == "advise" and flag in ("--kv-budget", "--kv-method"):
                continue
            extra = ["--draft", "eagle"] if flag == "--draft-vocab" else []
            add(f"{sub} {flag} {value}", [*argv, *extra, flag, value], needles=(flag,))
    for sub, argv in shapes.items():  # boolean flags: valid alone
        add(f"{sub} --ideal", [*argv, "--ideal", "--batch", "1", "--seq-len", "1k"], OK)
        add(f"{sub} --expert-parallel (MoE)", [*argv, "--expert-parallel", "--model", "mixtral-8x7b",
                                               "--gpus", "8", "--batch", "1", "--seq-len", "1k"], OK)
    add("predict --expert-parallel (MoE)", ["predict", "--expert-parallel", "--model", "mixtral-8x7b",
                                            "--gpus", "8", "--batch", "1", "--seq-len", "1k"], OK)
    add("compare-paper --ideal", ["compare-paper", "--ideal", "--format", "json"], OK)
    add("validate --resume (bad device)", [*_with(V, "--device", "tpu"), "--resume"], needles=("--device",))
    add("validate --cuda-graph (bad device)", [*_with(V, "--device", "tpu"), "--cuda-graph"],
        needles=("--device",))
    add("calibrate --name and --description (100 KB)", [*cal, "--steps", "{F:steps_ok.csv}", "--name", LONG,
                                                       "--description", LONG], EITHER, needles=("--name",))
    add("calibrate --name ''", [*cal, "--steps", "{F:steps_ok.csv}", "--name", ""], EITHER,
        needles=("--name",))
    # ---- widening: calibrate and engines flags, --engine, --accept-len, --verify-tokens everywhere
    for v in ("0", "-1", "1e30", "abc", "1,2", ""):
        add(f"calibrate --gpus {v!r}", [*_with(cal, "--gpus", v), "--steps", "{F:steps_ok.csv}"],
            needles=("--gpus",))
    for flag, v in (("--prior", "bogus-engine"), ("--fit", "bogus_term"), ("--model", "bogus-model"),
                    ("--hardware", "bogus-gpu"), ("--draft", "bogus-draft")):
        add(f"calibrate {flag} {v}", [*_with(cal, flag, v), "--steps", "{F:steps_ok.csv}"], needles=(v,))
    add("calibrate --fit ''", [*cal, "--steps", "{F:steps_ok.csv}", "--fit", ""], needles=("--fit",))
    add("calibrate --prior dir.toml", [*cal, "--steps", "{F:steps_ok.csv}", "--prior", "{F:dir.toml}"],
        needles=("dir.toml",))
    add("engines list", ["engines", "list"], OK)
    add("models list", ["models", "list"], OK)
    add("hardware list", ["hardware", "list"], OK)
    add("engines show generic", ["engines", "show", "generic"], OK)
    add("engines show eng_ok.toml", ["engines", "show", "{F:eng_ok.toml}"], OK)
    add("predict --engine eng_ok.toml", ["predict", "--engine", "{F:eng_ok.toml}"], OK)
    for sub, argv in (("sweep", ["sweep", "--out", "{out}/g.csv"]), ("breakdown", ["breakdown"]),
                      ("report", ["report", "--out", "{out}/r.html"]), ("advise", ["advise"]),
                      ("compare-paper", ["compare-paper"])):
        add(f"{sub} --engine bogus", [*argv, "--engine", "no-such-engine"], needles=("no-such-engine",))
        add(f"{sub} --engine binary.toml", [*argv, "--engine", "{F:binary.toml}"], needles=("binary.toml",))
    for v in ("0", "0.5", "-1", "nan", "inf", "1e308", "abc", "5", ""):
        add(f"predict --accept-len {v!r}", [*chain, "--accept-len", v], needles=("--accept-len",))
    add("predict --accept-len 2.5", [*chain, "--accept-len", "2.5", "--format", "json"], OK,
        check=lambda out: all(r["expected_tokens"] == 2.5 for r in _rows(out)))
    add("predict --accept-len with gamma auto", ["predict", "--accept-len", "2"], needles=("--accept-len",))
    add("sweep --accept-len 5", ["sweep", "--out", "{out}/g.csv", "--gamma", "3", "--accept-len", "5"],
        needles=("--accept-len",))
    for flag, v in (("--draft-fraction", "0"), ("--draft-fraction", "-0.5"), ("--draft-fraction", "inf"),
                    ("--draft-vocab", str(10**30)), ("--position-acceptance", "0.9,nan"),
                    ("--position-acceptance", "0.5,0.9"), ("--position-acceptance", ""),
                    ("--weight-dtype", ""), ("--kv-dtype", "")):
        argv = [*chain, flag, v] + (["--draft", "eagle"] if flag == "--draft-vocab" else [])
        add(f"predict {flag} {v!r}", argv, needles=(flag,))



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
_ENGINE = """name = "test-engine"
description = "test engine"
[terms]
host_step_s = 2e-3
host_per_seq_s = 2e-6
launch_s = 0.0
sd_iteration_s = 5e-4
[stderr]
host_step_s = 9e-4
host_per_seq_s = 3e-6
launch_s = 0.0
sd_iteration_s = 4e-4
[sources]
host_step_s = "test"
host_per_seq_s = "test"
launch_s = "test"
sd_iteration_s = "test"
"""
_CALIB = """[calibration]
parameters = ["host_step_s"]
covariance = {cov}
residual_sd_log = {sd}
t_quantile_80 = {t}
dof = 5
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

    # issue 17 section 7
    put("fp8_zero.toml", _TOML.replace("mem_bw = 1e12", "mem_bw = 1e12\npeak_flops_fp8 = 0"))
    put("tiny_bw.toml", _TOML.replace("mem_bw = 1e12", "mem_bw = 1e-300"))
    put("huge_peaks.toml", _TOML.replace("peak_flops_bf16 = 1e14", "peak_flops_bf16 = 1e300").replace(
        "peak_flops_fp32 = 1e13", "peak_flops_fp32 = 1e300").replace("mem_bw = 1e12", "mem_bw = 1e300")
        .replace("kernel_fixed_s = 5e-6", "kernel_fixed_s = 0").replace("allreduce_latency_s = 1e-5",
                                                                         "allreduce_latency_s = 0"))
    put("tiny_eff.toml", _TOML.replace("gemm_bw = 0.8", "gemm_bw = 1e-300"))
    put("tiny_capacity.toml", _TOML.replace("mem_capacity = 8e10", "mem_capacity = 1e-300"))
    put("eng_ok.toml", _ENGINE)
    put("eng_cov_neg.toml", _ENGINE + _CALIB.format(cov="[[-1e-6]]", sd="0.1", t="1.5"))
    put("eng_resid_huge.toml", _ENGINE + _CALIB.format(cov="[[1e-8]]", sd="1e300", t="1.5"))
    put("eng_quant_huge.toml", _ENGINE + _CALIB.format(cov="[[1e-8]]", sd="0.1", t="1e300"))
    put("eng_host_huge.toml", _ENGINE.replace("host_step_s = 2e-3", "host_step_s = 1e300"))
    put("eng_loop_huge.toml", _ENGINE.replace("sd_iteration_s = 5e-4", "sd_iteration_s = 1e300"))
    put("eng_stderr_huge.toml", _ENGINE.replace("host_step_s = 9e-4", "host_step_s = 1e300"))
    put("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    put("deep.json", "[" * 100_000 + "]" * 100_000)
    put("deep_object.json", '{"a": ' * 100_000 + "1" + "}" * 100_000)
    for name in ("big.json", "big.toml", "big.csv"):  # sparse: 65 MiB of size, no disk used
        put(name, "")
        with open(root / name, "r+b") as fh:
            fh.truncate(65 * 2**20)
    from importlib import resources

    ar_steps = resources.files("magicdec_model.perfmodel").joinpath(
        "data/engines/magicdec-8xa100-ar-steps.csv").read_text(encoding="utf-8")
    put("steps_ok.csv", ar_steps)
    put("steps_small.csv", "batch,seq_len,step_s\n32,2048,0.00947\n64,2048,0.0139\n128,2048,0.01916\n"
        "256,4096,0.03\n")
    put("steps_dup5.csv", "batch,seq_len,step_s\n" + "32,2048,0.00947\n" * 5)
    put("steps_draft.csv", "batch,seq_len,step_s,kind\n32,2048,0.00947,decode\n64,2048,0.0139,decode\n"
        "128,2048,0.01916,decode\n32,2048,0.002,draft\n")
    put("steps_huge_batch.csv", "batch,seq_len,step_s\n32,2048,0.00947\n1e300,2048,0.0139\n128,2048,0.019\n")
    put("steps_huge_time.csv", "batch,seq_len,step_s\n32,2048,0.00947\n64,2048,1e300\n128,2048,0.019\n")
    put("meas_nostatus.csv", "key,stage,op,value,batch,seq_len,gpus\n"
        "b32,check,target_decode,0.009,32,2048,8\nb64,check,target_decode,0.013,64,2048,8\n")
    put("acc_conflict.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc=0.7)
        + _ACC_ROW.format(budget=512, seq=8000, acc=0.9))
    put("acc_dup_same.csv", _ACC_HEAD + _ACC_ROW.format(budget=512, seq=8000, acc=0.7) * 2)
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
    #: what ``Case.after`` found wrong with the output folder (None: nothing)
    after: str | None = None


def run_case(case: Case, files: dict[str, Path], work: Path) -> Outcome:
    """Run one case in-process (cwd = ``work``); ``work/out`` is its fresh output folder."""
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(out)
    before = set(out.rglob("*"))
    result = CliRunner().invoke(app, resolve(case.argv, files, out))
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    left = sorted(str(p.relative_to(out)) for p in set(out.rglob("*")) - before)
    after = case.after(out) if case.after is not None else None
    return Outcome(result.exit_code, result.stdout, result.stderr, exc, left, after)


def judge(case: Case, o: Outcome) -> str | None:
    """None when the outcome is what the case expects, else a short reason."""
    text = o.stdout + o.stderr
    if o.exception is not None or "Traceback" in text:
        name = type(o.exception).__name__ if o.exception else "Traceback"
        return f"traceback ({name}: {str(o.exception)[:80]})"
    if o.after:
        return o.after
    if o.exit_code == 0:
        if case.expect == ERR:
            return "silently accepted (exit 0)"
        if "--help" not in case.argv:
            bad = nonfinite(o.stdout, is_json="json" in case.argv)
            if bad:
                return f"printed a number that is not finite (exit 0): {bad}"
        if "warning" in o.stderr.lower():
            return f"a warning leaked to stderr: {o.stderr.strip()[:120]}"
        try:
            ok = case.check is None or case.check(o.stdout)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            return "silently wrong result (exit 0)"
        return None
    if o.exit_code != 2:
        return f"exit {o.exit_code}"
    if case.expect == OK:
        return f"refused a valid input: {o.stderr.strip()[:100]}"
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"message not one 'error:' line ({len(lines)} lines)"
    if len(lines[0]) > MAX_ERROR_LINE:
        return f"error line of {len(lines[0]):,} characters: {lines[0][:100]}"
    missing = [n for n in case.needles if n.lower() not in lines[0].lower()]
    if missing:
        return f"message does not name {missing}: {lines[0][:120]}"
    present = [n for n in case.absent if n.lower() in lines[0].lower()]
    if present:
        return f"message talks about {present}: {lines[0][:120]}"
    if o.leftovers:
        return f"left files behind after an error: {o.leftovers[:3]}"
    return None


_NONFINITE = re.compile(r"(?<![\w.])[-+]?(?:nan|inf|infinity)(?![\w])", re.IGNORECASE)


def nonfinite(text: str, is_json: bool = False) -> str | None:
    """The first number in ``text`` that is not finite ('nan', 'inf', JSON's NaN/Infinity), or None;
    ``is_json``: ``text`` must also be strict JSON."""
    m = _NONFINITE.search(text)
    if m:
        return text[max(0, m.start() - 40): m.end() + 10].replace("\n", " ")
    stripped = text.strip()
    if is_json:
        try:
            json.loads(stripped, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
        except ValueError as exc:
            return f"not JSON: {str(exc)[:60]}"
    return None


CASES = _cases()


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
