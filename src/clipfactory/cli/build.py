"""``clipfactory add``, ``clipfactory run`` and ``clipfactory builds``: owned media to versioned builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..progress import default_progress
from .app import app
from .common import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    SetOpt,
    StoreOpt,
    catalog_of,
    console,
    emit,
    open_catalog,
    settings,
    table,
)
from .policy import PermissionsOpt, PolicyFileOpt, RegistryOpt, settings_with_policy

builds_app = typer.Typer(help="Builds: versioned WebDataset exports.", no_args_is_help=True)
app.add_typer(builds_app, name="builds")

PurposeOpt = Annotated[
    str | None, typer.Option("--purpose", help="Purpose profile the build is checked against.")
]


@app.command("add")
def add_cmd(
    paths: Annotated[list[str], typer.Argument(help="Media files, folders, file:// or s3:// URLs.")],
    license: Annotated[
        str | None,
        typer.Option("--license", help="SPDX licence of files without a sidecar, e.g. CC-BY-4.0."),
    ] = None,
    rights_holder: Annotated[
        str | None, typer.Option("--rights-holder", help="Who holds the rights.")
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title used in attribution lines.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset the media joins.")] = "owned",
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add owned media to the blob store and the catalog, with its licence and rights holder.

    A sidecar <file>.json ({"license", "rights_holder", "title"}) beside a file overrides the options. A file
    with neither is refused and nothing is added: the config's `license` and `rights_holder` apply only to
    the config's own `inputs` (what `clipfactory run` adds). So is a file that is not a video or audio file
    (a text file named .mp4, a still image): its container header is read once when it is added.
    """
    from ..factory.add import add_owned

    s = settings(config, sets, catalog=catalog, store=store)
    report, _ = add_owned(
        open_catalog(s, create=True),
        s,
        paths,
        # Only the options (or a sidecar): the config's `license`/`rights_holder` cover its own `inputs`.
        license=license,
        rights_holder=rights_holder,
        title=title,
        dataset=dataset,
        progress=default_progress(quiet=json_),
    )
    report.pop("items", None)

    def render(r):
        table(r["files"], f"added to dataset {r['dataset']}", ["origin_uri", "status", "source_id", "reason"])
        console.print(f"{r['added']} acquired, {r['skipped']} already acquired")

    emit(report, json_, render)


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    purpose: PurposeOpt = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Build from this catalog dataset's sources (repeatable)."),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only sources of this split (repeatable).")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Only sources with this label (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many catalog sources.")] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Acquire and build the sources of this plan (`clipfactory plan --out`)."),
    ] = None,
    policy_file: PolicyFileOpt = None,
    registry: RegistryOpt = None,
    permissions: PermissionsOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The main job: select, check policy, fetch, probe, analyse, filter, dedup, cut and export a build.

    Sources come from the config's `inputs` (owned media), from the catalog datasets named with
    --dataset or `datasets = [...]`, and from a plan's sources with --plan (then the summary shows the
    plan's target, planned and achieved shares).
    """
    from ..errors import ConfigError
    from ..factory.pipeline import run_pipeline

    the_plan = None
    if plan is not None:
        from ..semantic.plan import load_plan, plan_source_ids

        the_plan = load_plan(plan)
        if purpose and purpose != the_plan["purpose"]:
            raise ConfigError(
                f"the plan was made for purpose {the_plan['purpose']!r}, not {purpose!r}", item=str(plan),
                fix=f"run it with --purpose {the_plan['purpose']}, or make a plan for {purpose}",
            )
        purpose = the_plan["purpose"]
        if not the_plan["sources"]:
            raise ConfigError("the plan lists no sources", item=str(plan), fix="see its `impossible` categories")
    s = settings_with_policy(config, sets, catalog, policy_file, registry, permissions, purpose, store=store)
    datasets = dataset or None
    if the_plan is not None:
        from ..catalog import Catalog
        from ..policy.gate import check_decisions

        # A plan builds its sources and only those: the config's owned inputs and datasets are left out
        # (a --dataset given here is built beside it). Its decisions were made under the policy, registry
        # and permissions files of `plan`; a run under others would decide them again, differently.
        s = s.model_copy(update={"inputs": []})
        datasets = datasets or []
        check_decisions(Catalog(s.catalog), purpose, settings=s, source_ids=plan_source_ids(the_plan))
    progress = default_progress(quiet=json_)
    try:
        summary = run_pipeline(
            s, progress=progress, datasets=datasets, splits=split or None, labels=label or None,
            limit=limit, source_ids=plan_source_ids(the_plan) if the_plan else None,
        )
    finally:
        progress.close()
    if the_plan is not None and summary["build"].get("build_id"):
        from ..catalog import Catalog
        from ..semantic.plan import check_plan

        summary["plan"] = check_plan(Catalog(s.catalog), the_plan, build=summary["build"]["build_id"])

    def render(d):
        rows = []
        for name, c in d["stages"].items():
            rows.append(
                {
                    "stage": name,
                    "received": c.get("received", c["kept"] + c["dropped"] + c["failed"]),
                    "kept": c["kept"],
                    "dropped": c["dropped"],
                    "failed": c["failed"],
                    "sent on": c["outputs"],
                }
            )
        table(rows, f"run {d['run_id']} ({d['purpose']})")
        from rich.markup import escape

        for name, c in d["stages"].items():
            whys, examples = c.get("why", {}), c.get("example", {})
            for reason, n in sorted(c["reasons"].items()):
                why = f": {escape(whys[reason])}" if whys.get(reason) else ""
                if examples.get(reason):
                    why += f" ({'e.g. ' if n > 1 else ''}{escape(examples[reason])})"
                console.print(f"  {name} {reason} ({n}){why}", soft_wrap=True, highlight=False)
        resumed = ", ".join(f"{n} {k}" for n, k in d.get("resumed", {}).items() if k)
        if resumed:
            console.print(f"  finished by earlier runs, not redone: {resumed}", highlight=False, soft_wrap=True)
        n, k = d.get("fingerprint_only_sources") or 0, d.get("clips_withheld") or 0
        if n:
            its = "its" if n == 1 else "their"
            console.print(
                f"  {n} source{'s' if n != 1 else ''} the purpose refuses went on to media.probe and media.analyse "
                f"for {its} fingerprints only; {its} {k} planned clip{'s' if k != 1 else ''} "
                f"{'is' if k == 1 else 'are'} not cut",
                soft_wrap=True, highlight=False,
            )
        b = d["build"]
        if not b.get("build_id"):
            console.print(
                "[bold]no build[/]: no clip reached the export (the reasons above say where they stopped)"
            )
            return
        n_clips, n_shards = b["n_clips"], b["n_shards"]
        console.print(
            f"build [bold]{b['build_id']}[/] ({b['status']}): {n_clips} clip{'s' if n_clips != 1 else ''} in "
            f"{n_shards} shard{'s' if n_shards != 1 else ''} at {b['out_dir']}",
            soft_wrap=True,
        )
        p = d.get("plan")
        if p:
            console.print(
                f"plan: {p['planned_sources_built']} of {p['planned_sources']} planned sources in the build; "
                f"target, planned and achieved shares ({p['unit']}):",
                highlight=False,
            )
            console.print(p["chart"], highlight=False, markup=False)

    emit(summary, json_, render)


@builds_app.command("list")
def builds_list(
    name: Annotated[str | None, typer.Option("--name", help="Only builds of this name.")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List builds, oldest first."""
    from ..factory.export import list_builds

    cat = catalog_of(config, catalog)
    rows = list_builds(cat, name)
    none = f"no builds named {name} in {cat.where}" if name else f"no builds yet in {cat.where}"
    emit(rows, json_, lambda r: table(r, "builds", empty=none))


@builds_app.command("show")
def builds_show(
    build_id: str, catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False
) -> None:
    """One build's catalog row."""
    from ..factory.export import get_build

    row = get_build(catalog_of(config, catalog), build_id)
    emit(row, json_, lambda r: table([r], build_id))
