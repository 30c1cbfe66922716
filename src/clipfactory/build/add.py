"""Owned media: plan what to acquire from paths and URLs, acquire it, and record its dataset membership.

``clipfactory add PATH... --license SPDX --rights-holder NAME`` and the first step of ``clipfactory run``
call :func:`add_owned`. A sidecar ``<file>.json`` beside a media file (``{"license": ..., "rights_holder":
..., "title": ...}``) gives that file's own provenance and wins over the command-line defaults.

Acquisition is the ``acquire.local`` stage, so it resumes: a file already acquired with the same size,
modification time and declared provenance is not copied again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import ConfigError, NotFoundError
from ..records import SourceRecord
from ..stage import StageContext

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".m2ts",
    ".wmv",
    ".flv",
    ".ogv",
    ".3gp",
}


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _stat(uri: str) -> tuple[int | None, str | None]:
    """(size, version) of a path or URL: mtime for files, ETag/mtime where a remote store gives one."""
    if not _is_url(uri):
        p = Path(uri.removeprefix("file://"))
        st = p.stat()
        return st.st_size, str(st.st_mtime_ns)
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    info = fs.info(path)
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return info.get("size"), str(version) if version is not None else None


def _read_sidecar(uri: str) -> dict[str, Any]:
    side = uri + ".json"
    try:
        if _is_url(uri):
            import fsspec

            fs, path = fsspec.core.url_to_fs(side)
            if not fs.exists(path):
                return {}
            with fs.open(path, "r") as fh:
                data = json.load(fh)
        else:
            p = Path(side.removeprefix("file://"))
            if not p.is_file():
                return {}
            data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable sidecar: {exc}", item=side, fix="make it a JSON object") from exc
    if not isinstance(data, dict):
        raise ConfigError("a sidecar must be a JSON object", item=side)
    return {
        "license": data.get("license") or data.get("content_license"),
        "rights_holder": data.get("rights_holder"),
        "title": data.get("title"),
    }


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files named directly, and media files (by extension) found under folders, in sorted order."""
    out: list[str] = []
    for item in inputs:
        if _is_url(item):
            import fsspec

            fs, path = fsspec.core.url_to_fs(item)
            if fs.isdir(path):
                proto = item.split("://", 1)[0]
                for f in sorted(fs.find(path)):
                    if Path(f).suffix.lower() in MEDIA_EXTENSIONS:
                        out.append(f"{proto}://{f}")
            else:
                out.append(item)
            continue
        p = Path(item.removeprefix("file://"))
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS and not f.name.startswith("."):
                    out.append(str(f.resolve()))
        elif p.exists():
            out.append(str(p.resolve()))
        else:
            raise NotFoundError("no such file or folder", item=item, fix="check the path")
    seen: set[str] = set()
    return [u for u in out if not (u in seen or seen.add(u))]


def plan_owned(
    inputs: list[str],
    *,
    license: str | None = None,
    rights_holder: str | None = None,
    title: str | None = None,
) -> list[SourceRecord]:
    """One provisional :class:`SourceRecord` per media file to acquire.

    Its ``source_id`` is ``origin:<hash>`` of the origin, its size and version (mtime or ETag) and the
    declared provenance: the key that makes acquisition resumable. ``acquire.local`` replaces it with the
    content id (``sha256:<hex>``).
    """
    plan = []
    for uri in expand_inputs(inputs):
        side = _read_sidecar(uri)
        lic = side.get("license") or license
        holder = side.get("rights_holder") or rights_holder
        ttl = side.get("title") or title
        if not lic:
            raise ConfigError(
                "owned media needs a licence",
                item=uri,
                fix="pass --license SPDX (e.g. CC-BY-4.0), set `license` in clipfactory.toml, "
                "or write a sidecar <file>.json with a license",
            )
        size, version = _stat(uri)
        key = json.dumps([uri, size, version, lic, holder, ttl])
        pid = "origin:" + hashlib.sha256(key.encode()).hexdigest()[:24]
        plan.append(
            SourceRecord(
                source_id=pid,
                platform="owned",
                origin_uri=uri,
                content_license=lic,
                rights_holder=holder,
                title=ttl,
                size_bytes=size,
            )
        )
    return plan


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
    listing (its id is the sha256 of the sorted ``origin_uri  content_sha256`` lines) and one
    ``memberships`` row per new source. Skipped (returns 0) while the ingest tables are not in the catalog.
    """
    if not sources:
        return 0
    listing = "\n".join(sorted(f"{s.origin_uri}  {s.content_sha256}" for s in sources))
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


def add_owned(
    catalog: Catalog,
    settings,
    inputs: list[str],
    *,
    license: str | None = None,
    rights_holder: str | None = None,
    title: str | None = None,
    dataset: str = "owned",
    executor=None,
    run_id: str | None = None,
    progress=None,
) -> tuple[dict[str, Any], list[SourceRecord]]:
    """Acquire owned media into the blob store and the catalog.

    Returns ``(report, sources)``: what happened per file (JSON-ready) and the acquired source records.
    ``executor``/``run_id`` let the main job run this inside its own run.
    """
    from .. import registry
    from ..executors.local import LocalExecutor
    from ..records import Result

    plan = plan_owned(inputs, license=license, rights_holder=rights_holder, title=title)
    ctx = StageContext(store_root=settings.store, catalog_path=str(catalog.path))
    stage = registry.get("acquire.local")(settings.stage_config("acquire.local"), ctx)
    ex = executor or LocalExecutor(
        catalog, workers=1, retries=settings.retries, error_budget=settings.error_budget, progress=progress
    )
    summary = ex.run([stage], plan, run_id=run_id, command="add", config=settings.resolved())
    sources = list({r.id: r for r in summary.outputs if isinstance(r, SourceRecord)}.values())
    n_members = record_memberships(catalog, dataset, sources, uri=inputs[0] if len(inputs) == 1 else None)
    plan_ids = [p.source_id for p in plan]
    rows = catalog.query(
        """SELECT item_id, status, reason, error, output_ids FROM latest_outcomes
           WHERE stage = ? AND stage_version = ? AND config_hash = ? AND item_id IN (SELECT unnest(?))""",
        [stage.name, stage.version, stage.config_hash, plan_ids],
    )
    by_item = {r["item_id"]: r for r in rows}
    files = []
    for p in plan:
        r = by_item.get(p.source_id, {})
        files.append(
            {
                "origin_uri": p.origin_uri,
                "status": r.get("status", Result.FAILED),
                "source_id": (r.get("output_ids") or [None])[0],
                "reason": r.get("reason") or r.get("error"),
                "license": p.content_license,
                "rights_holder": p.rights_holder,
            }
        )
    return {
        "run_id": summary.run_id,
        "dataset": dataset,
        "files": files,
        "items": plan_ids,
        "sources": [s.source_id for s in sources],
        "added": sum(1 for f in files if f["status"] == "kept"),
        "skipped": summary.stages[0].skipped if summary.stages else 0,
        "memberships_added": n_members,
    }, sources
