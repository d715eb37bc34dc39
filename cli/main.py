"""The `magicdec-model` command: a thin typer app over the library (no model logic here)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .acceptance import acceptance_app
from .acceptance_fit import FIT_EPILOG, fit_cmd
from .advise import ADVISE_EPILOG, advise_cmd
from .breakdown import breakdown_cmd
from .calibrate import CALIBRATE_EPILOG, calibrate_cmd
from .compare import compare_cmd
from .config_file import add_config_option
from .exits import Group
from .metavars import apply_metavars
from .predict import PREDICT_EPILOG, predict_cmd, sweep_cmd
from .registry import engines_app, hardware_app, models_app
from .report import REPORT_EPILOG, report_cmd
from .simulate import SIMULATE_EPILOG, simulate_cmd
from .validate import VALIDATE_EPILOG, validate_cmd


class App(Group):
    """The app's group: every command gets ``--config`` (:mod:`.config_file`) and typed metavars
    in its help (:mod:`.metavars`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, command in self.commands.items():
            add_config_option(command)
            apply_metavars(command, name)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"magicdec-model {version('magicdec-model')}")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
            typer.echo("magicdec-model (not installed: version unknown)")
        raise typer.Exit(0)


app = typer.Typer(
    name="magicdec-model",
    help="Performance model and validator for speculative decoding with sparse-KV drafts.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=App,
)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Performance model and validator for speculative decoding with sparse-KV drafts."""

app.command("predict", epilog=PREDICT_EPILOG)(predict_cmd)
app.command("sweep")(sweep_cmd)
app.command("breakdown")(breakdown_cmd)
app.command("report", epilog=REPORT_EPILOG)(report_cmd)
app.command("advise", epilog=ADVISE_EPILOG)(advise_cmd)
app.command("compare-paper")(compare_cmd)
app.command("calibrate", epilog=CALIBRATE_EPILOG)(calibrate_cmd)
app.command("validate", epilog=VALIDATE_EPILOG)(validate_cmd)
# the acceptance group: `measure` (cli/acceptance.py) and `fit` (cli/acceptance_fit.py)
acceptance_app.command("fit", epilog=FIT_EPILOG)(fit_cmd)
app.command("simulate", epilog=SIMULATE_EPILOG)(simulate_cmd)
app.add_typer(models_app, name="models")
app.add_typer(hardware_app, name="hardware")
app.add_typer(engines_app, name="engines")
app.add_typer(acceptance_app, name="acceptance")


def run() -> None:
    """Console-script entry point (bad input: one line on stderr, exit 2; see :mod:`.exits`)."""
    app()


if __name__ == "__main__":
    run()
