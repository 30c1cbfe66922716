"""``clipfactory lookup``, ``dedup``, ``takedown``, ``verify`` and ``fingerprints``: the fingerprint commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ClipfactoryError
from .app import app
from .common import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    SetOpt,
    StoreOpt,
    console,
    emit,
    err_console,
    open_catalog,
    settings,
    table,
)

fingerprints_app = typer.Typer(
    help="The fingerprint index: load new fingerprints, show its state.", no_args_is_help=True
)
app.add_typer(fingerprints_app, name="fingerprints")


def _resolve(config, sets, catalog, store):
    """Settings and catalog. Without --store, CLIPFACTORY_STORE or ``store`` in clipfactory.toml, the blob
    store is the one the catalog's runs recorded: a takedown, a verify or a lookup then acts on the files
    the catalog names, not on an empty default store beside the current folder."""
    s = settings(config, sets, catalog=catalog, store=store)
    cat = open_catalog(s)
    if store is None and "store" not in s.model_fields_set:
        from ..catalog.meta import recorded_store

        try:
            found = recorded_store(cat) if cat.path.is_file() else None
        except ClipfactoryError:
            found = None
        if found:
            s = s.model_copy(update={"store": found})
    return s, cat


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
    licences and a confidence. Without --store, the blob store the catalog's runs recorded is used."""
    from ..fingerprints.lookup import lookup

    s, cat = _resolve(config, None, catalog, store)  # the store the catalog's runs recorded, unless told
    cat.require()  # before decoding FILE: without a catalog nothing can be looked up
    store_root = s.store
    cfg = {k: v for k, v in {"max_distance": max_distance, "min_share": min_share}.items() if v is not None}
    data = lookup(cat, file, settings=s, store=store_root, config=cfg or None)
    emit(data, json_, _render_lookup)


def _ms(v) -> str:
    return "" if v is None else f"{v / 1000:.1f}s"


def _render_lookup(d) -> None:
    idx = d["index"]
    searched = (
        f"searched {idx['frames']} frame hashes of {idx['sources']} sources (index generation {idx['generation']})"
        + (
            f"; the catalog is read-only: {idx['loaded_blobs']} fingerprint "
            f"blob{'' if idx['loaded_blobs'] == 1 else 's'} it had not loaded searched from the store in memory"
            if idx.get("read_only") and idx.get("loaded_blobs")
            else ""
        )
    )
    if d["status"] != "matched":
        console.print(d.get("message", d["status"]), highlight=False, soft_wrap=True)
        if d.get("removed"):
            r = d["removed"]
            console.print(
                f"removed: a takedown ({r['takedown_id'] or r['tombstone_id']}, {r['removed_at'] or '?'}) "
                f"removed this footage ({r['source_id']}); tombstone {r['tombstone_id']} refuses it",
                highlight=False,
                soft_wrap=True,
            )
        console.print(searched, highlight=False, soft_wrap=True)
        return
    console.print(searched, highlight=False, soft_wrap=True)
    if d.get("removed"):
        r = d["removed"]
        console.print(
            f"removed: a takedown ({r['takedown_id'] or r['tombstone_id']}, {r['removed_at'] or '?'}) removed "
            f"this footage from the builds ({r['source_id']}); tombstone {r['tombstone_id']} refuses it; the "
            "source's other footage stays in the catalog",
            highlight=False,
            soft_wrap=True,
        )
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
                + ("  mirrored" if sgm.get("mirrored") else "")
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
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="source: the whole source and everything derived from it; segment (with --match): only "
            "the clips that overlap the matched time ranges.",
        ),
    ] = "source",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be removed; change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove without asking for confirmation (for scripts).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the tombstone and receipt).")
    ] = None,
    catalog: CatalogOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove a source and everything derived from it; rewrite affected builds; leave a tombstone and a receipt.

    Shows the plan and asks before removing anything; --dry-run only shows it, --yes does not ask."""
    from ..errors import ConfigError
    from ..fingerprints.takedown import SCOPES, process_queue, takedown

    named = [x for x in (source_id, url, uploader, match) if x is not None]
    if len(named) + int(queue) != 1:
        raise ConfigError(
            "name exactly one of SOURCE_ID, --url, --uploader, --match or --queue",
            fix="e.g. clipfactory takedown youtube:dQw4w9WgXcQ --reason 'rights holder request'",
        )
    if scope not in SCOPES:
        raise ConfigError(
            f"unknown takedown scope {scope!r}", item="--scope", fix="use --scope source or --scope segment"
        )
    if scope == "segment" and match is None:
        raise ConfigError(
            "--scope segment needs the footage to remove: a file to match",
            item="--scope segment",
            fix="name the footage with --match FILE, or leave out --scope to take down whole sources",
        )
    if not (yes or dry_run) and not _stdin_is_terminal():
        raise ConfigError(
            "takedown removes content and asks for confirmation first, but stdin is not a terminal",
            item=str(named[0]) if named else "--queue",
            fix="pass --yes to remove without asking, or --dry-run to see what would be removed",
        )
    s, cat = _resolve(config, None, catalog, store)

    def run(dry: bool):
        if queue:
            return process_queue(cat, s, dry_run=dry)
        return takedown(
            cat,
            s,
            source_id=source_id,
            url=url,
            uploader=uploader,
            match=match,
            reason=reason,
            scope=scope,
            dry_run=dry,
        )

    if dry_run:
        emit(run(True), json_, _render_plan)
        return
    if not yes:
        plan = run(True)
        plans = plan.get("plans", []) if queue else [plan]
        if any(p.get("status") == "dry_run" for p in plans):
            _render_plan(plan, err_console)
            typer.confirm("Remove all of this?", abort=True, err=True)
        elif not queue:  # nothing to remove: taken down before
            emit(plan, json_, _render_plan)
            return
    emit(run(False), json_, _render_receipt)


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _render_plan(d, out=None) -> None:
    out = out or console
    if "plans" in d:
        out.print(f"{d['processed']} queue entries pending; {len(d['rejected'])} would be rejected")
        for p in d["plans"]:
            _render_plan(p, out)
        if not d["plans"]:
            out.print("nothing to take down")
        return
    if d.get("status") != "dry_run":
        out.print(f"takedown {d['takedown_id']} {d['status']}: nothing to remove")
        return
    rm = d["would_remove"]
    what = (
        "clips overlapping "
        + "; ".join(
            f"{sid} {', '.join(f'{_ms(a)}-{_ms(b)}' for a, b in rs) or 'no range'}"
            for sid, rs in d["segments"].items()
        )
        if d["scope"] == "segment"
        else "sources " + ", ".join(x["source_id"] for x in rm["sources"])
    )
    out.print(f"[bold]takedown {d['takedown_id']}[/] would remove {what}")
    out.print(
        f"  {len(rm['sources'])} sources, {len(rm['clips'])} clips, {rm['catalog_rows']} catalog rows, "
        f"{len(rm['blobs'])} blobs ({len(d['blobs_kept'])} kept: still referenced), "
        f"{rm['index_frames']} index frames, {len(rm['build_members'])} shard members"
    )
    for c in rm["clips"]:
        out.print(f"  clip {c['clip_id']} {_ms(c['start_ms'])}-{_ms(c['end_ms'])} of {c['source_id']}")
    for b in d["builds"]:
        if b["new_build_id"]:
            out.print(
                f"  build {b['build_id']} -> {b['new_build_id']}: {b['removed_members']} members out of "
                f"{', '.join(b['affected_shards'])}"
            )
        else:
            out.print(f"  superseded build {b['build_id']}: loses {', '.join(b['affected_shards'])}")
    for f in rm["shard_files"]:
        out.print(f"  shard file deleted: {f['path']}")
    for t in d["tombstones"]:
        out.print(
            f"  tombstone {t['tombstone_id']} ({t['scope']}"
            + (f" {', '.join(f'{_ms(a)}-{_ms(b)}' for a, b in t['ranges'])}" if t.get("ranges") else "")
            + f") for {t['source_id']}"
        )
    for c in d["dedup_copies"]:
        out.print(f"  dedup {c['dedup_status']} copy {c['clip_id']} of {c['source_id']}: {c['note']}")
    out.print(f"  {d['message']}")


def _render_receipt(d) -> None:
    if "receipts" in d:
        console.print(f"{d['processed']} queue entries processed")
        for r in d["receipts"]:
            _render_receipt(r)
        return
    console.print(f"[bold]takedown {d['takedown_id']}[/] {d['status']}: {', '.join(d['source_ids'])}")
    rm = d["removed"]
    console.print(
        f"  removed {len(rm.get('sources', []))} sources, {len(rm['clips'])} clips, {rm['catalog_rows']} "
        f"catalog rows, {len(rm['blobs'])} blobs, {rm['index_frames']} index frames, "
        f"{len(rm['build_members'])} shard members"
    )
    for b in d["builds"]:
        if b.get("new_build_id"):
            what = f"superseded by {b['new_build_id']}"
        else:  # an older version, superseded already: its files lose the removed members in place
            what = "(already superseded) rewritten in place"
        console.print(f"  build {b['superseded']} {what} ({b['removed_members']} members removed)")
    for c in d.get("dedup_copies", []):
        console.print(f"  dedup {c['dedup_status']} copy {c['clip_id']} of {c['source_id']}: {c['note']}")
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
    """Prove that no tombstoned content is in a build: scans its shards, local or on object storage (exit
    code 1 if any is found, or if the build was not read whole: a shard or clip of it missing)."""
    from ..fingerprints.verify import verify_build

    s, cat = _resolve(config, None, catalog, store)
    data = verify_build(cat, build, store=s.store, frames_per_clip=sample)

    def render(d):
        colour = "green" if d["ok"] else "red"
        if d["ok"]:
            verdict = "clean"
        elif d["findings"]:
            verdict = "TOMBSTONED CONTENT FOUND"
        else:
            verdict = "NOT VERIFIED (the build was not read whole)"
        console.print(
            f"[{colour}]{d['build_id']}: {verdict}[/] "
            f"({d['members_scanned']} members in {d['shards_scanned']} shards, {d['frames_checked']} frames checked)",
            highlight=False,
            soft_wrap=True,
        )
        for p in d.get("problems") or []:
            console.print(f"[red]error:[/] {d['build_id']} at {d['out_dir']}: {p}", highlight=False, soft_wrap=True)
        if d["findings"]:
            table(d["findings"], "findings")

    emit(data, json_, render)
    if not data["ok"]:
        raise typer.Exit(1)
