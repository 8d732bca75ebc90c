"""``careplane validate`` and ``careplane crd``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from careplane import policy
from careplane.validation import validate_document

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def load_documents(path: Path) -> list[Any]:
    """All YAML documents of ``path`` (empty documents dropped). Raises OSError / yaml.YAMLError."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def validate(
    files: list[Path] = typer.Argument(..., help="YAML files, one or many ScalingPolicy documents each."),
) -> None:
    """Validate ScalingPolicy documents against the CRD schema (with its CEL rules) and the policy model.

    Exit 0 when all are valid, 1 when any is invalid, 2 when a file cannot be read or parsed.
    """
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    invalid = unreadable = False
    for path in files:
        try:
            documents = load_documents(path)
        except OSError as exc:
            err.print(f"[red]{path}: cannot read: {exc.strerror or exc}[/red]")
            unreadable = True
            continue
        except yaml.YAMLError as exc:
            err.print(f"[red]{path}: not valid YAML: {exc}[/red]", markup=False)
            unreadable = True
            continue
        for index, document in enumerate(documents, start=1):
            where = f"{path}: document {index}"
            kind = document.get("kind") if isinstance(document, dict) else None
            if kind is not None and kind != policy.KIND:
                out.print(f"{where}: skipped (kind {kind}, not {policy.KIND})", markup=False)
                continue
            name = (document.get("metadata") or {}).get("name", "?") if isinstance(document, dict) else "?"
            problems = validate_document(document)
            if not problems:
                out.print(f"[green]ok[/green] {where} ({policy.KIND} {name})")
                continue
            invalid = True
            for problem in problems:
                err.print(f"{where} ({policy.KIND} {name}): {problem}", markup=False, highlight=False)
    if unreadable:
        raise typer.Exit(EXIT_UNREADABLE)
    if invalid:
        raise typer.Exit(EXIT_INVALID)


def crd_command(
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Print the ScalingPolicy CustomResourceDefinition generated from the policy model."""
    from careplane.crd import render

    text = render()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("crd")(crd_command)
