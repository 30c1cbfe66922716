"""``clipfactory lookup``, ``dedup``, ``takedown``, ``verify`` and ``fingerprints``: the fingerprint commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import CatalogOpt, ConfigOpt, JsonOpt, SetOpt, console, emit, open_catalog, settings, table

fingerprints_app = typer.Typer(
    help="The fingerprint index: load new fingerprints, show its state.", no_args_is_help=True
)
app.add_typer(fingerprints_app, name="fingerprints")

StoreOpt = Annotated[
    Path | None, typer.Option("--store", envvar="CLIPFACTORY_STORE", help="Root folder of the blob store.")
]


def _resolve(config, sets, catalog, store):
    s = settings(config, sets, catalog=catalog, store=store)
    return s, open_catalog(s)


@fingerprints_app.command("index")
def fingerprints_index(
    catalog: CatalogOpt = None, store: StoreOpt = None, config: ConfigOpt = None, json_: JsonOpt = False
) -> None:
    """Load the fingerprint blobs of new sources and clips into the index (incremental)."""
    from ..fingerprints.index import index_catalog

    s, cat = _resolve(config, None, catalog, store)
    data = index_catalog(cat, s.store)
    emit(
        data,
        json_,
        lambda d: console.print(
            f"{d['new_blobs']} new fingerprint blobs, {d['new_frames']} frames; index: {d['frames']} usable frames "
            f"of {d['sources']} sources (generation {d['generation']})"
        ),
    )


@fingerprints_app.command("status")
def fingerprints_status(
    catalog: CatalogOpt = None, store: StoreOpt = None, config: ConfigOpt = None, json_: JsonOpt = False
) -> None:
    """Frames, sources and whether the persisted index is up to date."""
    from ..fingerprints.index import index_status

    s, cat = _resolve(config, None, catalog, store)
    emit(
        index_status(cat, s.store),
        json_,
        lambda d: table([{"": k, "value": v} for k, v in d.items()], "fingerprint index"),
    )


@app.command("lookup")
def lookup_cmd(
    file: Annotated[Path, typer.Argument(help="A video file: is its footage in the catalog or a build?")],
    max_distance: Annotated[
        int | None, typer.Option("--max-distance", help="Largest Hamming distance for two frames to match.")
    ] = None,
    min_share: Annotated[
        float | None, typer.Option("--min-share", help="Share of frames that must match in a segment.")
    ] = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Creator lookup: the sources, clips and builds holding the footage of FILE, with time ranges,
    licences and a confidence."""
    from ..fingerprints.lookup import lookup

    s, cat = _resolve(config, None, catalog, store)
    cfg = {k: v for k, v in {"max_distance": max_distance, "min_share": min_share}.items() if v is not None}
    data = lookup(cat, file, settings=s, config=cfg or None)
    emit(data, json_, _render_lookup)


def _ms(v) -> str:
    return "" if v is None else f"{v / 1000:.1f}s"


def _render_lookup(d) -> None:
    if d["status"] != "matched":
        console.print(d.get("message", d["status"]))
        return
    for m in d["matches"]:
        console.print(
            f"[bold]{m['source_id']}[/] confidence {m['confidence']:.2f}  licence {m['content_license'] or '?'}"
            f"  {m['url'] or ''} {('uploader ' + m['uploader']) if m['uploader'] else ''}"
        )
        for sgm in m["segments"]:
            console.print(
                f"  query {_ms(sgm['query_start_ms'])}-{_ms(sgm['query_end_ms'])} = source "
                f"{_ms(sgm['source_start_ms'])}-{_ms(sgm['source_end_ms'])}  "
                f"({sgm['matched_source_frames']}/{sgm['source_frames']} frames, confidence {sgm['confidence']:.2f})"
                + (
                    f"  cropped {sgm['edit']['crop_x']:.0%} x {sgm['edit']['crop_y']:.0%} a side"
                    if sgm.get("edit")
                    else ""
                )
            )
        for c in m["clips"]:
            builds = ", ".join(f"{b['build_id']}:{b['shard']}" for b in c["builds"]) or "no build"
            console.print(f"  clip {c['clip_id']} {_ms(c['start_ms'])}-{_ms(c['end_ms'])} in {builds}")


@app.command("dedup")
def dedup_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; record no outcome rows.")] = False,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Near-duplicate dedup over the whole catalog (stage dedup.near): drop copies of the same footage."""
    from ..fingerprints.dedup import find_near_duplicates

    s, cat = _resolve(config, sets, catalog, store)
    data = find_near_duplicates(cat, s.store, settings=s, record=not dry_run)

    def render(d):
        console.print(
            f"{d['clips']} clips compared, {d['dropped']} near-duplicates dropped in {len(d['groups'])} groups"
            + (f" (run {d['run_id']})" if d.get("run_id") else " (dry run)")
        )
        rows = [
            {"dropped": x["clip_id"], "kept": x["kept"], "share": x["share"], "why": x["why"]}
            for g in d["groups"]
            for x in g["dropped"]
        ]
        if rows:
            table(rows, "near-duplicates")

    emit(data, json_, render)


@app.command("takedown")
def takedown_cmd(
    source_id: Annotated[str | None, typer.Argument(help="Source id to take down.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Take down the source(s) at this URL.")] = None,
    uploader: Annotated[
        str | None, typer.Option("--uploader", help="Take down every source of this uploader.")
    ] = None,
    match: Annotated[
        Path | None, typer.Option("--match", help="Take down every source whose footage matches this file.")
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Process the pending entries of the takedown queue.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the tombstone and receipt).")
    ] = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove a source and everything derived from it; rewrite affected builds; leave a tombstone and a receipt."""
    from ..errors import ConfigError
    from ..fingerprints.takedown import process_queue, takedown

    named = [x for x in (source_id, url, uploader, match) if x is not None]
    if len(named) + int(queue) != 1:
        raise ConfigError(
            "name exactly one of SOURCE_ID, --url, --uploader, --match or --queue",
            fix="e.g. clipfactory takedown youtube:dQw4w9WgXcQ --reason 'rights holder request'",
        )
    s, cat = _resolve(config, None, catalog, store)
    if queue:
        data = process_queue(cat, s)
    else:
        data = takedown(cat, s, source_id=source_id, url=url, uploader=uploader, match=match, reason=reason)
    emit(data, json_, _render_receipt)


def _render_receipt(d) -> None:
    if "receipts" in d:
        console.print(f"{d['processed']} queue entries processed")
        for r in d["receipts"]:
            _render_receipt(r)
        return
    console.print(f"[bold]takedown {d['takedown_id']}[/] {d['status']}: {', '.join(d['source_ids'])}")
    rm = d["removed"]
    console.print(
        f"  removed {rm['catalog_rows']} catalog rows, {len(rm['blobs'])} blobs, {rm['index_frames']} index frames, "
        f"{len(rm['build_members'])} shard members"
    )
    for b in d["builds"]:
        console.print(
            f"  build {b['superseded']} superseded by {b['new_build_id']} ({b['removed_members']} members removed)"
        )
    console.print(f"  receipt: {d['receipt_path']}")


@app.command("verify")
def verify_cmd(
    build: Annotated[str, typer.Option("--build", help="Build id (name-vN) or name (latest version).")],
    sample: Annotated[
        int, typer.Option("--frames", help="Frames decoded and PDQ-matched per clip (0: hashes only).")
    ] = 1,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Prove that no tombstoned content is in a build: scans its shards (exit code 1 if any is found)."""
    from ..fingerprints.verify import verify_build

    s, cat = _resolve(config, None, catalog, store)
    data = verify_build(cat, build, store=s.store, frames_per_clip=sample)

    def render(d):
        colour = "green" if d["ok"] else "red"
        console.print(
            f"[{colour}]{d['build_id']}: {'clean' if d['ok'] else 'TOMBSTONED CONTENT FOUND'}[/] "
            f"({d['members_scanned']} members in {d['shards_scanned']} shards, {d['frames_checked']} frames checked)"
        )
        if d["findings"]:
            table(d["findings"], "findings")

    emit(data, json_, render)
    if not data["ok"]:
        raise typer.Exit(1)
