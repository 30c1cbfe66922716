"""``clipfactory ingest``, ``clipfactory datasets list|overlap`` and ``clipfactory sources list|missing``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .app import app, datasets_app, sources_app
from .common import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    catalog_of,
    console,
    emit,
    err_console,
    open_catalog,
    settings,
    table,
)

DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name.")]

#: DuckDB memory sizes: a number and a unit (1GB, 512MB, 2.5GiB)
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.I)
#: The ingest's DuckDB memory limit when --memory-limit is not given: a 10 M-row Kinetics-style file
#: (9 M videos) peaks at 1.74 GB with it, 3.9 GB with DuckDB's own default of 80% of RAM (BENCHMARKS.md).
INGEST_MEMORY_LIMIT = "1536MB"


@app.command("ingest")
def ingest_cmd(
    manifests: Annotated[
        list[str],
        typer.Argument(
            help="Manifest files (CSV, JSONL, JSON, Parquet; local or fsspec URLs) or owned media folders."
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="Manifest format; detected from the columns when left out."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", "-d", help="Dataset name (default: the format's registry key; owned media: owned)."
        ),
    ] = None,
    map_: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Generic adapter mapping, KEY=VALUE[,KEY=VALUE...]. Keys naming a column of the file: "
            "id, url (one of the two is needed), start, end, caption, title, label, split, duration, "
            "license (SPDX ids), rights-holder, uploader. Keys giving a value: platform=youtube|web|NAME "
            "(whose ids the id column holds; default: YouTube ids, or URLs), "
            "time-unit=s|ms|hms|iso|auto (of start, end and duration; default auto).",
        ),
    ] = None,
    captions: Annotated[
        Path | None, typer.Option("--captions", help="HowTo100M caption.pickle with spans and narration.")
    ] = None,
    license: Annotated[
        str | None,
        typer.Option("--license", help="SPDX licence of owned media (a sidecar <file>.json wins)."),
    ] = None,
    rights_holder: Annotated[
        str | None, typer.Option("--rights-holder", help="Rights holder of owned media.")
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help=f"DuckDB memory limit for the ingest, e.g. 4GB (default: {INGEST_MEMORY_LIMIT}, which keeps a "
            "10 M-row ingest under 2 GB; more is faster on a large machine); past it DuckDB spills to disk.",
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="DuckDB threads for the ingest.")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Read manifests into the catalog: sources deduplicated across datasets, spans, captions, bad rows."""
    from ..sources.ingest import ingest_manifest

    if memory_limit is not None and not _MEMORY.fullmatch(memory_limit.strip()):
        # before the catalog is opened: a refused flag creates nothing
        from ..errors import ConfigError

        raise ConfigError(
            f"not a memory size: {memory_limit!r}", item="--memory-limit", fix="give a size such as 512MB, 1GB or 4GB"
        )
    s = settings(config, catalog=catalog)
    cat = open_catalog(s)
    results = []
    # A progress bar only on a terminal, on stderr, and never with --json: scripts and logs see none.
    show_bar = not json_ and err_console.is_terminal
    for path in manifests:
        with _ingest_bar(path, show_bar) as progress:
            summary = ingest_manifest(
                cat,
                path,
                format=format,
                dataset=dataset,
                mapping=map_,
                captions=captions,
                license=license or s.license,
                rights_holder=rights_holder or s.rights_holder,
                memory_limit=memory_limit or INGEST_MEMORY_LIMIT,
                threads=threads,
                progress=progress,
            )
        row = summary.to_dict()
        ignored = summary.already_ingested and dataset is not None and dataset != summary.dataset
        if ignored:
            row["dataset_not_applied"] = dataset
        # Options that shape how rows are read do nothing to a manifest read before: say so, not silently.
        unread = [
            f"{flag} {value}"
            for flag, value in (("--map", map_), ("--format", format), ("--captions", captions),
                                ("--license", license), ("--rights-holder", rights_holder))
            if value is not None
        ] if summary.already_ingested else []
        if unread:
            row["options_not_applied"] = unread
        results.append(row)
        if not json_:
            _render_summary(summary, ignored_dataset=dataset if ignored else None, unread=unread)
    if json_:
        emit({"manifests": results}, True)


@contextlib.contextmanager
def _ingest_bar(path: str, show: bool) -> Iterator[Callable[[str], None] | None]:
    """A bar on stderr over the phases of one manifest's ingest; it disappears when the ingest ends."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..sources.ingest import INGEST_PHASES

    bar = Progress(
        TextColumn("[bold]ingest[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        task = bar.add_task(escape(Path(path).name or path), total=len(INGEST_PHASES), phase="")

        def report(phase: str) -> None:
            bar.update(task, completed=INGEST_PHASES.index(phase), phase=phase)

        yield report
        bar.update(task, completed=len(INGEST_PHASES), phase="done")


def _render_summary(s: Any, *, ignored_dataset: str | None = None, unread: list[str] | None = None) -> None:
    from rich.markup import escape

    if s.already_ingested:
        console.print(
            f"[bold]{escape(s.uri)}[/]: already ingested into [cyan]{escape(s.dataset)}[/] "
            f"({s.rows_total} rows, {s.rows_bad} bad); nothing to do",
            soft_wrap=True, highlight=False,
        )
        if ignored_dataset:
            console.print(
                f"  --dataset {escape(ignored_dataset)} is not applied: a manifest is ingested once, under the "
                f"dataset of its first ingest, whatever its file name (its id is the sha256 of its bytes, "
                f"{s.manifest_id})",
                soft_wrap=True, highlight=False,
            )
        if unread:
            console.print(
                f"  {escape(', '.join(unread))}: not applied: its rows are what the first ingest read (a source "
                "keeps the fields it has; a later ingest only fills those it lacks). To read the file with other "
                "options, ingest it into a new catalog (--catalog NEW.duckdb)",
                soft_wrap=True, highlight=False,
            )
        return
    colour = "red" if s.rows_bad else "green"
    console.print(
        f"[bold]{s.uri}[/] → [cyan]{s.dataset}[/] ({s.format}): {s.rows_total} rows, "
        f"[green]{s.rows_ok} ok[/], [{colour}]{s.rows_bad} bad[/]; "
        f"{s.new_sources} new sources, {s.new_memberships} new memberships, {s.spans} spans"
        + (f", {s.captions} captions" if s.captions else "")
        + f" ({s.seconds:.1f}s)",
        highlight=False, soft_wrap=True,
    )
    shown = s.error_lines()[:5]
    for line in shown:
        console.print("  " + line, style="red", highlight=False, markup=False)
    if s.rows_bad > len(shown):
        console.print(
            f"  … and more: {s.rows_bad} bad rows in all (`clipfactory datasets errors --dataset {s.dataset}`)",
            highlight=False,
            markup=False,
        )
    if not s.lines_exact:
        console.print("  [yellow]line numbers are approximate for this file[/]")


@datasets_app.command("list")
def datasets_list_cmd(catalog: CatalogOpt = None, config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Datasets in the catalog with their manifests, sources, spans, captions and bad rows."""
    from ..sources.listing import list_datasets

    cat = catalog_of(config, catalog)
    rows = list_datasets(cat)

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            console.print(
                f"no datasets yet in {cat.where}: run `clipfactory ingest MANIFEST`",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            return
        table(
            rows,
            "datasets",
            ["dataset", "format", "registry_key", "manifests", "sources", "spans", "captions", "rows_total", "rows_bad"],
        )

    emit({"datasets": rows}, json_, lambda d: render(d["datasets"]))


@datasets_app.command("overlap")
def datasets_overlap_cmd(
    only: Annotated[list[str] | None, typer.Argument(help="Datasets to compare (default: all).")] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Shared sources between every pair of datasets, and each dataset's unique sources."""
    from ..sources.overlap import overlap_matrix

    m = overlap_matrix(catalog_of(config, catalog), only or None)

    def render(d: dict[str, Any]) -> None:
        names = d["datasets"]
        if not names:
            console.print("no datasets yet: run `clipfactory ingest MANIFEST`")
            return
        rows = []
        for a in names:
            row: dict[str, Any] = {"dataset": a}
            row.update({b: d["shared"][a][b] for b in names})
            row["unique"] = d["unique"][a]
            rows.append(row)
        table(rows, f"shared sources ({d['total_sources']} distinct)", ["dataset", *names, "unique"])

    emit(m.to_dict(), json_, render)


@datasets_app.command("errors")
def datasets_errors_cmd(
    dataset: DatasetOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows to show (0: all).")] = 50,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Manifest rows that were not ingested, with file, line and reason."""
    from ..sources.listing import list_errors

    rows = list_errors(catalog_of(config, catalog), dataset=dataset, limit=limit or None)

    def render(d: dict[str, Any]) -> None:
        if not d["errors"]:
            console.print("no ingest errors")
        for e in d["errors"]:
            where = e["line"] if e["line"] is not None else (e["pointer"] or "")
            console.print(f"{e['uri']}:{where}: {e['reason']}", highlight=False, markup=False)

    emit({"errors": rows}, json_, render)


@sources_app.command("list")
def sources_list_cmd(
    dataset: DatasetOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Sources to show (0: all).")] = 50,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Sources (one per canonical video) and the datasets that list them."""
    from ..sources.listing import count_sources, list_sources

    cat = catalog_of(config, catalog)
    rows = list_sources(cat, dataset=dataset, limit=limit or None)
    total = count_sources(cat, dataset=dataset)

    def render(d: dict[str, Any]) -> None:
        shown = [{**r, "datasets": ", ".join(r["datasets"] or [])} for r in d["sources"]]
        none = f"no sources of dataset {dataset} in {cat.where}" if dataset else f"no sources yet in {cat.where}"
        table(
            shown, f"sources ({len(shown)} of {d['total']})", ["source_id", "platform", "url", "datasets"], empty=none
        )

    emit({"total": total, "sources": rows}, json_, render)


@sources_app.command("missing")
def sources_missing_cmd(
    store: Annotated[
        str,
        typer.Option("--store", help="A clipfactory blob store, or a folder of media named by platform id."),
    ],
    dataset: DatasetOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write every missing source to this Parquet file.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Missing sources to print (0: all).")] = 20,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Manifest entries (sources) that have no media in a store."""
    from ..sources.missing import missing_sources

    cat = catalog_of(config, catalog)
    report = missing_sources(cat, store, dataset=dataset, output=output, limit=limit or None)

    def render(d: dict[str, Any]) -> None:
        console.print(
            f"[bold]{d['missing']}[/] of {d['sources']} sources have no media in {d['store']} "
            f"({d['present']} present; store looked like: {d['store_kind']}, {d['files']} files)",
            highlight=False,
        )
        if d["rows"]:
            shown = [{**r, "datasets": ", ".join(r["datasets"] or [])} for r in d["rows"]]
            table(shown, None, ["source_id", "platform_id", "datasets"])
        if d.get("output"):
            console.print(f"wrote {d['missing']} rows to {d['output']}")

    emit(report.to_dict(), json_, render)
