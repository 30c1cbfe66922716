"""The ``clipfactory`` command. Command groups live in their own modules and register themselves here."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from typer.core import TyperGroup, _click  # _click: the click typer runs on (its exceptions)

from ..errors import ClipfactoryError
from .common import _GIVEN, err_console

_DEBUG = {"on": bool(os.environ.get("CLIPFACTORY_DEBUG"))}


def _print_error(text: str) -> None:
    """One line ``error: ...`` on stderr, the same for every error clipfactory reports."""
    from rich.markup import escape

    # escape: items such as "[media.analyse]" are text, not Rich markup
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _usage_error(exc: _click.exceptions.ClickException) -> None:
    """A command-line mistake (an unknown option, a bad value, a missing argument) as one ``error:`` line
    like every other error, naming the command and how to see its usage; its exit code is kept (2).
    A group called without a command still shows its help."""
    if isinstance(exc, _click.exceptions.NoArgsIsHelpError):
        raise exc
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "clipfactory"
    _print_error(f"{command}: {exc.format_message()} (fix: `{command} --help` shows its usage)")
    raise typer.Exit(exc.exit_code) from None


class _Group(TyperGroup):
    """Turns a :class:`ClipfactoryError` into one red line ``error: ...`` and exit code 1 (``--debug`` shows
    the traceback), and a command-line mistake into the same kind of line with exit code 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _click.exceptions.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()
        except ClipfactoryError as exc:
            if _DEBUG["on"]:
                raise
            _print_error(str(exc))
            raise typer.Exit(1) from None
        except _click.exceptions.UsageError as exc:
            _usage_error(exc)
        except Exception as exc:
            if _DEBUG["on"] or not _is_interrupt(exc):
                raise
            _interrupted()
        finally:
            # a command leaves the catalog file closed when it returns, also when called in-process
            db = sys.modules.get("clipfactory.catalog.db")
            if db is not None:
                db.close_idle_connections()


def _is_interrupt(exc: Exception) -> bool:
    """Ctrl-C inside a DuckDB query surfaces as DuckDB's error (``InterruptException``, or a
    ``RuntimeError`` "Query interrupted"), not as ``KeyboardInterrupt``."""
    db = sys.modules.get("duckdb")
    if db is not None and isinstance(exc, getattr(db, "InterruptException", ())):
        return True
    return isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower()


def _interrupted() -> None:
    """Ctrl-C: one line and exit status 130. Work is committed in steps (a catalog transaction, a shard
    renamed into place), so what was interrupted left nothing half-written and the same command resumes."""
    err_console.print("interrupted: run the command again to resume (finished work is kept)", highlight=False)
    raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    help="clipfactory: video dataset manifests and owned media to training-ready clips, compliant by construction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="Datasets in the catalog: overlap, listing.", no_args_is_help=True)
sources_app = typer.Typer(help="Source videos: listing, missing media, revalidation.", no_args_is_help=True)
policy_app = typer.Typer(help="Licence policy: check a purpose, list profiles.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs and their outcome rows.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(sources_app, name="sources")
app.add_typer(policy_app, name="policy")
app.add_typer(runs_app, name="runs")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress lines."),
) -> None:
    _DEBUG["on"] = debug or bool(os.environ.get("CLIPFACTORY_DEBUG"))
    _GIVEN.clear()  # what the options of the previous command (in this process) said
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


#: Command modules; each defines its commands on the apps above when imported.
COMMAND_MODULES = ["sources", "policy", "media", "build", "fetch", "fingerprint", "runs", "semantic", "report", "web"]

for _mod in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_mod}")


def main() -> None:
    app()
