"""How a command ends: exit 0, or one line on stderr and exit code 2 for bad input; no traceback.

:class:`Group` is the typer group class of the ``magicdec-model`` app; it runs click through
:func:`run_command` with ``standalone_mode=False``, which turns what can go wrong into one line:

* click's own parse errors (``--top abc``, a missing ``--out``, an unknown flag or command):
  the flag, the value and what is allowed, exit 2;
* :class:`~magicdec_model.perfmodel.errors.InputError`: its message, exit 2;
* OSError (a file that cannot be read or written, a full disk) and MemoryError: exit 2;
* Ctrl-C: exit 130;
* anything else is a bug: one line saying so, exit 1 (``MAGICDEC_MODEL_TRACEBACK=1`` shows the
  traceback).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import LIMITS

# click's exception classes, wherever this typer keeps them (recent typer vendors click)
_exc = sys.modules[typer.BadParameter.__module__]
ClickException = _exc.ClickException
BadParameter = typer.BadParameter
MissingParameter = _exc.MissingParameter
NoSuchOption = _exc.NoSuchOption
BadOptionUsage = _exc.BadOptionUsage
NoArgsIsHelpError = getattr(_exc, "NoArgsIsHelpError", ())

TRACEBACK_ENV = "MAGICDEC_MODEL_TRACEBACK"


def _flag(param: Any) -> str:
    if param is None:
        return "value"
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    return opts[0] if opts else str(getattr(param, "name", "value")).upper()


def _kind(param: Any, exc: Exception | None = None) -> str:
    """'an integer', 'a number', ... : what the option's type accepts ('' when unknown)."""
    name = getattr(getattr(param, "type", None), "name", "")  # click's parameter types
    errors = getattr(getattr(exc, "__cause__", None), "errors", None)  # typer's pydantic coercion
    if callable(errors):
        with contextlib.suppress(Exception):
            name = str(errors()[0].get("type", name))
    for key, kind in (("int", "an integer"), ("float", "a number"), ("bool", "true or false")):
        if name.startswith(key):
            return kind
    return ""


def _allowed(param: Any, exc: Exception | None = None) -> str:
    flag = _flag(param)
    if flag == "--gamma":
        from magicdec_model.perfmodel.speculative import GAMMA_MAX

        return f"integers 1..{GAMMA_MAX}"
    if flag in LIMITS:
        lo, hi = LIMITS[flag]
        return f"integers {lo:,}..{hi:,}"
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        return "one of: " + ", ".join(map(str, choices))
    return _kind(param, exc) or "see --help"


def _value(exc: Exception, args: list[str] | None) -> str | None:
    """The value the user gave to the failing option: from the parser's error, else from argv."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            if "input" in first:
                return str(first["input"])
        except (IndexError, KeyError, TypeError):  # pragma: no cover - another parser's errors
            pass
    opts = list(getattr(getattr(exc, "param", None), "opts", []))
    for i, a in enumerate(args or []):
        if a in opts and i + 1 < len(args or []):
            return args[i + 1]  # type: ignore[index]
        for o in opts:
            if a.startswith(o + "="):
                return a[len(o) + 1:]
    return None


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def usage_line(exc: Exception, args: list[str] | None = None) -> str:
    """One line for a click usage error, naming the flag, the value and what is allowed."""
    msg = " ".join(str(getattr(exc, "message", exc) or "").split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    if isinstance(exc, MissingParameter):
        return f"{_flag(exc.param)} is required{where}"
    if isinstance(exc, BadParameter):
        param = exc.param
        value = _value(exc, args)
        shown = "" if value is None else f" {_short(repr(value))}"
        kind = _kind(param, exc)
        what = f"is not {kind}" if kind else f"is not allowed ({_short(msg, 100)})"
        return f"{_flag(param)}{shown} {what}; allowed: {_allowed(param, exc)}"
    if isinstance(exc, NoSuchOption):
        hint = f"; did you mean {', '.join(exc.possibilities)}?" if exc.possibilities else ""
        return f"no such option {_short(exc.option_name)}{hint}{where}"
    if isinstance(exc, BadOptionUsage) and "requires an argument" in msg:
        return f"{exc.option_name} needs a value{where}"
    return f"{_short(msg, 160)}{where}"


def one_line(text: str) -> str:
    """``text`` on one line: control characters (a newline or carriage return inside a user's
    value) shown as escapes (``\\r``), never printed raw; a value of more than
    :data:`MAX_WORD` characters shown by its ends and its length, the line cut to :data:`MAX_LINE`."""
    line = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text).strip())
    line = _LONG_WORD.sub(lambda m: f"{m.group()[:60]}...({len(m.group()):,} characters)...{m.group()[-20:]}",
                          line)
    if len(line) > MAX_LINE:
        line = f"{line[:MAX_LINE - 200]} ...({len(line):,} characters)... {line[-150:]}"
    return line


#: longest run of non-blank characters (a value, a path) an error line shows whole
MAX_WORD = 240
#: longest error line (longer: its start and end)
MAX_LINE = 800
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LONG_WORD = re.compile(rf"\S{{{MAX_WORD + 1},}}")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def name_flag(line: str, given: list[tuple[str, str]]) -> str:
    """``line``, starting with the flag whose value it is about when it names no flag itself.

    ``given``: (flag, value) pairs the user set; the longest value found in the line decides.
    """
    if _FLAG.search(line):
        return line
    found = [(len(v), flag) for flag, v in given if v.strip() and v in line]
    return f"{max(found)[1]}: {line}" if found else line


def argv_pairs(args: list[str] | None) -> list[tuple[str, str]]:
    """(flag, value) pairs of an argument list ('--flag value' and '--flag=value')."""
    args = list(args or [])
    out = []
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        if "=" in a:
            flag, _, value = a.partition("=")
            out.append((flag, value))
        elif i + 1 < len(args):
            out.append((a, args[i + 1]))
    return out


def print_error(line: str) -> None:
    """Print ``error: LINE`` on stderr as one line (see :func:`one_line`)."""
    with contextlib.suppress(OSError):
        print(f"error: {one_line(line)}", file=sys.stderr)


#: numpy's floating-point warnings: every number a command prints is checked to be finite
#: (:mod:`magicdec_model.perfmodel.physical`), so an overflow on the way is refused there, not
#: shown as a warning
_NUMPY_FP_WARNINGS = r"(overflow|invalid value|divide by zero|underflow) encountered"


def run_command(main: Callable[..., Any], standalone_mode: bool = True, **kwargs: Any) -> Any:
    """Call a click ``main`` non-standalone and end as the module docstring says."""
    argv = kwargs.get("args")
    argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NUMPY_FP_WARNINGS, category=RuntimeWarning)
            rv = main(standalone_mode=False, **kwargs)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except NoArgsIsHelpError as exc:
        with contextlib.suppress(OSError):
            print(exc.ctx.get_help())
        code = 0
    except ClickException as exc:
        print_error(usage_line(exc, argv))
        code = 2
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            print("interrupted", file=sys.stderr)
        code = 130
    except InputError as exc:
        print_error(name_flag(str(exc), argv_pairs(argv)))
        code = 2
    except MemoryError:
        print_error("out of memory; allowed: inputs whose grid fits in memory (fewer values per flag, "
                     "or sweep --out FILE, which works chunk by chunk)")
        code = 2
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # stdout closed early (e.g. piped into head)
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
            code = 1
        else:
            name = f"{exc.filename}: " if exc.filename else ""
            print_error(name_flag(f"{name}{exc.strerror or type(exc).__name__}", argv_pairs(argv)))
            code = 2
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print_error(f"internal error ({type(exc).__name__}: {_short(' '.join(str(exc).split()), 120)}); "
                     f"please report it; {TRACEBACK_ENV}=1 shows the traceback")
        code = 1
    if not standalone_mode:
        return code
    sys.exit(code)


class Group(TyperGroup):
    """The app's click group: every way a command ends goes through :func:`run_command`."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        return run_command(super().main, standalone_mode, args=args, prog_name=prog_name,
                           complete_var=complete_var, **extra)
