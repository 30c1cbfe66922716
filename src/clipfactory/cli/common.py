"""Shared pieces of the CLI: option types, settings resolution and output.

The CLI is a thin shell: every command resolves settings, calls one library function and prints the
result, as a Rich rendering or, with ``--json``, as one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..catalog import Catalog
from ..config import DEFAULT_CONFIG_FILE, Settings, load_settings

# Piped or redirected, printed lines are not wrapped at 80 columns (a script or grep reads each whole);
# tables go through print_table.
console = Console(soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

#: Where this command's --catalog and --config came from (set as typer parses them), for messages.
_GIVEN: dict[str, Any] = {}

#: Commands that add to the catalog, and so create it where there is none. Every other command needs an
#: existing catalog: where there is none it says where it looked, and creates nothing.
CREATING_COMMANDS = frozenset({"ingest", "add", "run"})


def _note_source(ctx: typer.Context, param: Any, value: Any) -> Any:
    source = ctx.get_parameter_source(param.name)
    _GIVEN[param.name] = (getattr(source, "name", None), value)
    _GIVEN["command"] = ctx.info_name
    return value


CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        envvar="CLIPFACTORY_CATALOG",
        help="Catalog file (default: clipfactory.duckdb; ingest, add and run create it).",
        callback=_note_source,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="CLIPFACTORY_CONFIG", help="clipfactory.toml to read.", callback=_note_source
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting, e.g. --set quality.filter.min_luma=12.")
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", envvar="CLIPFACTORY_STORE", help="Root folder of the blob store.", callback=_note_source
    ),
]


def settings(config: Path | None = None, sets: list[str] | None = None, **flags: Any) -> Settings:
    """Resolve settings with flags (and --set) > environment > TOML > defaults."""
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}
    for name in ("catalog", "store"):
        # --catalog/--store read from CLIPFACTORY_CATALOG/STORE are the environment's, weaker than --set
        if _GIVEN.get(name, (None, None))[0] == "ENVIRONMENT" and overrides.get(name) is not None:
            overrides.pop(name)
    return load_settings(config, overrides=overrides, sets=sets)


def open_catalog(s: Settings, *, create: bool | None = None) -> Catalog:
    """The catalog of ``s``. Reading a missing catalog raises an error naming the path and how it was
    chosen, unless ``create`` (by default: for the :data:`CREATING_COMMANDS`); writing creates it."""
    if create is None:
        create = _GIVEN.get("command") in CREATING_COMMANDS
    return Catalog(s.catalog, create=create, origin=catalog_origin(s))


def catalog_of(config: Path | None, catalog: Path | None) -> Catalog:
    """The catalog of a command whose only settings are --config and --catalog (see :func:`open_catalog`)."""
    return open_catalog(settings(config, catalog=catalog))


def existing_catalog(s: Settings) -> Catalog:
    """The catalog of ``s`` for a command that works on what it holds (fetch, policy check, takedown...):
    where there is none, the error of :func:`open_catalog` names the path, and nothing is created."""
    cat = open_catalog(s, create=False)
    with cat.read():
        pass
    return cat


def catalog_origin(s: Settings) -> str:
    """How the catalog path of this command was chosen: ``from --catalog``, ``from CLIPFACTORY_CATALOG``,
    ``from `catalog` in FILE`` or the default."""
    source, value = _GIVEN.get("catalog", (None, None))
    if value is not None and source == "COMMANDLINE":
        return "from --catalog"
    if (value is not None and source == "ENVIRONMENT") or os.environ.get("CLIPFACTORY_CATALOG"):
        return "from CLIPFACTORY_CATALOG"
    if "catalog" in s.model_fields_set:
        config = _GIVEN.get("config", (None, None))[1] or DEFAULT_CONFIG_FILE
        return f"from `catalog` in {config}"
    return f"the default: {s.catalog} in the current folder"


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (for scripts) or through ``render`` (for people)."""
    if as_json or render is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
    else:
        render(data)


def table(
    rows: list[dict[str, Any]],
    title: str | None = None,
    columns: list[str] | None = None,
    *,
    empty: str | None = None,
) -> None:
    """Print ``rows`` as a table; no rows print the sentence ``empty`` (by default: ``TITLE: none``)."""
    if not rows:
        console.print(empty or (f"{title}: none" if title else "none"), highlight=False, markup=False, soft_wrap=True)
        return
    from rich.table import Table

    t = Table(title=title)
    cols = columns or (list(rows[0].keys()) if rows else [])
    cells = [["" if r.get(c) is None else str(r.get(c)) for c in cols] for r in rows]
    for c in cols:
        # fold, never "…": ids in a table are what the next command (explain, runs show) needs whole
        t.add_column(str(c), overflow="fold")
    for row in cells:
        t.add_row(*row)
    print_table(t)


def print_table(t) -> None:
    """Print a Rich table: fitted to a terminal; piped or redirected, as wide as its values, so that a
    script (or ``grep``) reads every cell whole on one line."""
    if console.is_terminal:
        console.print(t)
        return
    from rich.measure import Measurement

    wide = Console(file=console.file, width=100_000, color_system=None, highlight=False)
    natural = Measurement.get(wide, wide.options, t).maximum
    Console(file=console.file, width=max(natural, 20), color_system=None, highlight=False).print(t)
