"""``clipfactory semantic index``, ``clipfactory search``, ``clipfactory categories`` and ``clipfactory plan``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .app import app
from .common import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    SetOpt,
    console,
    emit,
    err_console,
    existing_catalog,
    settings,
    table,
)
from .policy import PermissionsOpt, PolicyFileOpt, RegistryOpt, settings_with_policy

semantic_app = typer.Typer(help="Embeddings: compute what is missing.", no_args_is_help=True)
app.add_typer(semantic_app, name="semantic")

PurposeOpt = Annotated[
    str | None, typer.Option("--purpose", "-p", help="Purpose profile whose licence decisions apply.")
]
TaxonomyOpt = Annotated[
    Path | None, typer.Option("--taxonomy", envvar="CLIPFACTORY_TAXONOMY", help="Taxonomy TOML (default: the packaged one).")
]


@semantic_app.command("index")
def index_cmd(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only the sources of this dataset (repeatable).")] = None,
    model_dir: Annotated[str | None, typer.Option("--model-dir", help="Folder of another BERT sentence model.")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compute the text vectors the catalog is missing (one per source, one per captioned clip) and refresh
    the vector index beside the catalog."""
    from ..semantic.indexing import index_catalog

    s = settings(config, sets, catalog=catalog)
    existing_catalog(s)
    r = index_catalog(s, datasets=dataset, model_dir=model_dir)

    def render(r: dict[str, Any]) -> None:
        console.print(
            f"{r['sources']} sources: {r['vectors']} vectors ({r['encoded']} computed now), "
            f"{r['without_text']} without text; index {r['index']['vectors']} vectors; model {r['model']['model_id']}",
            highlight=False,
        )
        v = r.get("visual") or {}
        if v.get("model"):
            console.print(
                f"visual: {v['vectors']} vectors ({v['encoded']} computed now) from the shot thumbnails; "
                f"index {v['index']['vectors']} vectors; model {v['model']['model_id']}",
                highlight=False,
            )
        elif v.get("skipped"):
            console.print(f"visual: skipped ({v['skipped']})", highlight=False, markup=False)

    emit(r, json_, render)


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    k: Annotated[int, typer.Option("--k", help="How many results.")] = 10,
    kind: Annotated[str | None, typer.Option("--kind", help="Only sources or only clips: source | clip.")] = None,
    modality: Annotated[
        str, typer.Option("--modality", help="text: the text vectors; visual: the thumbnails' vectors (semantic.visual).")
    ] = "text",
    purpose: PurposeOpt = None,
    policy_file: PolicyFileOpt = None,
    registry: RegistryOpt = None,
    permissions: PermissionsOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Rank the catalog's sources and clips by similarity to QUERY; each result has its licence decision
    for the purpose (stored by `clipfactory policy check`; give it the same --policy, --registry and
    --permissions files, or a note says the decisions are out of date)."""
    from ..policy.gate import load_policy
    from ..semantic.search import search

    s = settings_with_policy(config, sets, catalog, policy_file, registry, permissions, purpose)
    load_policy(s).profile(s.purpose)  # an unknown purpose is named with the known ones
    r = search(
        existing_catalog(s), query, k=k, purpose=s.purpose, kind=kind, modality=modality,
        visual_model=s.stage_config("semantic.visual").get("model"), settings=s,
    )

    def render(r: dict[str, Any]) -> None:
        table(
            [
                {"score": x["score"], "item": x["item_id"], "kind": x["kind"], "datasets": x["datasets"],
                 r["purpose"]: x["decision"], "reasons": ", ".join(x["reasons"])}
                for x in r["results"]
            ],
            f"search: {r['query']}",
        )
        if r.get("decisions_note"):
            console.print(f"decisions: {r['decisions_note']}", highlight=False, markup=False)

    emit(r, json_, render)


@app.command("categories")
def categories_cmd(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only this dataset (repeatable).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="One source's scores instead of the mix.")] = None,
    taxonomy: TaxonomyOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The content mix (sources and hours per category), or with --source one source's category scores."""
    from ..semantic.categories import category_mix, source_categories

    s = settings(config, sets, catalog=catalog)
    cat = existing_catalog(s)
    if source:
        r = source_categories(cat, source, taxonomy=taxonomy)

        def render_one(r: dict[str, Any]) -> None:
            console.print(f"{r['source_id']}: [bold]{r['category']}[/] (confidence {r['confidence']}) {r['why']}")
            table([{"category": c, "score": v} for c, v in r["scores"].items()], "scores")

        emit(r, json_, render_one)
        return
    r = category_mix(cat, datasets=dataset, taxonomy=taxonomy)

    def render(r: dict[str, Any]) -> None:
        cols = ("category", "sources", "share", "hours") + (("without_hours",) if r["without_hours"] else ())
        table([{k: c[k] for k in cols} for c in r["categories"]], f"categories ({r['sources']} sources)")
        if r.get("hours_note"):
            console.print(f"note: {r['hours_note']}", highlight=False, markup=False, soft_wrap=True)

    if r.get("fix"):
        err_console.print(f"[yellow]warning:[/] {r['not_indexed']} of {r['sources']} sources are not indexed yet "
                          f"(fix: {r['fix']})", highlight=False, soft_wrap=True)
    emit(r, json_, render)


@app.command("plan")
def plan_cmd(
    target: Annotated[
        str | None, typer.Option("--target", help='Shares per category, e.g. "driving=0.5,nature=0.5".')
    ] = None,
    budget_sources: Annotated[int | None, typer.Option("--budget-sources", help="How many sources to pick.")] = None,
    budget_hours: Annotated[float | None, typer.Option("--budget-hours", help="How many hours to pick.")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Pick only from this dataset (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the plan as JSON here.")] = None,
    keep_shares: Annotated[bool, typer.Option(
        "--keep-shares",
        help="When a category has too few sources, plan a smaller budget that keeps every share "
        "(by default the others fill the rest of the budget).",
    )] = False,
    check: Annotated[
        Path | None, typer.Option("--check", help="Show a written plan's target, planned and achieved shares.")
    ] = None,
    build: Annotated[
        str | None, typer.Option("--build", help="With --check: the build (id, or name for its latest version).")
    ] = None,
    purpose: PurposeOpt = None,
    taxonomy: TaxonomyOpt = None,
    policy_file: PolicyFileOpt = None,
    registry: RegistryOpt = None,
    permissions: PermissionsOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Plan a target mix before download: sources the purpose may acquire and use, in proportion.

    The stored decisions of `clipfactory policy check` must have been made under the same policy, registry
    and permissions files: give the same --policy, --registry and --permissions here (or set them in
    clipfactory.toml). With --check PLAN, after `clipfactory run --plan PLAN`: target, planned and achieved
    shares of the build."""
    from ..errors import ConfigError
    from ..semantic.plan import check_plan, load_plan, parse_target, plan_mix

    s = settings_with_policy(config, sets, catalog, policy_file, registry, permissions, purpose)
    if check is None:
        from ..policy.gate import load_policy

        load_policy(s).profile(s.purpose)  # an unknown purpose is named with the known ones
    if check is not None:
        rc = check_plan(existing_catalog(s), load_plan(check), build=build, taxonomy=taxonomy)

        def render_check(r: dict[str, Any]) -> None:
            table(
                [{k: c[k] for k in ("category", "target", "planned_share", "achieved", "achieved_share")}
                 for c in r["categories"]],
                f"plan for {r['purpose']} against build {r['build_id']}: {r['achieved']} {r['unit']}",
            )
            console.print(r["chart"], highlight=False, markup=False)
            console.print(f"{r['planned_sources_built']} of {r['planned_sources']} planned sources in the build",
                          highlight=False)

        emit(rc, json_, render_check)
        return
    if not target:
        raise ConfigError("plan needs --target (or --check PLAN)", fix='e.g. --target "driving=0.5,nature=0.5"')
    r = plan_mix(
        existing_catalog(s), parse_target(target), purpose=s.purpose, budget_sources=budget_sources,
        budget_hours=budget_hours, datasets=dataset, taxonomy=taxonomy, settings=s, out=out, empty_ok=False,
        keep_shares=keep_shares,
    )

    def render(r: dict[str, Any]) -> None:
        table(
            [{k: c[k] for k in ("category", "target", "planned", "planned_share", "planned_held", "held", "available")}
             for c in r["categories"]],
            f"plan for {r['purpose']}: {r['planned']} of {r['budget']} {r['unit']}",
        )
        console.print(r["chart"], highlight=False, markup=False)
        for c in r["categories"]:
            mine = [x for x in r["sources"] if x["category"] == c["category"]]
            for x in mine[:3]:
                console.print(f"  {x['source_id']}: {x['why']}", highlight=False, markup=False, soft_wrap=True)
            if len(mine) > 3:
                console.print(f"  ... and {len(mine) - 3} more {c['category']} sources (--json lists all)",
                              highlight=False, markup=False)
        for p in r["impossible"]:
            console.print(f"[red]impossible:[/] {p['category']}: {p['why']}", highlight=False)
        if r.get("shrunk"):
            sh = r["shrunk"]
            console.print(
                f"budget shrunk to keep the shares: {sh['planned_budget']:g} of {sh['budget']:g} {r['unit']}, limited by "
                + "; ".join(f"{p['category']} ({p['why']})" for p in sh["limited_by"]),
                highlight=False, markup=False, soft_wrap=True,
            )

    emit(r, json_, render)
