"""``clipfactory fetch``, ``clipfactory sources revalidate`` and ``clipfactory sources health``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .app import app, sources_app
from .common import CatalogOpt, ConfigOpt, JsonOpt, SetOpt, StoreOpt, console, emit, settings, table


@app.command("fetch")
def fetch_cmd(
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only sources of this dataset.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Fetch at most N sources.")] = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Download web sources that have a URL and no blob, with consent checks (options: acquire.http)."""
    from ..acquire.driver import fetch_sources
    from .common import existing_catalog

    s = settings(config, sets, catalog=catalog, store=store)
    existing_catalog(s)  # fetch reads its sources from it: without one it says so, and makes none
    emit(fetch_sources(s, dataset=dataset, limit=limit), json_, _render_fetch)


def _render_fetch(r: dict[str, Any]) -> None:
    console.print(
        f"fetched [bold]{r['kept']}[/] of {r['selected']} sources "
        f"({r['dropped']} dropped, {r['failed']} failed, {r['skipped']} already done) in run {r['run_id']}"
    )
    if r["reasons"]:
        table([{"reason": k, "sources": v} for k, v in r["reasons"].items()], title="Not fetched")
    for p in r.get("paused_origins") or []:
        console.print(
            f"{p['origin']} asked us to wait ({p['why']}): not asked again before {p['not_before']}",
            highlight=False,
        )
    docs = r["host_documents_fetched"]
    console.print(
        f"{r['requests']} requests, {r['retries']} retries; robots.txt fetched {docs['robots.txt']}x, "
        f"tdmrep.json {docs['tdmrep.json']}x"
    )
    sp = r.get("spawning_queries") or {}
    if sp.get("requests"):
        console.print(
            f"Spawning registry: {sp['requests']} queries, {sp['retries']} retries, {sp['errors']} without answer"
        )


@sources_app.command("revalidate")
def revalidate_cmd(
    build: Annotated[
        str | None, typer.Option("--build", help="Only sources of this build (id or name).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Check at most N sources.")] = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Re-check availability and consent of fetched sources; queue gone and opted-out ones for takedown."""
    from ..acquire.revalidate import revalidate_sources
    from .common import existing_catalog

    s = settings(config, sets, catalog=catalog, store=store)
    existing_catalog(s)  # revalidate reads its sources from it: without one it says so, and makes none
    emit(revalidate_sources(s, build=build, limit=limit), json_, _render_revalidate)


def _render_revalidate(r: dict[str, Any]) -> None:
    console.print(f"revalidated [bold]{r['checked']}[/] sources (run {r['run_id']})")
    if r["counts"]:
        table([{"status": k, "sources": v} for k, v in r["counts"].items()], title="Link status")
    if r["content_changed"]:
        console.print(f"{r['content_changed']} source(s) changed on the server since we fetched them")
    if r["queued_for_takedown"]:
        console.print(f"[bold]{len(r['queued_for_takedown'])}[/] queued for takedown:")
        for sid in r["queued_for_takedown"]:
            console.print(f"  {sid}", highlight=False)


@sources_app.command("health")
def health_cmd(
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Link health per dataset: alive, gone, opted out, blocked, unchecked."""
    from ..acquire.health import link_health
    from .common import open_catalog

    s = settings(config, None, catalog=catalog)
    emit(link_health(open_catalog(s)), json_, _render_health)


def _render_health(r: dict[str, Any]) -> None:
    cols = ["dataset", "sources", "alive", "gone", "opted_out", "blocked", "invalid", "error", "unchecked"]
    table(
        r["datasets"] + [{**r["total"], "dataset": "total"}],
        title="Link health",
        columns=cols + ["takedown_pending"],
    )
