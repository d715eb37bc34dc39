"""``--config FILE``: a TOML file of flag values for any command, so a long run can be repeated.

Its keys are the command's long flag names, with dashes or underscores (``seq-len`` or
``seq_len``); its values are TOML strings, numbers, booleans (for flags such as ``--ideal``) or
arrays (joined with commas: ``batch = [32, 64]`` is ``--batch 32,64``).  The file becomes the
command's click ``default_map``, so a flag given on the command line overrides it and every
value goes through the same parsing and checks as a typed one.  An unknown key (with the closest
flag names), a value of the wrong type, or a file that is not TOML is refused with one line,
exit code 2, before anything runs.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Annotated, Any

import typer

from magicdec_model.perfmodel.errors import InputError, closest
from magicdec_model.perfmodel.inputs import read_toml

from .metavars import value_kind

CONFIG_FLAG = "--config"

#: flags a config file cannot set (they are not settings of a run)
_NOT_SETTABLE = ("--help", CONFIG_FLAG, "--install-completion", "--show-completion", "--version")


def _key(name: str) -> str:
    """A flag or key in one spelling: no leading dashes, underscores as dashes, lower case."""
    return name.lstrip("-").replace("_", "-").lower()


def settable_params(command: Any) -> dict[str, Any]:
    """The command's options a config file may set, by long flag name without dashes."""
    out: dict[str, Any] = {}
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        for opt in param.opts:
            if opt.startswith("--") and opt not in _NOT_SETTABLE:
                out[_key(opt)] = param
    return out


def _short(value: Any, n: int = 60) -> str:
    """``value`` as TOML would spell it (JSON is close enough for the scalars and arrays shown)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= n else text[: n - 3] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def coerce(key: str, value: Any, param: Any, where: str) -> Any:
    """``value`` (from TOML) as the command line would give it to ``param``; InputError if its
    TOML type cannot be that flag's value."""
    flag = f"--{_key(key)}"
    kind = value_kind(param)
    bad = f"{where}: {key} = {_short(value)} is {_type_name(value)}; allowed: "
    if getattr(param, "is_flag", False):
        if isinstance(value, bool):
            return value
        raise InputError(bad + f"true or false ({flag} is a flag)")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InputError(bad + f"an integer ({flag})")
    if kind == "float":
        if _scalar(value) and not isinstance(value, str) and math.isfinite(value):
            return float(value)
        raise InputError(bad + f"a finite number ({flag})")
    if _scalar(value):
        return str(value)
    if isinstance(value, list) and value and all(_scalar(v) for v in value):
        return ",".join(str(v) for v in value)
    raise InputError(bad + f"a string, a number or an array of them ({flag})")


def defaults_from(doc: dict[str, Any], command: Any, where: str, path: str = "") -> dict[str, Any]:
    """The click ``default_map`` (parameter name -> value) that the TOML document ``doc`` sets for
    ``command`` (``path``: its command path, for messages)."""
    path = path or command.name
    params = settable_params(command)
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in doc.items():
        norm = _key(key)
        param = params.get(norm)
        if param is None or key.startswith("-"):
            if not params:
                raise InputError(f"{where}: unknown key {_short(key)}; '{path}' has no flags a config "
                                 f"file can set")
            raise InputError(f"{where}: unknown key {_short(key)} for '{path}'; closest known: "
                             f"{closest(norm, params)}; allowed: the long flag names of '{path} --help', "
                             f"with dashes or underscores")
        if norm in seen:
            raise InputError(f"{where}: {_short(key)} and {_short(seen[norm])} set the same flag --{norm}; "
                             f"allowed: one of them")
        seen[norm] = key
        out[param.name] = coerce(key, value, param, where)
    return out


def _apply(ctx: typer.Context, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    where = f"{CONFIG_FLAG} {value}"
    if not str(value).lower().endswith(".toml"):
        raise InputError(f"{CONFIG_FLAG} {_short(value)} is not a .toml file; allowed: a TOML file of "
                         f"flag values (keys: long flag names)")
    doc = read_toml(value, CONFIG_FLAG)
    ctx.default_map = {**(ctx.default_map or {}), **defaults_from(doc, ctx.command, where, ctx.command_path)}


def _carrier(
    config: Annotated[
        str | None,
        typer.Option(
            CONFIG_FLAG, metavar="FILE", is_eager=True, expose_value=False, callback=_apply,
            help="TOML file of flag values, keyed by long flag name (seq-len = 32000, batch = [32, 64]); "
                 "flags given on the command line override it.",
        ),
    ] = None,
) -> None:
    """Holds the ``--config`` option so that typer builds it (see :func:`config_option`)."""


@cache
def config_option() -> Any:
    """The ``--config`` click option (built once by typer, shared by every command)."""
    carrier = typer.Typer(add_completion=False)
    carrier.command()(_carrier)
    return typer.main.get_command(carrier).params[0]


def add_config_option(command: Any) -> None:
    """Give ``command`` (and every subcommand of a group) the ``--config`` option."""
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub in subcommands.values():
            add_config_option(sub)
        return
    if not any(CONFIG_FLAG in getattr(p, "opts", ()) for p in command.params):
        command.params.append(config_option())
