"""The root typer application and the modules that add commands to it."""

from __future__ import annotations

import importlib

import typer

from careplane import __version__

app = typer.Typer(
    name="careplane",
    help="careplane: forecast-driven autoscaling and resilience for healthcare workloads on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in help order. Each defines `register(app)`; a module whose
# optional dependencies are missing is skipped rather than breaking the CLI.
COMMAND_MODULES = (
    "careplane.cli.validate",
    "careplane.cli.forecast",
    "careplane.cli.anomaly",
    "careplane.cli.backtest",
    "careplane.cli.operator",
    "careplane.cli.demo",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"careplane {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """careplane: forecast-driven autoscaling and resilience for healthcare workloads."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name == _name:  # the command module itself is not written yet
            continue
        raise
    _module.register(app)


def main() -> None:
    app()
