"""What ``--help`` shows after each flag: the type of its value, in click's words (``INTEGER``,
``FLOAT``, ``TEXT``), with lists as ``INTEGER[,INTEGER...]``, never typer's ``<str>``.

Most of the app's flags are typed ``str`` in Python because they are parsed by the library
(lists, '8k', 'auto'), so their Python type says nothing; this table says what they take.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

INTS = "INTEGER[,INTEGER...]"
FLOATS = "FLOAT[,FLOAT...]"
NAMES = "NAME[,NAME...]"

#: metavar by long flag, where every command takes the same kind of value
BY_FLAG: dict[str, str] = {
    "--batch": INTS,
    "--seq-len": INTS,
    "--kv-budget": INTS,
    "--gpus": INTS,
    "--gamma": INTS + "|auto",
    "--model": "NAME|HF_ID|CONFIG.JSON",
    "--draft": "NAME",
    "--kv-method": "METHOD",
    "--hardware": "NAME|TOML",
    "--engine": "NAME|TOML",
    "--start-profile": "NAME|TOML",
    "--prior": "NAME|TOML",
    "--acceptance": "FLOAT",
    "--acceptance-table": "CSV",
    "--position-acceptance": FLOATS,
    "--weight-dtype": "FORMAT",
    "--kv-dtype": "FORMAT",
    "--format": "table|csv|json",
    "--out": "FILE",
    "--steps": "CSV",
    "--checkpoint": "DIR",
    "--device": "cpu|cuda",
    "--backend": "auto|torch|flashinfer",
    "--step": "target|verify|draft",
    "--fit": NAMES,
    "--name": "TEXT",
    "--description": "TEXT",
}

#: metavar by (command, long flag), where a command differs from :data:`BY_FLAG`
BY_COMMAND: dict[tuple[str, str], str] = {
    ("advise", "--batch"): "INTEGER",
    ("advise", "--seq-len"): "INTEGER",
    ("advise", "--gpus"): "INTEGER",
    ("advise", "--format"): "table|json",
    ("breakdown", "--batch"): "INTEGER",
    ("breakdown", "--seq-len"): "INTEGER",
    ("breakdown", "--gpus"): "INTEGER",
    ("breakdown", "--kv-budget"): "INTEGER",
    ("breakdown", "--gamma"): "INTEGER",
    ("calibrate", "--gpus"): "INTEGER",
    ("calibrate", "--out"): "TOML",
    ("compare-paper", "--gamma"): "auto|paper",
    ("compare-paper", "--format"): "table|json",
    ("report", "--gpus"): "INTEGER",
    ("report", "--draft"): NAMES,
    ("report", "--kv-method"): "METHOD[,METHOD...]",
    ("report", "--out"): "HTML",
    ("sweep", "--out"): "CSV|PARQUET",
    ("validate", "--gamma"): INTS,
    ("validate", "--gpus"): "INTEGER",
    ("validate", "--out"): "DIR",
}

#: metavar by click type name, for flags in neither table
BY_TYPE = {"integer": "INTEGER", "float": "FLOAT", "text": "TEXT", "path": "PATH", "boolean": "BOOLEAN"}


def value_kind(param: Any) -> str:
    """'integer', 'float', 'boolean', 'path' or 'text': what Python type the option's value has
    (typer's type descriptor; click's type name for a plain click option)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is None:
        name = getattr(getattr(param, "type", None), "name", "text")
        return name if name in BY_TYPE else "text"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "float"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    return "text"


def metavar(command: str, param: Any) -> str | None:
    """The metavar of ``param`` (a click option or argument) in ``command``; None for flags."""
    if getattr(param, "param_type_name", "") == "argument":
        return str(param.name).upper()
    if getattr(param, "param_type_name", "") != "option" or getattr(param, "is_flag", False):
        return None
    flag = next((o for o in param.opts if o.startswith("--")), None)
    if (command, flag) in BY_COMMAND:
        return BY_COMMAND[command, flag]
    if flag in BY_FLAG:
        return BY_FLAG[flag]
    return BY_TYPE[value_kind(param)]


def apply_metavars(command: Any, name: str | None = None) -> None:
    """Set the metavar of every option of ``command`` (and of a group's subcommands) that has none."""
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub_name, sub in subcommands.items():
            apply_metavars(sub, sub_name)
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument" and hasattr(param, "display_type_rich"):
            # typer prints an argument's Python type after its name ('NAME <str>'): the name says it
            param.display_type_rich = lambda ctx=None: None
        if getattr(param, "metavar", None) is None:
            mv = metavar(name or command.name or "", param)
            if mv is not None:
                param.metavar = mv
