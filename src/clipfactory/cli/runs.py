"""``clipfactory runs``: runs and their outcome rows."""

from __future__ import annotations

from ..catalog import outcomes as reports
from .app import runs_app
from .common import CatalogOpt, ConfigOpt, JsonOpt, emit, open_catalog, settings, table


@runs_app.command("list")
def runs_list(catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List runs, newest first, with counts derived from their outcome rows."""
    cat = open_catalog(settings(config, catalog=catalog))
    emit(reports.list_runs(cat), json_, lambda rows: table(rows, "runs", empty=f"no runs yet in {cat.where}"))


@runs_app.command("show")
def runs_show(
    run_id: str, catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False
) -> None:
    """Counts by stage, status and reason for one run, and its failures."""
    cat = open_catalog(settings(config, catalog=catalog))
    data = reports.run_detail(cat, run_id)

    def render(d):
        table(d["counts"], f"run {run_id}")
        if d["failures"]:
            table(d["failures"], "failures")

    emit(data, json_, render)
