"""The `magicdec-model` command: a thin typer app over the library (no model logic here)."""

from __future__ import annotations

import typer

from .acceptance import acceptance_app
from .advise import ADVISE_EPILOG, advise_cmd
from .breakdown import breakdown_cmd
from .calibrate import CALIBRATE_EPILOG, calibrate_cmd
from .compare import compare_cmd
from .exits import Group
from .predict import PREDICT_EPILOG, predict_cmd, sweep_cmd
from .registry import engines_app, hardware_app, models_app
from .report import REPORT_EPILOG, report_cmd
from .validate import VALIDATE_EPILOG, validate_cmd

app = typer.Typer(
    name="magicdec-model",
    help="Performance model and validator for speculative decoding with sparse-KV drafts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=Group,
)
app.command("predict", epilog=PREDICT_EPILOG)(predict_cmd)
app.command("sweep")(sweep_cmd)
app.command("breakdown")(breakdown_cmd)
app.command("report", epilog=REPORT_EPILOG)(report_cmd)
app.command("advise", epilog=ADVISE_EPILOG)(advise_cmd)
app.command("compare-paper")(compare_cmd)
app.command("calibrate", epilog=CALIBRATE_EPILOG)(calibrate_cmd)
app.command("validate", epilog=VALIDATE_EPILOG)(validate_cmd)
app.add_typer(models_app, name="models")
app.add_typer(hardware_app, name="hardware")
app.add_typer(engines_app, name="engines")
app.add_typer(acceptance_app, name="acceptance")


def run() -> None:
    """Console-script entry point (bad input: one line on stderr, exit 2; see :mod:`.exits`)."""
    app()


if __name__ == "__main__":
    run()
