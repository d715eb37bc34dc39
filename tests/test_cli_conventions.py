"""The command line's conventions (issue 17, section 5): --version, shell completion, --config
FILE, typed help, Hugging Face ids and any-case model names, hardware show --toml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import builtin_model_names, get_model, registry_name
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import builtin_hardware_names, load_profile

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["predict", "sweep", "breakdown", "report", "advise", "compare-paper", "calibrate", "validate",
            "models list", "models show", "hardware list", "hardware show", "engines list", "engines show"]


def invoke(args, **kw):
    return runner.invoke(app, args, **kw)


# ---- --version ---------------------------------------------------------------------------------

@pytest.mark.unit
def test_version_prints_the_installed_version():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.output == f"magicdec-model {version('magicdec-model')}\n"
    assert version("magicdec-model") == declared


# ---- shell completion --------------------------------------------------------------------------

#: typer detects the user's shell (shellingham); this variable of typer's makes the shell an argument
NO_DETECT = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


@pytest.mark.unit
def test_show_completion_prints_a_script_per_shell(monkeypatch):
    monkeypatch.setenv(NO_DETECT, "1")
    for shell, marker in (("bash", "complete -o default -F _magicdec_model_completion magicdec-model"),
                          ("zsh", "#compdef magicdec-model"), ("fish", "complete --command magicdec-model")):
        result = invoke(["--show-completion", shell])
        assert result.exit_code == 0, result.output
        assert marker in result.output, (shell, result.output[:300])
        assert "_MAGICDEC_MODEL_COMPLETE" in result.output


@pytest.mark.unit
def test_install_completion_writes_into_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(NO_DETECT, "1")
    result = invoke(["--install-completion", "bash"])
    assert result.exit_code == 0, result.output
    script = tmp_path / ".bash_completions" / "magicdec-model.sh"
    assert script.is_file() and "_magicdec_model_completion" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


@pytest.mark.unit
def test_completion_protocol_completes_commands_and_flags():
    def complete(words: str, cword: int) -> list[str]:
        env = {"_MAGICDEC_MODEL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        result = invoke([], env=env)
        assert result.exit_code == 0, result.output
        return result.output.split()

    assert complete("magicdec-model pre", 1) == ["predict"]
    assert set(complete("magicdec-model predict --kv", 2)) == {"--kv-budget", "--kv-method", "--kv-dtype"}
    assert complete("magicdec-model predict --conf", 2) == ["--config"]
    assert set(complete("magicdec-model hardware ", 2)) == {"list", "show"}
    # flag values: registry models by name or Hugging Face id, drafts, hardware, engines
    assert complete("magicdec-model predict --model llama-3.1-", 3) == [
        "llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b"]
    assert complete("magicdec-model predict --model meta-llama/Llama-3.2", 3) == [
        "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B"]
    assert complete("magicdec-model predict --draft e", 3) == ["eagle"]
    assert complete("magicdec-model advise --hardware h100", 3) == ["h100-pcie", "h100-sxm"]
    assert complete("magicdec-model predict --engine vllm", 3) == ["vllm-h100"]
    assert complete("magicdec-model validate --model llama-6", 3) == ["llama-68m"]
    assert complete("magicdec-model predict --model ./my/config.js", 3) == []  # the shell completes files


@pytest.mark.e2e
def test_bash_completion_script_runs_in_bash():
    exe = shutil.which("magicdec-model", path=str(Path(sys.executable).parent))
    bash = shutil.which("bash")
    if exe is None or bash is None:
        pytest.skip("needs bash and the installed magicdec-model console script")
    script = (f'source <("{exe}" --show-completion bash); PATH="{Path(exe).parent}:$PATH"; '
              'COMP_WORDS=(magicdec-model adv); COMP_CWORD=1; _magicdec_model_completion magicdec-model; '
              'echo "${COMPREPLY[@]}"')
    env = {**os.environ, NO_DETECT: "1"}
    out = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["advise"]


# ---- --config FILE -----------------------------------------------------------------------------

def _write(tmp_path: Path, text: str, name: str = "run.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


PREDICT_JSON = ["predict", "--format", "json"]


@pytest.mark.unit
def test_config_sets_flags_and_command_line_overrides(tmp_path):
    cfg = _write(tmp_path, 'model = "llama-2-7b-32k"\nbatch = [32, 64]\nseq_len = "8k"\ngpus = 8\n'
                           'kv-budget = 256\nacceptance = 0.8\ngamma = 3\n')
    with_config = json.loads(invoke([*PREDICT_JSON, "--config", cfg]).output)
    typed = json.loads(invoke([*PREDICT_JSON, "--model", "llama-2-7b-32k", "--batch", "32,64", "--seq-len",
                               "8000", "--gpus", "8", "--kv-budget", "256", "--acceptance", "0.8",
                               "--gamma", "3"]).output)
    assert with_config == typed
    assert [r["batch"] for r in with_config] == [32, 64]
    assert {r["model"] for r in with_config} == {"llama-2-7b-32k"}
    # the command line wins over the file, wherever --config stands
    for args in (["--config", cfg, "--batch", "16"], ["--batch", "16", "--config", cfg]):
        rows = json.loads(invoke([*PREDICT_JSON, *args]).output)
        assert [r["batch"] for r in rows] == [16]
        assert {r["gpus"] for r in rows} == {8}


@pytest.mark.unit
def test_config_flags_and_required_options(tmp_path):
    out = tmp_path / "grid.csv"
    cfg = _write(tmp_path, f'out = "{out}"\nbatch = [1, 2]\nseq_len = [1000, 2000]\nideal = true\n')
    result = invoke(["sweep", "--config", cfg])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("\n") == 1 + 4  # header + 2 x 2 points (gamma auto: one row each)
    typed = tmp_path / "typed.csv"
    result = invoke(["sweep", "--out", str(typed), "--batch", "1,2", "--seq-len", "1000,2000", "--ideal"])
    assert result.exit_code == 0, result.output
    assert typed.read_text() == text
    not_ideal = tmp_path / "not-ideal.csv"
    invoke(["sweep", "--out", str(not_ideal), "--batch", "1,2", "--seq-len", "1000,2000"])
    assert not_ideal.read_text() != text  # so the flag from the file did take effect


@pytest.mark.unit
@pytest.mark.parametrize("command, text, expected", [
    ("predict", "bach = 3", r'unknown key "bach" for \'magicdec-model predict\'; closest known: batch;'),
    ("predict", "kv_budgett = 3", r"closest known: kv-budget"),
    ("predict", 'ideal = "yes"', r'ideal = "yes" is a string; allowed: true or false \(--ideal is a flag\)'),
    ("predict", 'accept-len = "x"', r'accept-len = "x" is a string; allowed: a finite number'),
    ("predict", "accept-len = nan", r"accept-len = NaN is a number; allowed: a finite number"),
    ("predict", "acceptance = inf", r"--acceptance inf is not allowed; allowed: finite numbers"),
    ("predict", "verify_tokens = true", r"verify_tokens = true is a boolean; allowed: an integer"),
    ("advise", "top = 2.5", r"top = 2.5 is a number; allowed: an integer \(--top\)"),
    ("predict", "batch = {a = 1}", r"is a table; allowed: a string, a number or an array of them"),
    ("predict", "batch = []", r"batch = \[\] is an array; allowed"),
    ("predict", "batch = [", r"not valid TOML"),
    ("predict", "seq-len = 1\nseq_len = 2", r"set the same flag --seq-len"),
    ("predict", "config = 'x.toml'", r'unknown key "config"'),
    ("predict", "help = true", r'unknown key "help"'),
    ("models show llama-68m", "name = 1", r"'magicdec-model models show' has no flags a config file can set"),
    ("predict", 'batch = "abc"', r"--batch 'abc' is not an integer"),
])
def test_config_bad_files_one_line_exit_2(tmp_path, command, text, expected):
    cfg = _write(tmp_path, text)
    result = invoke([*command.split(), "--config", cfg])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.output


@pytest.mark.unit
def test_config_file_missing_or_not_toml(tmp_path):
    result = invoke(["predict", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = invoke(["predict", "--config", _write(tmp_path, "{}", "run.json")])
    assert result.exit_code == 2 and "is not a .toml file" in result.output


@pytest.mark.unit
def test_every_command_takes_config():
    for command in COMMANDS:
        result = invoke([*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "--config FILE" in result.output, command


# ---- typed help --------------------------------------------------------------------------------

@pytest.mark.unit
def test_help_names_value_types_never_python_types():
    for command in ["", *COMMANDS]:
        text = invoke([*command.split(), "--help"]).output
        assert not re.search(r"<(str|int|float|path|bool)>", text), (command, text)
    predict = invoke(["predict", "--help"]).output
    for flag in ("--batch", "--seq-len", "--kv-budget", "--gpus"):
        assert f"{flag} INTEGER[,INTEGER...]" in predict
    assert "--position-acceptance FLOAT[,FLOAT...]" in predict
    assert "--accept-len FLOAT" in predict and "--verify-tokens INTEGER" in predict
    advise = invoke(["advise", "--help"]).output
    assert "--batch INTEGER " in advise and "--top INTEGER" in advise  # one value there
    report = invoke(["report", "--help"]).output
    assert "--draft NAME[,NAME...]" in report and "--batch INTEGER[,INTEGER...]" in report


# ---- model names and Hugging Face ids -------------------------------------------------------------

@pytest.mark.unit
def test_every_registry_record_has_an_hf_id_that_resolves_to_it():
    for name in builtin_model_names():
        hf_id = get_model(name).hf_id
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", hf_id), (name, hf_id)
        assert registry_name(hf_id) == name
        assert registry_name(hf_id.upper()) == name
        assert registry_name(name.upper()) == name


@pytest.mark.unit
def test_hf_ids_and_any_case_names_on_the_command_line():
    base = invoke(["predict", "--model", "llama-3.1-8b", "--format", "json"]).output
    for spec in ("meta-llama/Llama-3.1-8B", "LLaMA-3.1-8B", "META-LLAMA/llama-3.1-8b"):
        result = invoke(["predict", "--model", spec, "--format", "json"])
        assert result.exit_code == 0, result.output
        assert result.output == base
    # a draft by its Hugging Face id: same rows as by registry name
    by_name = invoke(["predict", "--model", "llama-2-7b-32k", "--draft", "tinyllama-1.1b",
                      "--format", "json"])
    by_id = invoke(["predict", "--model", "togethercomputer/LLaMA-2-7B-32K", "--draft",
                    "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "--format", "json"])
    assert by_name.exit_code == 0 and by_id.output == by_name.output
    shown = invoke(["models", "show", "Qwen/Qwen3-8B"])
    assert shown.exit_code == 0
    assert re.search(r"^name +qwen3-8b$", shown.output, re.M)
    assert re.search(r"^hf_id +Qwen/Qwen3-8B$", shown.output, re.M)


@pytest.mark.unit
def test_unknown_hf_id_is_refused_with_registry_ids():
    with pytest.raises(InputError, match=r"neither a file nor the Hugging Face id of a registry model; "
                                         r"closest known: meta-llama/Llama-3\.1-8B"):
        get_model("meta-llama/Llama-3.1-8B-Typo")
    result = invoke(["predict", "--model", "nobody/NoModel"])
    assert result.exit_code == 2 and result.output.count("\n") == 1


@pytest.mark.unit
def test_an_existing_path_wins_over_a_registry_id(tmp_path, monkeypatch):
    # a downloaded checkpoint folder named like its Hub id is read from disk, not the registry
    folder = tmp_path / "meta-llama" / "Llama-3.1-8B"
    folder.mkdir(parents=True)
    from hf_configs import MISTRAL_7B_V01

    (folder / "config.json").write_text(json.dumps(MISTRAL_7B_V01))
    monkeypatch.chdir(tmp_path)
    m = get_model("meta-llama/Llama-3.1-8B")
    assert m.family == "mistral" and m.vocab_size == MISTRAL_7B_V01["vocab_size"] == 32000


# ---- hardware show --toml ------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("name", builtin_hardware_names())
def test_hardware_show_toml_loads_back_unchanged(tmp_path, name):
    result = invoke(["hardware", "show", name, "--toml"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "mine.toml"
    path.write_text(result.output)
    mine, shipped = load_profile(str(path)), load_profile(name)
    for attr in ("name", "description", "datasheet", "efficiency", "sources", "meta"):
        assert getattr(mine, attr) == getattr(shipped, attr), attr
    # and it is usable as the user's own profile, with the same predictions
    ours = invoke(["predict", "--hardware", str(path), "--format", "json"]).output
    theirs = invoke(["predict", "--hardware", name, "--format", "json"]).output
    assert json.loads(ours) == json.loads(theirs)


@pytest.mark.unit
def test_hardware_show_toml_is_editable(tmp_path):
    text = invoke(["hardware", "show", "h100-sxm", "--toml"]).output
    assert "mem_bw = 3.35e+12" in text  # readable numbers (datasheet 3.35 TB/s), not 3350000000000.0
    edited = text.replace("mem_bw = 3.35e+12", "mem_bw = 4.8e+12")
    edited = edited.replace('name = "h100-sxm"', 'name = "mine"')
    path = tmp_path / "mine.toml"
    path.write_text(edited)
    p = load_profile(str(path))
    assert p.name == "mine" and p.datasheet["mem_bw"] == 4.8e12


@pytest.mark.unit
def test_validate_passes_config_values_to_its_torchrun_ranks(tmp_path, monkeypatch):
    # validate --gpus N re-runs itself under torchrun: the file's values must reach the ranks
    pytest.importorskip("torch")
    import magicdec_model.cli.validate as validate_cli

    calls = []
    monkeypatch.setattr(validate_cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = _write(tmp_path, 'batch = [1, 2]\nseq-len = 256\nkv-budget = 64\nnew_tokens = 8\n')
    result = invoke(["validate", "--config", cfg, "--gpus", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    argv = calls[0][calls[0].index("validate") + 1:]
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    assert flags["--batch"] == "1,2" and flags["--seq-len"] == "256" and flags["--kv-budget"] == "64"
    assert flags["--new-tokens"] == "8" and flags["--gpus"] == "2"
