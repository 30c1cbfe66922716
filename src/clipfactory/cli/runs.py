"""``clipfactory runs``: runs and their outcome rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..catalog import outcomes as reports
from .app import runs_app
from .common import CatalogOpt, ConfigOpt, JsonOpt, catalog_of, console, emit, print_table, table


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def render_runs(rows: list[dict[str, Any]], empty: str = "no runs yet") -> None:
    """The runs as a table whose run ids are never shortened or wrapped: they are what `runs show` takes."""
    if not rows:
        console.print(empty, highlight=False, markup=False, soft_wrap=True)
        return
    from rich import box
    from rich.table import Table

    t = Table(title="runs", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    t.add_column("run_id", no_wrap=True, min_width=max(len(str(r["run_id"])) for r in rows))
    t.add_column("command", overflow="fold")
    t.add_column("status", overflow="fold")
    t.add_column("started", min_width=10)  # a narrow terminal puts the time under the date
    # What the run delivered: the items its last stage kept (each item once, not once per stage it passed);
    # dropped and failed: items stopped at any stage; resumed: items it received that earlier runs had
    # finished, blank where not recorded.
    t.add_column("last stage", overflow="fold")
    for c in ("kept by\nlast stage", "dropped", "failed", "resumed"):
        t.add_column(c, justify="right", no_wrap=True)
    for r in rows:
        t.add_row(
            str(r["run_id"]), str(r.get("command") or ""), str(r.get("status") or ""), _when(r.get("started_at")),
            str(r.get("last_stage") or ""),
            *(str(r.get(c) or 0) for c in ("last_stage_kept", "dropped", "failed")),
            "" if r.get("resumed") is None else str(r["resumed"]),
        )
    print_table(t)


@runs_app.command("list")
def runs_list(catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """List runs, newest first: the stage each reached last and the items it kept there (what the run
    delivered), the items dropped or failed at any stage, and those earlier runs had finished."""
    cat = catalog_of(config, catalog)
    emit(reports.list_runs(cat), json_, lambda rows: render_runs(rows, f"no runs yet in {cat.where}"))


@runs_app.command("show")
def runs_show(
    run_id: str, catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False
) -> None:
    """The run's status (running, finished, interrupted or failed), command and times, then counts by stage (in
    the order the run ran them), status and reason, and its failures."""
    cat = catalog_of(config, catalog)
    data = reports.run_detail(cat, run_id)

    def render(d):
        when = f"started {_when(d.get('started_at'))}"
        if d.get("finished_at"):
            when += f", ended {_when(d['finished_at'])}"
        what = ", ".join(x for x in (f"clipfactory {d.get('command')}" if d.get("command") else "",
                                     f"executor {d['executor']}" if d.get("executor") else "", when) if x)
        console.print(f"run {run_id}: {d['status']} ({what})", highlight=False, markup=False, soft_wrap=True)
        table(d["counts"], f"run {run_id}")
        if d["failures"]:
            table(d["failures"], "failures")

    emit(data, json_, render)
