"""Owned media: plan what to acquire from paths and URLs, acquire it, and record its dataset membership.

``clipfactory add PATH... --license SPDX --rights-holder NAME`` and the first step of ``clipfactory run``
call :func:`add_owned`. A sidecar ``<file>.json`` beside a media file (``{"license": ..., "rights_holder":
..., "title": ...}``) gives that file's own provenance and wins over the declared defaults. The config's
``license`` and ``rights_holder`` are defaults for the config's own ``inputs`` only (``clipfactory run``
passes them); a file named to ``clipfactory add`` needs the options or a sidecar.

Acquisition is the ``acquire.local`` stage, so it resumes: content already acquired with the same declared
provenance is not copied again.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from ..catalog import Catalog
from ..errors import ConfigError
from ..records import SourceRecord

log = logging.getLogger(__name__)


def plan_owned(
    inputs: list[str],
    *,
    license: str | None = None,
    rights_holder: str | None = None,
    title: str | None = None,
) -> list[SourceRecord]:
    """One :class:`SourceRecord` per distinct media file under ``inputs``, with its declared provenance.

    Listing, sidecars, licence validation (SPDX) and hashing are those of
    :func:`clipfactory.sources.owned.scan_owned`, so the source id (``sha256:<hex>``) is known before
    anything is copied. Raises :class:`ManifestError` naming every file without a licence or rights holder.
    """
    from ..sources.owned import scan_owned

    if not inputs:
        raise ConfigError(
            "no inputs given", fix="name media files or folders (or set `inputs` in clipfactory.toml)"
        )
    records = scan_owned(inputs, license, rights_holder)
    if title:
        records = [r.replace(title=title) for r in records]
    return records


def _columns(con, table: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
            [table],
        ).fetchall()
    }


def _insert(con, table: str, row: dict[str, Any], cols: set[str]) -> None:
    use = [c for c in row if c in cols]
    con.execute(
        f"INSERT INTO {table} ({', '.join(use)}) VALUES ({', '.join('?' for _ in use)})",
        [row[c] for c in use],
    )


def record_memberships(
    catalog: Catalog, dataset: str, sources: list[SourceRecord], *, uri: str | None = None
) -> int:
    """Record that ``sources`` belong to the owned dataset ``dataset``, so the policy gate sees them.

    Writes a ``datasets`` row (format ``owned``, registry key ``owned``), a ``manifests`` row for the file
    listing (its id is the sha256 of the sorted ``name  content_sha256`` lines, local files named relative to
    the folder that holds them all: :func:`~clipfactory.sources.owned.listing_names`) and one
    ``memberships`` row per new source. Skipped (returns 0) while the ingest tables are not in the catalog.
    """
    if not sources:
        return 0
    from ..sources.owned import listing_names

    named = listing_names([s.origin_uri for s in sources])
    listing = "\n".join(sorted(f"{named[s.origin_uri]}  {s.content_sha256}" for s in sources))
    manifest_id = hashlib.sha256(listing.encode()).hexdigest()
    now = datetime.now(UTC).replace(tzinfo=None)
    ids_ = list(dict.fromkeys(s.source_id for s in sources))
    with catalog.write() as con:
        mcols = _columns(con, "memberships")
        if not {"dataset", "source_id"} <= mcols:
            log.info("no memberships table yet; owned dataset membership not recorded")
            return 0
        dcols = _columns(con, "datasets")
        if dcols:
            if con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [dataset]).fetchall()[0][0]:
                if "last_ingested_at" in dcols:
                    con.execute("UPDATE datasets SET last_ingested_at = ? WHERE dataset = ?", [now, dataset])
            else:
                row = {
                    "dataset": dataset,
                    "format": "owned",
                    "registry_key": "owned",
                    "first_ingested_at": now,
                    "last_ingested_at": now,
                }
                _insert(con, "datasets", row, dcols)
        have = {
            r[0]
            for r in con.execute(
                "SELECT source_id FROM memberships WHERE dataset = ? AND source_id IN (SELECT unnest(?))",
                [dataset, ids_],
            ).fetchall()
        }
        new = [s for s in ids_ if s not in have]
        if not new:
            return 0
        mfcols = _columns(con, "manifests")
        if (
            mfcols
            and not con.execute(
                "SELECT count(*) FROM manifests WHERE manifest_id = ?", [manifest_id]
            ).fetchall()[0][0]
        ):
            row = {
                "manifest_id": manifest_id,
                "dataset": dataset,
                "uri": uri,
                "format": "owned",
                "rows_total": len(sources),
                "rows_ok": len(sources),
                "rows_bad": 0,
                "ingested_at": now,
            }
            _insert(con, "manifests", row, mfcols)
        for sid in new:
            _insert(
                con,
                "memberships",
                {"dataset": dataset, "source_id": sid, "manifest_id": manifest_id, "n_spans": 0},
                mcols,
            )
    return len(new)


def by_input_root(inputs: list[str], sources: list[SourceRecord]) -> list[tuple[str | None, list[SourceRecord]]]:
    """``sources`` grouped by the input (file, folder or URL prefix) each was found under, in input order.

    The input's canonical form (:func:`clipfactory.sources.owned.input_root`) becomes the ``uri`` of its
    ``manifests`` row, which is how a build ships a path relative to it instead of the full ``origin_uri``.
    """
    from ..sources.owned import input_root, relative_origin

    roots = list(dict.fromkeys(input_root(i) for i in inputs))
    groups: dict[str | None, list[SourceRecord]] = {}
    for s in sources:
        root = next((r for r in roots if relative_origin(s.origin_uri, [r]) is not None), None)
        groups.setdefault(root, []).append(s)
    return [(r, groups[r]) for r in [*roots, None] if r in groups]


def add_owned(
    catalog: Catalog,
    settings,
    inputs: list[str],
    *,
    license: str | None = None,
    rights_holder: str | None = None,
    title: str | None = None,
    dataset: str = "owned",
    run=None,
    progress=None,
) -> tuple[dict[str, Any], list[SourceRecord]]:
    """Acquire owned media into the blob store and the catalog.

    ``license`` and ``rights_holder`` are the provenance the caller declares for every file without a
    sidecar: ``clipfactory add`` passes only its ``--license``/``--rights-holder`` options, ``clipfactory
    run`` the config's ``license``/``rights_holder`` for the config's own ``inputs``. A file with neither a
    sidecar nor these is refused (:class:`ManifestError` naming it) before anything is written.

    Returns ``(report, sources)``: what happened per file (JSON-ready) and the acquired source records.
    ``run`` (a :class:`clipfactory.pipelines.Run`) lets the main job run this inside its own run.
    """
    from ..pipelines import Run
    from ..records import Result

    plan = plan_owned(inputs, license=license, rights_holder=rights_holder, title=title)
    with Run(settings, command="add", catalog=catalog, progress=progress, parent=run, workers=1) as add_run:
        stage = add_run.make("acquire.local")
        done = add_run.stage(stage, plan)
    sources = list({x.id: x for x in done.outputs if isinstance(x, SourceRecord)}.values())
    n_members = 0
    for root, group in by_input_root(inputs, sources):
        n_members += record_memberships(catalog, dataset, group, uri=root)
    plan_ids = [stage.item_id(p) for p in plan]
    rows = catalog.query(
        """SELECT item_id, status, reason, error, output_ids FROM latest_outcomes
           WHERE stage = ? AND stage_version = ? AND config_hash = ? AND item_id IN (SELECT unnest(?))""",
        [stage.name, stage.version, stage.config_hash, plan_ids],
    )
    by_item = {r["item_id"]: r for r in rows}
    files = []
    for p in plan:
        r = by_item.get(stage.item_id(p), {})
        files.append(
            {
                "origin_uri": p.origin_uri,
                "status": r.get("status", Result.FAILED),
                "source_id": p.source_id,
                "reason": r.get("reason") or r.get("error"),
                "license": p.content_license,
                "rights_holder": p.rights_holder,
            }
        )
    return {
        "run_id": add_run.run_id,
        "dataset": dataset,
        "files": files,
        "items": plan_ids,
        "sources": [s.source_id for s in sources],
        "added": sum(1 for f in files if f["status"] == "kept"),
        "skipped": done.summary.skipped,
        "memberships_added": n_members,
    }, sources
