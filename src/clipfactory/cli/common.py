"""Shared pieces of the CLI: option types, settings resolution and output.

The CLI is a thin shell: every command resolves settings, calls one library function and prints the
result, as a Rich rendering or, with ``--json``, as one JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..catalog import Catalog
from ..config import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

CatalogOpt = Annotated[
    Path | None,
    typer.Option("--catalog", envvar="CLIPFACTORY_CATALOG", help="Catalog file (created on first use)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="CLIPFACTORY_CONFIG", help="clipfactory.toml to read."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting, e.g. --set quality.filter.min_luma=12.")
]


def settings(config: Path | None = None, sets: list[str] | None = None, **flags: Any) -> Settings:
    """Resolve settings with flags > environment > TOML > defaults."""
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}
    return load_settings(config, overrides=overrides, sets=sets)


def open_catalog(s: Settings) -> Catalog:
    return Catalog(s.catalog)


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (for scripts) or through ``render`` (for people)."""
    if as_json or render is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
    else:
        render(data)


def table(rows: list[dict[str, Any]], title: str | None = None, columns: list[str] | None = None) -> None:
    from rich.table import Table

    t = Table(title=title)
    cols = columns or (list(rows[0].keys()) if rows else [])
    for c in cols:
        t.add_column(str(c))
    for r in rows:
        t.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in cols])
    console.print(t)
