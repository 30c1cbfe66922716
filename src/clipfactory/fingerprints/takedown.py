"""Takedowns: remove a source and everything derived from it, leave a tombstone and a receipt.

:func:`takedown` resolves the request (a source id, a URL, an uploader, or a file whose footage matches)
to source ids, adds every other source with the same content hash, and runs these steps, each recorded
in a journal (``<store>/takedowns/<takedown_id>/journal.json`` and the ``takedowns`` row):

1. ``plan``: find every derived artefact. The catalog query is generic: every table with a ``source_id``
   or ``clip_id`` column (clips, memberships, spans, policy decisions, frame hashes, descriptors, build
   members, embeddings when they exist, ...), plus the outcome rows of those items; every ``*_uri``
   column of those rows names a blob (source media, clip files, thumbnails, analysis and fingerprint
   blobs). Shard members come from ``build_members``. The dense PDQ hashes of the source are computed
   now, while its media still exists. The plan is saved before anything is deleted.
2. ``tombstone``: write the tombstone first, so ingest refuses the content while the rest runs.
3. ``builds``: every current build holding a removed clip gets a new version: affected shards are
   rewritten without the removed members, the others hard-linked, ``index.parquet`` and ``build.json``
   rewritten; the version directory appears by one rename; then the catalog gets the new ``builds`` and
   ``build_members`` rows and the old version is marked superseded. Only then are the old version's
   affected shard files deleted (and its index rewritten without the removed rows). Superseded older
   versions lose their affected shards the same way.
4. ``catalog``: delete every planned row in one transaction; mark queue entries done.
5. ``blobs``: delete each planned blob that no remaining row references.
6. ``index``: drop the source's frames from the persisted fingerprint index.
7. ``receipt``: write the deletion receipt (what was removed, with hashes, times and the superseded
   build versions) atomically under the store, and return it.

Every step is idempotent, so an interrupted takedown is resumed by running the same request again (or
any request resolving to the same sources): finished steps are skipped, partial files of the failed
step are removed and the step is redone.

``dry_run=True`` computes the same plan from the catalog alone and returns it (:func:`plan_view`): the
lists of what the steps would remove, under the receipt's field names; nothing is written. With
``scope="segment"`` (a ``match`` request) only the clips overlapping the matched source time ranges are
planned (:func:`segment_ranges`); the sources stay, and the tombstone holds only the matched footage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import Catalog, dict_rows
from ..catalog.outcomes import now as _now
from ..errors import ConfigError, NotFoundError
from ..ids import sha256_file
from ..storage import BLOB_PREFIX, BlobStore, atomic_path, atomic_write, filesystem, is_url
from .hashes import MIN_QUALITY, pack_many

log = logging.getLogger(__name__)

STEPS = ("plan", "tombstone", "builds", "catalog", "blobs", "index", "receipt")
#: Tables whose source_id/clip_id rows are records *about* takedowns, never derived artefacts.
KEEP_TABLES = {"tombstones", "tombstone_hashes", "takedowns", "takedown_queue"}
#: Lowest lookup confidence for ``--match`` to take a source down.
MATCH_MIN_CONFIDENCE = 0.5


def _iso(dt: datetime) -> str:
    return dt.replace(microsecond=0).isoformat() + "Z"


def _checkpoint(step: str, takedown_id: str) -> None:
    """Called after each finished step (tests inject interruptions here)."""


# -- resolving the request -------------------------------------------------------------------------------
def resolve_targets(
    catalog: Catalog,
    *,
    source_ids: list[str] | None = None,
    url: str | None = None,
    uploader: str | None = None,
    match: str | os.PathLike | None = None,
    settings=None,
    store: BlobStore | None = None,
    refresh: bool = True,
) -> tuple[list[str], dict[str, Any]]:
    """Source ids named by the request, plus sources holding byte-identical content.

    ``refresh`` (for ``match``) first loads fingerprint blobs that are not indexed yet; a dry run passes
    False so that it writes nothing."""
    from .. import ids as ids_mod

    how: dict[str, Any] = {}
    found: list[str] = []
    if source_ids:
        rows = catalog.query(
            "SELECT source_id FROM sources WHERE source_id IN (SELECT unnest(?))", [source_ids]
        )
        have = {r["source_id"] for r in rows}
        missing = [s for s in source_ids if s not in have]
        if missing:
            raise NotFoundError(
                f"no source with id {', '.join(missing)} in the catalog",
                item=missing[0],
                fix="check the id with `clipfactory sources list`, or take down by --url, --uploader or --match",
            )
        found = list(source_ids)
        how = {"kind": "source_id", "value": source_ids}
    elif url:
        candidates = {url.strip(), ids_mod.normalise_url(url)} if "://" in url else {url.strip()}
        yt = ids_mod.youtube_source_id(url)
        rows = catalog.query(
            "SELECT source_id, url FROM sources WHERE url IN (SELECT unnest(?)) OR source_id IN (SELECT unnest(?))",
            [
                sorted(candidates),
                [s for s in (yt, ids_mod.url_source_id(url) if "://" in url else None) if s],
            ],
        )
        if not rows:
            raise NotFoundError("no source with this URL in the catalog", item=url, fix="check the URL")
        found = sorted({r["source_id"] for r in rows})
        how = {"kind": "url", "value": url}
    elif uploader:
        rows = catalog.query("SELECT source_id FROM sources WHERE uploader = ?", [uploader])
        if not rows:
            raise NotFoundError(
                "no source from this uploader in the catalog", item=uploader, fix="check the name"
            )
        found = sorted({r["source_id"] for r in rows})
        how = {"kind": "uploader", "value": uploader}
    elif match is not None:
        from .lookup import lookup

        res = lookup(catalog, match, settings=settings, store=store, refresh=refresh)
        hits = [m for m in res["matches"] if m["confidence"] >= MATCH_MIN_CONFIDENCE]
        if not hits:
            raise NotFoundError(
                f"no catalog footage matches the file ({res['status']})",
                item=str(match),
                fix="see `clipfactory lookup FILE` for what matched and how strongly",
            )
        found = sorted({m["source_id"] for m in hits})
        how = {
            "kind": "match",
            "value": str(match),
            "query_sha256": res["query"]["sha256"],
            "matches": [
                {
                    "source_id": m["source_id"],
                    "confidence": m["confidence"],
                    "segments": m["segments"],
                    "exact_copy": bool(m.get("exact_copy")),
                    "exact_clips": [c["clip_id"] for c in m.get("clips", []) if c.get("exact_copy")],
                }
                for m in hits
            ],
        }
    else:
        raise ConfigError("nothing to take down", fix="name a source id, --url, --uploader or --match")
    # Byte-identical copies under other ids are the same content.
    rows = catalog.query(
        """SELECT s2.source_id FROM sources s1 JOIN sources s2 ON s1.content_sha256 = s2.content_sha256
           WHERE s1.source_id IN (SELECT unnest(?)) AND s2.source_id NOT IN (SELECT unnest(?))""",
        [found, found],
    )
    same = sorted({r["source_id"] for r in rows})
    if same:
        how["same_content"] = same
    return sorted(set(found) | set(same)), how


# -- the derived-artefacts query -------------------------------------------------------------------------
def _columns(con) -> dict[str, list[str]]:
    rows = con.execute(
        """SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE'
           ORDER BY c.table_name, c.ordinal_position"""
    ).fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def _where(cols: list[str]) -> str | None:
    parts = []
    if "source_id" in cols:
        parts.append("source_id IN (SELECT id FROM _td_src)")
    if "clip_id" in cols:
        parts.append("clip_id IN (SELECT id FROM _td_clip)")
    return " OR ".join(parts) or None


#: The outcome rows of the planned sources and clips (``_td_src``, ``_td_clip``): items named by the id, and
#: the ``acquire.local`` items ``<source_id>@<provenance>`` of the sources (so a later run re-acquiring the
#: file drops it as tombstoned instead of resuming a source that no longer exists).
_OUTCOMES_OF = (
    "(item_id IN (SELECT id FROM _td_src UNION ALL SELECT id FROM _td_clip)"
    " OR (contains(item_id, '@') AND split_part(item_id, '@', 1) IN (SELECT id FROM _td_src)))"
)


def _tables_with_rows(con) -> Iterator[tuple[str, list[str], str, int]]:
    """Each table but the :data:`KEEP_TABLES` that has rows of the planned sources or clips (``_td_src``,
    ``_td_clip``): its name, its columns, the WHERE clause of those rows and how many there are."""
    for table, cols in _columns(con).items():
        if table in KEEP_TABLES:
            continue
        where = _where(cols)
        if where is None:
            continue
        n = con.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchall()[0][0]
        if n:
            yield table, cols, where, int(n)


def _outcome_rows(con) -> int:
    """How many outcome rows are of the planned sources and clips (:data:`_OUTCOMES_OF`)."""
    return con.execute("SELECT count(*) FROM stage_outcomes WHERE " + _OUTCOMES_OF).fetchall()[0][0]


def derived_artefacts(con, source_ids: list[str], clip_ids: list[str] | None = None) -> dict[str, Any]:
    """Every catalog row and blob derived from ``source_ids`` (see the module docstring).

    With ``clip_ids`` (a segment takedown) only those clips and the rows derived from them are planned;
    the sources and their other clips stay.
    """
    if clip_ids is None:
        row_sources = list(source_ids)
        clip_ids = [
            r[0]
            for r in con.execute(
                "SELECT clip_id FROM clips WHERE source_id IN (SELECT unnest(?)) ORDER BY clip_id",
                [source_ids],
            ).fetchall()
        ]
    else:
        row_sources = []
        clip_ids = sorted(clip_ids)
    con.register("_td_src", pa.table({"id": pa.array(row_sources, pa.string())}))
    con.register("_td_clip", pa.table({"id": pa.array(clip_ids, pa.string())}))
    try:
        tables: dict[str, int] = {}
        blobs: dict[str, set[str]] = {}
        for table, cols, where, n in _tables_with_rows(con):
            tables[table] = n
            for col in cols:
                if col.endswith("_uri"):
                    for (uri,) in con.execute(
                        f'SELECT DISTINCT "{col}" FROM "{table}" WHERE ({where}) AND "{col}" LIKE \'{BLOB_PREFIX}%\''
                    ).fetchall():
                        blobs.setdefault(uri, set()).add(f"{table}.{col}")
        n_out = _outcome_rows(con)
        if n_out:
            tables["stage_outcomes"] = int(n_out)
        clips = [
            dict(zip(("clip_id", "source_id", "start_ms", "end_ms", "content_sha256"), r, strict=True))
            for r in con.execute(
                "SELECT clip_id, source_id, start_ms, end_ms, content_sha256 FROM clips "
                "WHERE clip_id IN (SELECT id FROM _td_clip) ORDER BY clip_id"
            ).fetchall()
        ]
        members = []
        if "build_members" in tables:
            cur = con.execute(
                """SELECT m.build_id, m.clip_id, m.source_id, m.shard, m.member_key, m.mp4_sha256, m.json_sha256,
                          m.jpg_sha256 FROM build_members m WHERE m.source_id IN (SELECT id FROM _td_src)
                          OR m.clip_id IN (SELECT id FROM _td_clip) ORDER BY m.build_id, m.shard, m.member_key"""
            )
            members = dict_rows(cur)
        shared = _referenced_outside(con, sorted(blobs))
        copies = _dedup_copies(con)
    finally:
        con.unregister("_td_src")
        con.unregister("_td_clip")
    return {
        "clip_ids": clip_ids,
        "clips": clips,
        "tables": tables,
        "blobs": {u: sorted(v) for u, v in sorted(blobs.items())},
        "blobs_shared": sorted(shared),
        "members": members,
        "orphaned_duplicates": sorted({c["clip_id"] for c in copies if c["dedup_status"] == "dropped"}),
        "dedup_copies": copies,
    }


def _referenced_outside(con, uris: list[str]) -> set[str]:
    """The blobs of ``uris`` that rows outside the takedown (``_td_src``/``_td_clip``) reference: the blob
    step keeps them."""
    return _referenced(con, uris, outside_takedown=True)


def _referenced(con, uris: list[str], *, outside_takedown: bool = False) -> set[str]:
    """The blobs of ``uris`` that some ``*_uri`` column of the catalog still names (with
    ``outside_takedown``, only rows outside the takedown's ``_td_src``/``_td_clip``)."""
    if not uris:
        return set()
    found: set[str] = set()
    con.register("_td_u", pa.table({"u": pa.array(uris, pa.string())}))
    try:
        for table, cols in _columns(con).items():
            where = None if not outside_takedown or table in KEEP_TABLES else _where(cols)
            outside = "TRUE" if where is None else f"NOT coalesce(({where}), FALSE)"
            for col in cols:
                if col.endswith("_uri"):
                    found |= {
                        r[0]
                        for r in con.execute(
                            f'SELECT DISTINCT "{col}" FROM "{table}" WHERE "{col}" IN (SELECT u FROM _td_u) AND {outside}'
                        ).fetchall()
                    }
    finally:
        con.unregister("_td_u")
    return found


def _dedup_copies(con) -> list[dict[str, Any]]:
    """Clips outside the takedown that near-duplicate dedup linked to a removed clip (``_td_clip``).

    ``dropped``: dedup dropped the clip as a copy of a removed clip, so with that clip gone no copy of the
    footage is kept (the clip is orphaned: out of builds until dedup runs again, which then keeps it).
    ``kept``: dedup dropped a removed clip in favour of this one, so builds still ship this copy.
    """
    from .dedup import REASON_PREFIX, STAGE_NAME

    n = len(REASON_PREFIX)
    rows = con.execute(
        f"""WITH d AS (
                SELECT item_id, substr(reason, {n} + 1) AS other, detail, recorded_at FROM latest_outcomes
                WHERE stage = ? AND status = 'dropped' AND starts_with(reason, ?)
            )
            SELECT 'dropped', d.item_id, d.other, d.detail, d.recorded_at FROM d
            WHERE d.other IN (SELECT id FROM _td_clip) AND d.item_id NOT IN (SELECT id FROM _td_clip)
            UNION ALL
            SELECT 'kept', d.other, d.item_id, d.detail, d.recorded_at FROM d
            WHERE d.item_id IN (SELECT id FROM _td_clip) AND d.other NOT IN (SELECT id FROM _td_clip)
            ORDER BY 2, 3, 5 DESC""",
        [STAGE_NAME, REASON_PREFIX],
    ).fetchall()
    seen: set[tuple[str, str, str]] = set()
    picked = []
    for status, clip_id, removed, detail, _at in rows:
        if (status, clip_id, removed) in seen:
            continue
        seen.add((status, clip_id, removed))
        picked.append((status, clip_id, removed, detail))
    if not picked:
        return []
    spans = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT clip_id, source_id, start_ms, end_ms FROM clips WHERE clip_id IN (SELECT unnest(?))",
            [sorted({p[1] for p in picked} | {p[2] for p in picked})],
        ).fetchall()
    }
    out = []
    for status, clip_id, removed, detail in picked:
        try:
            d = json.loads(detail or "{}")
        except ValueError:
            d = {}
        sid, start, end = spans.get(clip_id, (None, None, None))
        out.append(
            {
                "clip_id": clip_id,
                "source_id": sid,
                "start_ms": start,
                "end_ms": end,
                "dedup_status": status,
                "removed_clip_id": removed,
                "removed_source_id": spans.get(removed, (None,))[0],
                "share": d.get("share"),
                "relation": d.get("relation"),
                "note": (
                    "dropped by dedup as a copy of the removed clip: no copy of this footage is kept now; "
                    "a new dedup run keeps this one"
                    if status == "dropped"
                    else "kept by dedup instead of the removed clip: builds still ship this copy"
                ),
            }
        )
    return out


# -- journal ---------------------------------------------------------------------------------------------
def _dir(store: BlobStore, takedown_id: str) -> Path:
    return store.root / "takedowns" / takedown_id


def _save_journal(store: BlobStore, journal: dict[str, Any]) -> None:
    path = _dir(store, journal["takedown_id"]) / "journal.json"
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(journal, indent=1, default=str))


def _load_journal(store: BlobStore, takedown_id: str) -> dict[str, Any] | None:
    path = _dir(store, takedown_id) / "journal.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _takedown_id(source_ids: list[str], n: int = 0) -> str:
    h = hashlib.sha256("|".join(sorted(source_ids)).encode()).hexdigest()[:16]
    return f"td-{h}" + (f"-{n}" if n else "")


def _mark(catalog: Catalog, journal: dict[str, Any], step: str, store: BlobStore) -> None:
    journal["steps_done"].append(step)
    journal["step_times"][step] = _iso(_now())
    _save_journal(store, journal)
    with catalog.write() as con:
        con.execute(
            "UPDATE takedowns SET step = ?, status = ? WHERE takedown_id = ?",
            [step, "done" if step == STEPS[-1] else "running", journal["takedown_id"]],
        )
    _checkpoint(step, journal["takedown_id"])


# -- step 1: plan ----------------------------------------------------------------------------------------
def _dense_hashes(store: BlobStore, con, source_id: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Every-frame PDQ of the source media (while it still exists), else the catalog's frame hashes."""
    from .index import _binary_to_array

    row = con.execute("SELECT blob_uri FROM sources WHERE source_id = ?", [source_id]).fetchall()
    uri = row[0][0] if row else None
    if uri and store.exists(uri):
        from .sample import sample_file

        try:
            q = sample_file(store.path_of(uri), fps=0.0, max_frames=9000).usable(MIN_QUALITY)
            keep = _thin(q.hashes)
            return q.hashes[keep], q.times_ms[keep].astype(np.int32), "source media, every frame"
        except Exception as exc:  # unreadable media: fall back to the analysis pass's hashes
            log.warning("tombstone of %s from catalog hashes: %s", source_id, exc)
    tbl = con.sql(
        f"SELECT time_ms, pdq FROM frame_hashes WHERE source_id = ? AND quality >= {MIN_QUALITY} ORDER BY time_ms",
        params=[source_id],
    ).to_arrow_table()
    return (
        _binary_to_array(tbl.column("pdq")),
        tbl.column("time_ms").to_numpy().astype(np.int32),
        "catalog frame hashes",
    )


def _thin(hashes: np.ndarray, min_change: int = 4) -> np.ndarray:
    """Drop hashes within ``min_change`` bits of the previous kept one (static stretches)."""
    from .hashes import as_words, popcount

    if not len(hashes):
        return np.zeros(0, np.int64)
    words = as_words(hashes)
    keep = [0]
    last = words[0]
    for i in range(1, len(words)):
        if int(popcount(words[i] ^ last).sum()) > min_change:
            keep.append(i)
            last = words[i]
    return np.array(keep, np.int64)


def _next_version(con, name: str, parent: Path | str) -> int:
    n = con.execute("SELECT coalesce(max(version), 0) FROM builds WHERE name = ?", [name]).fetchall()[0][0]
    if is_url(parent):
        fs, base = filesystem(str(parent))
        fs.invalidate_cache(base)
        try:
            names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(base, detail=False)]
        except FileNotFoundError:
            names = []
    else:
        parent = Path(parent)
        names = [p.name for p in parent.iterdir()] if parent.exists() else []
    for entry in names:
        m = re.fullmatch(r"\.?v(\d+)(?:\..*)?", entry)
        if m:
            n = max(n, int(m.group(1)))
    return int(n) + 1


def segment_ranges(con, how: dict[str, Any], source_ids: list[str]) -> dict[str, list[list[int]]]:
    """Per source, the source time ranges ``[start_ms, end_ms)`` that a ``--match`` file matched (its
    segments, the spans of clips that are exact copies of the file, the whole source for an exact copy of
    it), merged. Byte-identical copies share the timeline of the source they copy."""
    rows = con.execute(
        "SELECT source_id, content_sha256, duration_ms FROM sources WHERE source_id IN (SELECT unnest(?))",
        [source_ids],
    ).fetchall()
    sha = {r[0]: r[1] for r in rows}
    duration = {r[0]: r[2] for r in rows}
    raw: dict[str, list[tuple[int, int]]] = {}
    for m in how.get("matches", []):
        sid = m["source_id"]
        r = raw.setdefault(sid, [])
        r += [(int(g["source_start_ms"]), int(g["source_end_ms"])) for g in m.get("segments", [])]
        if m.get("exact_clips"):
            r += [
                (int(a), int(b))
                for a, b in con.execute(
                    "SELECT start_ms, end_ms FROM clips WHERE clip_id IN (SELECT unnest(?))",
                    [m["exact_clips"]],
                ).fetchall()
            ]
        if m.get("exact_copy"):
            end = (
                duration.get(sid)
                or con.execute(
                    "SELECT coalesce(max(end_ms), 0) FROM clips WHERE source_id = ?", [sid]
                ).fetchall()[0][0]
            )
            r.append((0, max(int(end or 0), 1)))
    for sid in source_ids:
        if sid not in raw:
            twin = next((t for t in sorted(raw) if sha.get(t) and sha.get(t) == sha.get(sid)), None)
            raw[sid] = list(raw.get(twin, []))
    out: dict[str, list[list[int]]] = {}
    for sid in source_ids:
        merged: list[list[int]] = []
        for lo, hi in sorted(raw.get(sid, [])):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out[sid] = merged
    return out


def _clips_in(con, ranges: dict[str, list[list[int]]]) -> list[str]:
    """Clips whose span overlaps one of the ranges of their source."""
    out: set[str] = set()
    for sid, rs in ranges.items():
        for cid, start, end in con.execute(
            "SELECT clip_id, start_ms, end_ms FROM clips WHERE source_id = ?", [sid]
        ).fetchall():
            if any(start < hi and lo < end for lo, hi in rs):
                out.add(cid)
    return sorted(out)


def segment_tombstone_id(source_id: str, ranges: list[list[int]]) -> str:
    key = f"{source_id}|segment|" + ",".join(f"{a}-{b}" for a, b in ranges)
    return "tomb-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _collect(
    con, takedown_id: str, source_ids: list[str], how, reason, scope: str = "source"
) -> dict[str, Any]:
    """The plan of a takedown, read from the catalog only (no file is written): what every step removes."""
    src_rows = con.execute(
        """SELECT source_id, platform, url, uploader, title, content_sha256, blob_uri FROM sources
           WHERE source_id IN (SELECT unnest(?)) ORDER BY source_id""",
        [source_ids],
    ).fetchall()
    sources = [
        dict(
            zip(
                ("source_id", "platform", "url", "uploader", "title", "content_sha256", "blob_uri"),
                r,
                strict=True,
            )
        )
        for r in src_rows
    ]
    segment = scope == "segment"
    ranges = segment_ranges(con, how, source_ids) if segment else {}
    art = derived_artefacts(con, source_ids, _clips_in(con, ranges) if segment else None)
    thumbs = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT thumb_uri FROM clips WHERE clip_id IN (SELECT unnest(?)) AND thumb_uri IS NOT NULL",
            [art["clip_ids"]],
        ).fetchall()
    }
    builds = _plan_builds(con, art["members"])
    if segment:
        index_frames = con.execute(
            f"SELECT count(*) FROM frame_hashes WHERE clip_id IN (SELECT unnest(?)) AND quality >= {MIN_QUALITY}",
            [art["clip_ids"]],
        ).fetchall()[0][0]
    else:
        index_frames = con.execute(
            f"SELECT count(*) FROM frame_hashes WHERE source_id IN (SELECT unnest(?)) AND quality >= {MIN_QUALITY}",
            [source_ids],
        ).fetchall()[0][0]
    shared = set(art["blobs_shared"])
    hashes: list[dict[str, str]] = []
    if not segment:
        for s in sources:
            if s["content_sha256"]:
                hashes.append({"kind": "source", "sha256": s["content_sha256"], "source_id": s["source_id"]})
    for c in art["clips"]:
        if c["content_sha256"]:
            hashes.append({"kind": "clip", "sha256": c["content_sha256"], "clip_id": c["clip_id"]})
    for uri, where in art["blobs"].items():
        if segment and uri in shared:
            continue  # the source and its other clips keep it
        kind = "thumb" if uri in thumbs else "blob"
        hashes.append({"kind": kind, "sha256": uri[len(BLOB_PREFIX) :], "uri": uri, "from": ",".join(where)})
    for m in art["members"]:
        for ext in ("mp4", "json", "jpg"):
            if m.get(f"{ext}_sha256"):
                hashes.append(
                    {
                        "kind": f"member_{ext}",
                        "sha256": m[f"{ext}_sha256"],
                        "build_id": m["build_id"],
                        "member_key": m["member_key"],
                    }
                )
    tombs: list[dict[str, Any]] = []
    if segment:
        # What stays must not match the tombstone: bytes that kept members or kept rows also hold.
        kept_shas = {uri[len(BLOB_PREFIX) :] for uri in shared}
        removed_keys = {(m["build_id"], m["clip_id"]) for m in art["members"]}
        for bid, cid, *shas in con.execute(
            "SELECT build_id, clip_id, mp4_sha256, json_sha256, jpg_sha256 FROM build_members "
            "WHERE source_id IN (SELECT unnest(?))",
            [source_ids],
        ).fetchall():
            if (bid, cid) not in removed_keys:
                kept_shas |= {h for h in shas if h}
        kept_shas |= {
            r[0]
            for r in con.execute(
                "SELECT content_sha256 FROM clips WHERE source_id IN (SELECT unnest(?)) "
                "AND clip_id NOT IN (SELECT unnest(?)) AND content_sha256 IS NOT NULL",
                [source_ids, art["clip_ids"]],
            ).fetchall()
        }
        clip_src = {c["clip_id"]: c["source_id"] for c in art["clips"]}
        member_src = {(m["build_id"], m["member_key"]): m["source_id"] for m in art["members"]}

        def owner(h: dict[str, str]) -> str | None:
            if "clip_id" in h:
                return clip_src.get(h["clip_id"])
            if "member_key" in h:
                return member_src.get((h["build_id"], h["member_key"]))
            return None  # a blob of the removed rows: every segment tombstone holds it

        for s in sources:
            sid = s["source_id"]
            mine = sorted(
                {
                    (h["kind"], h["sha256"])
                    for h in hashes
                    if h["sha256"] not in kept_shas and owner(h) in (None, sid)
                }
            )
            tombs.append(
                {
                    "tombstone_id": segment_tombstone_id(sid, ranges[sid]),
                    "scope": "segment",
                    "source_id": None,
                    "of_source": sid,
                    "ranges": ranges[sid],
                    "hashes": [list(h) for h in mine],
                }
            )
    else:
        tombs = [
            {"tombstone_id": tombstone_id_for(s["source_id"]), "scope": "source", "source_id": s["source_id"]}
            for s in sources
        ]
    return {
        "takedown_id": takedown_id,
        "scope": scope,
        "reason": reason,
        "requested": how,
        "source_ids": source_ids,
        "remove_source_ids": [] if segment else list(source_ids),
        "segments": ranges,
        "sources": sources,
        "created_at": _iso(_now()),
        "artefacts": art,
        "hashes": hashes,
        "tombstones": tombs,
        "builds": builds,
        "index_frames": int(index_frames),
    }


def _plan(
    catalog: Catalog,
    store: BlobStore,
    takedown_id: str,
    source_ids: list[str],
    how,
    reason,
    scope: str = "source",
) -> dict[str, Any]:
    tdir = _dir(store, takedown_id)
    tdir.mkdir(parents=True, exist_ok=True)
    with catalog.read() as con:
        plan = _collect(con, takedown_id, source_ids, how, reason, scope)
        for t in plan["tombstones"]:
            sid = t.get("of_source") or t["source_id"]
            hashes, times, origin = _dense_hashes(store, con, sid)
            if t.get("ranges") is not None:
                keep = np.array(
                    [any(lo <= int(x) < hi for lo, hi in t["ranges"]) for x in times], bool
                ).reshape(-1)
                hashes, times = hashes[keep], times[keep]
                origin += ", the matched segments"
            f = tdir / f"pdq-{hashlib.sha256(t['tombstone_id'].encode()).hexdigest()[:12]}.npz"
            with atomic_path(f) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, hashes=hashes, times=times)
            t.update({"pdq_file": f.name, "n_pdq": int(len(hashes)), "pdq_from": origin})
    return plan


def _plan_builds(con, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_build: dict[str, list[dict[str, Any]]] = {}
    for m in members:
        by_build.setdefault(m["build_id"], []).append(m)
    if not by_build:
        return []
    out = []
    rows = con.execute(
        "SELECT build_id, name, version, purpose, status, out_dir FROM builds WHERE build_id IN (SELECT unnest(?))",
        [sorted(by_build)],
    ).fetchall()
    latest = {
        r[0]: r[1] for r in con.execute("SELECT name, max(version) FROM builds GROUP BY name").fetchall()
    }
    reserved: dict[str, int] = {}
    for build_id, name, version, purpose, status, out_dir in sorted(rows, key=lambda r: (r[1], r[2])):
        ms = by_build[build_id]
        if not is_url(out_dir) and not (Path(out_dir) / "build.json").is_file():
            # Its files cannot be rewritten from here: refused before anything is changed, rather than a
            # takedown that says "done" and leaves the shipped shards as they are.
            raise NotFoundError(
                f"the files of build {build_id} are not at {out_dir}"
                + ("" if Path(out_dir).is_absolute() else f" (a folder relative to {Path.cwd()})"),
                item=build_id,
                fix="run the takedown from the folder the build was made in, or move the build's folder back "
                "(a build records its folder absolute; one an older clipfactory made may name it relative to where "
                "that run was)",
            )
        entry = {
            "build_id": build_id,
            "name": name,
            "version": version,
            "purpose": purpose,
            "status": status,
            "out_dir": out_dir,
            "removed": [
                {
                    k: m[k]
                    for k in ("clip_id", "shard", "member_key", "mp4_sha256", "json_sha256", "jpg_sha256")
                }
                for m in ms
            ],
            "affected_shards": sorted({m["shard"] for m in ms}),
        }
        current = status != "superseded" and version == latest.get(name)
        if current:
            if is_url(out_dir):  # a build on object storage: its new version goes beside it in the bucket
                parent_url, _, leaf = str(out_dir).rstrip("/").rpartition("/")
                nv = max(_next_version(con, name, parent_url), reserved.get(name, 0) + 1)
                new_loc = f"{parent_url}/v{nv}" if re.fullmatch(r"v\d+", leaf) else f"{str(out_dir).rstrip('/')}-v{nv}"
            else:
                parent = Path(out_dir).parent
                nv = max(_next_version(con, name, parent), reserved.get(name, 0) + 1)
                new_loc = str(
                    parent / f"v{nv}" if re.fullmatch(r"v\d+", Path(out_dir).name) else Path(f"{out_dir}-v{nv}")
                )
            reserved[name] = nv
            entry.update({"new_version": nv, "new_build_id": f"{name}-v{nv}", "new_out_dir": new_loc})
        out.append(entry)
    return out


# -- step 2: tombstone -----------------------------------------------------------------------------------
def tombstone_id_for(source_id: str) -> str:
    return "tomb-" + hashlib.sha256(source_id.encode()).hexdigest()[:16]


def _write_tombstones(catalog: Catalog, store: BlobStore, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One tombstone per planned entry. A source takedown's tombstone names the source (id, URL, content
    hash) and refuses all of it; a segment takedown's holds only the matched footage (its PDQ hashes and
    the exact hashes of what was removed), so the source and its other clips are not refused."""
    tdir = _dir(store, plan["takedown_id"])
    now = _now()
    out = []
    by_id = {s["source_id"]: s for s in plan["sources"]}
    with catalog.write() as con:
        for t in plan["tombstones"]:
            segment = t.get("scope") == "segment"
            s = by_id[t.get("of_source") or t["source_id"]]
            with np.load(tdir / t["pdq_file"]) as z:
                hashes, times = z["hashes"], z["times"]
            tid = t.get("tombstone_id") or tombstone_id_for(s["source_id"])
            con.execute("DELETE FROM tombstones WHERE tombstone_id = ?", [tid])
            con.execute("DELETE FROM tombstone_hashes WHERE tombstone_id = ?", [tid])
            con.execute(
                "INSERT INTO tombstones BY NAME SELECT ? AS tombstone_id, ? AS source_id, ? AS content_sha256, ? AS pdq, "
                "? AS n_pdq, ? AS pdq_time_ms, ? AS url, ? AS uploader, ? AS reason, ? AS takedown_id, ? AS created_at",
                [
                    tid,
                    None if segment else s["source_id"],
                    None if segment else s["content_sha256"],
                    pack_many(hashes),
                    int(len(hashes)),
                    [int(x) for x in times],
                    None if segment else s["url"],
                    None if segment else s["uploader"],
                    plan["reason"],
                    plan["takedown_id"],
                    now,
                ],
            )
            if segment:
                rows = sorted({(k, h) for k, h in t.get("hashes", [])})
            else:
                mine = [h for h in plan["hashes"] if h.get("source_id") in (None, s["source_id"])]
                rows = sorted({(h["kind"], h["sha256"]) for h in mine})
            if rows:
                con.register(
                    "_td_h",
                    pa.table(
                        {
                            "tombstone_id": [tid] * len(rows),
                            "kind": [r[0] for r in rows],
                            "sha256": [r[1] for r in rows],
                        }
                    ),
                )
                try:
                    con.execute("INSERT INTO tombstone_hashes BY NAME SELECT * FROM _td_h")
                finally:
                    con.unregister("_td_h")
            entry = {
                "tombstone_id": tid,
                "scope": "segment" if segment else "source",
                "source_id": s["source_id"],
                "content_sha256": None if segment else s["content_sha256"],
                "n_pdq": int(len(hashes)),
                "pdq_from": t["pdq_from"],
                "n_hashes": len(rows),
            }
            if segment:
                entry["ranges"] = t["ranges"]
            out.append(entry)
    return out


# -- step 3: builds --------------------------------------------------------------------------------------
def _rewrite_shard(src: Path, dst: Path, removed_keys: set[str]) -> tuple[int, int]:
    """Copy a tar shard without the members of ``removed_keys``. Returns (members kept, removed)."""
    kept = removed = 0
    with atomic_path(dst) as tmp:
        with tarfile.open(src, "r") as tin, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tout:
            for info in tin:
                key = info.name.rsplit("/", 1)[-1].split(".", 1)[0]
                if key in removed_keys:
                    removed += 1
                    continue
                tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
                kept += 1
    return kept, removed


def _shards_of(out_dir: Path, manifest: dict[str, Any]) -> list[str]:
    names = [s["name"] for s in manifest.get("shards", []) if isinstance(s, dict) and "name" in s]
    if not names:
        names = sorted(p.name for p in out_dir.glob("*.tar"))
    return names


def _filter_index(src: Path, dst: Path, removed: set[str], build_id: str | None = None) -> pa.Table | None:
    if not src.exists():
        return None
    t = pq.read_table(src)
    key = "clip_id" if "clip_id" in t.column_names else ("key" if "key" in t.column_names else None)
    if key is not None:
        mask = pa.array([v not in removed for v in t.column(key).to_pylist()], pa.bool_())
        t = t.filter(mask)
    if build_id is not None and "build_id" in t.column_names:
        t = t.set_column(
            t.column_names.index("build_id"), "build_id", pa.array([build_id] * len(t), pa.string())
        )
    with atomic_path(dst) as tmp:
        pq.write_table(t, tmp)
    return t


def _new_version(b: dict[str, Any], takedown_id: str) -> dict[str, Any]:
    """Write the new version directory of a current build (complete before it appears)."""
    old_dir = Path(b["out_dir"])
    new_dir = Path(b["new_out_dir"])
    removed = {r["member_key"] for r in b["removed"]} | {r["clip_id"] for r in b["removed"]}
    removed_clips = {r["clip_id"] for r in b["removed"]}
    for p in new_dir.parent.glob(f".{new_dir.name}.takedown-*"):
        shutil.rmtree(p, ignore_errors=True)  # a partial directory of an interrupted attempt
    manifest = json.loads((old_dir / "build.json").read_text()) if (old_dir / "build.json").exists() else {}
    if new_dir.exists() and (new_dir / "build.json").exists():
        return json.loads((new_dir / "build.json").read_text())
    tmp = new_dir.parent / f".{new_dir.name}.takedown-{takedown_id}"
    tmp.mkdir(parents=True)
    shards = []
    rewritten, linked = [], 0
    for name in _shards_of(old_dir, manifest):
        src = old_dir / name
        if not src.exists():
            continue
        if name in b["affected_shards"]:
            kept, _ = _rewrite_shard(src, tmp / name, removed)
            if kept == 0:
                (tmp / name).unlink()
                rewritten.append({"name": name, "dropped": True})
                continue
            rewritten.append({"name": name})
        else:
            try:
                os.link(src, tmp / name)
            except OSError:
                shutil.copy2(src, tmp / name)
            linked += 1
        old = next(
            (s for s in manifest.get("shards", []) if isinstance(s, dict) and s.get("name") == name), {}
        )
        n = old.get("n_clips")
        if name in b["affected_shards"]:
            n = None
        shards.append(
            {"name": name, "n_clips": n, "sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
        )
    index = _filter_index(
        old_dir / manifest.get("index", "index.parquet"),
        tmp / manifest.get("index", "index.parquet"),
        removed_clips,
        b["new_build_id"],
    )
    if index is not None and "shard" in index.column_names:
        counts: dict[str, int] = {}
        for s in index.column("shard").to_pylist():
            counts[s] = counts.get(s, 0) + 1
        for s in shards:
            s["n_clips"] = counts.get(s["name"], 0)
    n_clips = sum(s["n_clips"] or 0 for s in shards)
    new = dict(manifest)
    new.update(
        {
            "build_id": b["new_build_id"],
            "version": b["new_version"],
            "supersedes": b["build_id"],
            "created_at": _iso(_now()),
            "n_clips": n_clips,
            "n_shards": len(shards),
            "shards": shards,
            "out_dir": b.get("record_out_dir") or str(new_dir),
            "status": "complete",
            "takedown": {"takedown_id": takedown_id, "removed_members": len(b["removed"])},
        }
    )
    if index is not None:
        if "source_id" in index.column_names:
            new["n_sources"] = len(set(index.column("source_id").to_pylist()))
        if "attribution" in index.column_names:
            new["attributions"] = sorted({a for a in index.column("attribution").to_pylist() if a})
    clip_docs = _clip_docs(tmp, [s["name"] for s in shards])
    credits = _credits_without(old_dir, b["name"], removed_clips, clip_docs)
    for fname, data in sorted(credits.items()):
        with atomic_write(tmp / fname, "wb") as fh:
            fh.write(data)
    from ..factory.export import ATTRIBUTION_JSON, _file_entry

    if credits:
        new["attributions"] = sorted(w["text"] for w in json.loads(credits[ATTRIBUTION_JSON])["works"])
    index_name = manifest.get("index", "index.parquet")
    files = [{"name": index_name, **_file_entry(tmp / index_name)}] if index is not None else []
    files += [{"name": n, "sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in sorted(credits.items())]
    if files or "files" in new:
        new["files"] = files
    new["content_hash"] = _build_hash(
        b["purpose"] or manifest.get("purpose"), int(manifest.get("shard_size") or 0), index, clip_docs, credits
    )
    with atomic_write(tmp / "build.json", "w") as fh:
        fh.write(json.dumps(new, indent=2, ensure_ascii=False))
    os.replace(tmp, new_dir)
    new["_rewritten"] = rewritten
    new["_linked"] = linked
    return new


def _clip_docs(out_dir: Path, shard_names: list[str]) -> dict[str, bytes]:
    """The ``<key>.json`` member of every clip in the build's shards, by key."""
    docs: dict[str, bytes] = {}
    for name in shard_names:
        path = out_dir / name
        if not path.exists():
            continue
        with tarfile.open(path, "r") as tar:
            for info in tar:
                if info.isfile() and info.name.endswith(".json"):
                    key = info.name.rsplit("/", 1)[-1][: -len(".json")]
                    fh = tar.extractfile(info)
                    if fh is not None:
                        docs[key] = fh.read()
    return docs


def _credits_without(
    old_dir: Path, name: str, removed_clips: set[str], clip_docs: dict[str, bytes]
) -> dict[str, bytes]:
    """``ATTRIBUTION.md`` and ``ATTRIBUTION.json`` of the build without ``removed_clips``, as export writes
    them for the clips that are left (``{}`` when the old version has none)."""
    from ..factory.export import ATTRIBUTION_JSON, attribution_files, work_attribution
    from ..records import SourceRecord

    path = old_dir / ATTRIBUTION_JSON
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    works = []
    for w in doc.get("works", []):
        left = [c for c in w.get("clips", []) if c["clip_id"] not in removed_clips]
        if not left:
            continue
        if len(left) == len(w.get("clips", [])):
            works.append(w)
            continue
        # Some of the work's clips leave (a segment takedown): its entry is made again from its own facts
        # and the attributions of the clips that stay, exactly as export makes it.
        source = SourceRecord(
            source_id=w["source_id"], platform="", title=w.get("title"), rights_holder=w.get("rights_holder"),
            uploader=w.get("author"), url=w.get("source_url"),
        )
        licence = {
            "license": w.get("license"),
            "name": w.get("license_name"),
            "url": w.get("license_url"),
            "note": w.get("license_note"),
            "family": w.get("license_family"),
            "attribution_required": w.get("attribution_required"),
            "share_alike": w.get("share_alike"),
        }
        clips = []
        for c in left:
            credit = (json.loads(clip_docs[c["clip_id"]]).get("attribution") if c["clip_id"] in clip_docs else None) or {}
            clips.append({**c, "text": credit.get("text", c.get("text")), "modifications": credit.get("modifications", [])})
        works.append(work_attribution(source, licence, w.get("source"), clips))
    return attribution_files(doc.get("build", name), works)


def _build_hash(
    purpose: str, shard_size: int, index: pa.Table | None, clip_docs: dict[str, bytes], credits: dict[str, bytes]
) -> str | None:
    """The build's ``content_hash`` the way export computes it: every member's hashes (the JSON member's
    without its volatile fields) and the build-level credit files."""
    from ..factory.export import _identity_sha256, content_hash

    if index is None or "clip_id" not in index.column_names:
        return None
    rows = []
    for r in sorted(index.to_pylist(), key=lambda r: r["clip_id"]):
        js = clip_docs.get(r.get("key") or r["clip_id"])
        rows.append(
            {
                "clip_id": r["clip_id"],
                "mp4_sha256": r.get("mp4_sha256"),
                "json_sha256": r.get("json_sha256"),
                "identity_sha256": _identity_sha256(js) if js is not None else None,
                "jpg_sha256": r.get("jpg_sha256"),
            }
        )
    return content_hash(purpose, shard_size, rows, {n: hashlib.sha256(d).hexdigest() for n, d in credits.items()})


def _rewrite_reports(catalog: Catalog, b: dict[str, Any], old_dir: Path) -> None:
    """The disclosure reports of the new version, and of the superseded one (which then say so)."""
    from ..disclosures import rewrite_reports

    for d in ([Path(b["new_out_dir"])] if "new_build_id" in b else []) + [old_dir]:
        if (d / "build.json").exists() and "reports" in json.loads((d / "build.json").read_text()):
            rewrite_reports(catalog, d)


def _describe_what_is_left(
    old_dir: Path, manifest: dict[str, Any], b: dict[str, Any], removed_clips: set[str]
) -> None:
    """Make the superseded version's folder and ``build.json`` say what a takedown left of it.

    Its index keeps the clips it was built with less the removed ones (what ``report --diff`` compares),
    its credit files no longer name the removed works (those of the new version, which holds the same
    clips), and ``files`` lists the hashes of the files now there. Its affected shards are gone
    (``removed_shards``), so the folder no longer holds a whole build: the hash it was built with stays as
    ``content_hash_as_built`` and ``content_hash`` is null; the build that holds the content is
    ``superseded_by``.
    """
    from ..factory.export import ATTRIBUTION_JSON, ATTRIBUTION_MD, _file_entry

    index_name = manifest.get("index", "index.parquet")
    index = _filter_index(old_dir / index_name, old_dir / index_name, removed_clips)
    new_dir = Path(b["new_out_dir"]) if "new_build_id" in b else None
    names = (ATTRIBUTION_MD, ATTRIBUTION_JSON)
    if new_dir is not None and all((new_dir / n).exists() for n in names):
        credits = {n: (new_dir / n).read_bytes() for n in names}
    else:
        left = [n for n in _shards_of(old_dir, manifest) if (old_dir / n).exists()]
        credits = _credits_without(old_dir, b["name"], removed_clips, _clip_docs(old_dir, left))
    for fname, data in sorted(credits.items()):
        if (old_dir / fname).exists():
            with atomic_write(old_dir / fname, "wb") as fh:
                fh.write(data)
    if "files" in manifest:
        kept = [f["name"] for f in manifest["files"] if (old_dir / f["name"]).exists()]
        manifest["files"] = [{"name": n, **_file_entry(old_dir / n)} for n in kept]
    manifest.setdefault("content_hash_as_built", manifest.get("content_hash"))
    manifest["content_hash"] = None
    # What is left: the shard files still there, and the clips the index still describes (the counts it
    # was built with stay apart, for `report --diff`).
    manifest.setdefault("n_clips_as_built", manifest.get("n_clips"))
    manifest.setdefault("n_shards_as_built", manifest.get("n_shards"))
    left = [n for n in _shards_of(old_dir, manifest) if (old_dir / n).exists()]
    if isinstance(manifest.get("shards"), list):
        manifest["shards"] = [sh for sh in manifest["shards"] if not isinstance(sh, dict) or sh.get("name") in left]
    manifest["n_shards"] = len(left)
    if index is not None:
        manifest["n_clips"] = index.num_rows


def _rewrite_builds(catalog: Catalog, plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for b in plan["builds"]:
        out.append(_rewrite_remote_build(catalog, plan, b) if is_url(b["out_dir"]) else _rewrite_build(catalog, plan, b))
    return out


def _rewrite_remote_build(catalog: Catalog, plan: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The takedown of a build on object storage: its files are downloaded to a temporary folder and
    rewritten there as a local build's are; the new version is uploaded (``build.json`` last) before the
    catalog records it, then the old version's rewritten files go back (``build.json`` last) and its
    affected shards are deleted from the bucket. A takedown resumed after an interruption finds a new
    version already uploaded and keeps it."""
    from ..buildfolder import MANIFEST, BuildFolder

    old_f = BuildFolder(b["out_dir"], b["build_id"])
    new_f = BuildFolder(b["new_out_dir"], b["new_build_id"]) if "new_build_id" in b else None
    with tempfile.TemporaryDirectory(prefix=".cf-takedown-") as tmp:
        old_local, new_local = Path(tmp) / "old", Path(tmp) / "new"
        old_local.mkdir()
        before = {}
        for name in old_f.names():
            if old_f.fetch(name, old_local / name):
                before[name] = sha256_file(old_local / name)
        sent: dict[str, str] = {}
        if new_f is not None and new_f.exists(MANIFEST):  # uploaded by an interrupted attempt: kept
            new_local.mkdir()
            for name in new_f.names():
                if new_f.fetch(name, new_local / name):
                    sent[name] = sha256_file(new_local / name)
        local = {**b, "out_dir": str(old_local)}
        if new_f is not None:
            local.update({"new_out_dir": str(new_local), "record_out_dir": b["new_out_dir"]})

        def publish_new() -> None:
            """Upload what of the new version changed since it was last uploaded (all of it, first)."""
            if new_f is None:
                return
            files = {p.name: sha256_file(p) for p in new_local.iterdir() if p.is_file() and not p.name.startswith(".")}
            new_f.publish(new_local, [n for n, h in files.items() if sent.get(n) != h])
            sent.update(files)

        entry = _rewrite_build(catalog, plan, b, local=local, published=publish_new)
        publish_new()  # its reports, written again once the catalog records it, and its build.json
        # The old version: its rewritten files go back, build.json last; then its removed shards go.
        changed = [
            p.name for p in old_local.iterdir()
            if p.is_file() and not p.name.startswith(".") and before.get(p.name) != sha256_file(p)
        ]
        old_f.publish(old_local, changed)
        for f in entry.get("removed_shard_files", []):
            name = Path(f["path"]).name
            old_f._call(f"delete {name}", lambda name=name: old_f.fs.rm_file(old_f._key(name)))
            f["path"] = f"{old_f.location}/{name}"
        for name in b["affected_shards"]:  # deleted by an interrupted attempt, or still in the bucket
            if old_f.exists(name):
                old_f._call(f"delete {name}", lambda name=name: old_f.fs.rm_file(old_f._key(name)))
    return entry


def _rewrite_build(
    catalog: Catalog, plan: dict[str, Any], b: dict[str, Any], *, local: dict[str, Any] | None = None, published=None
) -> dict[str, Any]:
    """The takedown of one build. ``b`` is what the catalog and the receipt record; ``local`` (default
    ``b``) names the local folders the files are rewritten in, and ``published()`` is called once the new
    version is complete there, before the catalog records it."""
    local = local or b
    old_dir = Path(local["out_dir"])
    removed_clips = {r["clip_id"] for r in b["removed"]}
    entry: dict[str, Any] = {
        "superseded": b["build_id"],
        "removed_members": len(b["removed"]),
        "affected_shards": b["affected_shards"],
    }
    if "new_build_id" in b:
        manifest = _new_version(local, plan["takedown_id"])
        if published is not None:
            published()
        with catalog.write() as con:
            have = con.execute("SELECT 1 FROM builds WHERE build_id = ?", [b["new_build_id"]]).fetchall()
            if not have:
                old = con.execute(
                    "SELECT config FROM builds WHERE build_id = ?", [b["build_id"]]
                ).fetchall()
                cfg = json.loads(old[0][0] or "{}") if old else {}
                con.register("_td_rm", pa.table({"id": pa.array(sorted(removed_clips), pa.string())}))
                try:
                    con.execute(
                        """INSERT INTO build_members BY NAME
                           SELECT ? AS build_id, clip_id, source_id, shard, member_key, mp4_sha256, json_sha256, jpg_sha256
                           FROM build_members WHERE build_id = ? AND clip_id NOT IN (SELECT id FROM _td_rm)""",
                        [b["new_build_id"], b["build_id"]],
                    )
                finally:
                    con.unregister("_td_rm")
                rows = con.execute(
                    "SELECT clip_id, mp4_sha256, json_sha256, jpg_sha256 FROM build_members WHERE build_id = ? ORDER BY clip_id",
                    [b["new_build_id"]],
                ).fetchall()
                members = [
                    dict(zip(("clip_id", "mp4_sha256", "json_sha256", "jpg_sha256"), r, strict=True))
                    for r in rows
                ]
                cfg["content_hash"] = manifest.get("content_hash")
                cfg["takedown_id"] = plan["takedown_id"]
                con.execute(
                    "INSERT INTO builds VALUES (?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?)",
                    [
                        b["new_build_id"],
                        b["name"],
                        b["new_version"],
                        b["purpose"],
                        _now(),
                        b["new_out_dir"],
                        len(members),
                        manifest.get("n_shards"),
                        b["build_id"],
                        json.dumps(cfg),
                    ],
                )
                con.execute("UPDATE builds SET status = 'superseded' WHERE build_id = ?", [b["build_id"]])
        entry.update(
            {
                "new_build_id": b["new_build_id"],
                "new_out_dir": b["new_out_dir"],
                "rewritten_shards": manifest.get("_rewritten", []),
                "linked_shards": manifest.get("_linked"),
            }
        )
    # The old version keeps no removed content: its affected shards go, its index is rewritten.
    removed_files = []
    for name in b["affected_shards"]:
        p = old_dir / name
        if p.exists():
            removed_files.append({"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size})
            p.unlink()
    manifest_path = old_dir / "build.json"
    if manifest_path.exists():
        old_manifest = json.loads(manifest_path.read_text())
        _describe_what_is_left(old_dir, old_manifest, local, removed_clips)
        with catalog.write() as con:
            con.execute(
                "UPDATE builds SET n_clips = ?, n_shards = ? WHERE build_id = ?",
                [old_manifest.get("n_clips"), old_manifest.get("n_shards"), b["build_id"]],
            )
        old_manifest["status"] = "superseded"
        if "new_build_id" in b:
            old_manifest["superseded_by"] = b["new_build_id"]
        old_manifest.setdefault("removed_shards", [])
        old_manifest["removed_shards"] = sorted(
            set(old_manifest["removed_shards"]) | set(b["affected_shards"])
        )
        old_manifest["takedowns"] = sorted(set(old_manifest.get("takedowns", [])) | {plan["takedown_id"]})
        with atomic_write(manifest_path, "w") as fh:
            fh.write(json.dumps(old_manifest, indent=2, ensure_ascii=False))
    _rewrite_reports(catalog, local, old_dir)
    entry["removed_shard_files"] = removed_files
    return entry


# -- step 4: catalog -------------------------------------------------------------------------------------
def _delete_rows(catalog: Catalog, plan: dict[str, Any]) -> dict[str, int]:
    from .index import bump_generation

    sids = plan.get("remove_source_ids", plan["source_ids"])
    cids = plan["artefacts"]["clip_ids"]
    counts: dict[str, int] = {}
    with catalog.write() as con:
        con.register("_td_src", pa.table({"id": pa.array(sids, pa.string())}))
        con.register("_td_clip", pa.table({"id": pa.array(cids, pa.string())}))
        try:
            for table, _cols, where, n in _tables_with_rows(con):
                con.execute(f'DELETE FROM "{table}" WHERE {where}')
                counts[table] = n
            n = _outcome_rows(con)
            if n:
                con.execute(
                    "DELETE FROM stage_outcomes WHERE " + _OUTCOMES_OF
                )
                counts["stage_outcomes"] = int(n)
            if counts.get("frame_hashes"):
                bump_generation(con)
            if counts.get("fp_variants"):
                from .crops import bump_variant_generation

                bump_variant_generation(con)
            if "takedown_queue" in _columns(con):
                con.execute(
                    "UPDATE takedown_queue SET status = 'done' WHERE source_id IN (SELECT id FROM _td_src) "
                    "AND coalesce(status, 'pending') = 'pending'"
                )
        finally:
            con.unregister("_td_src")
            con.unregister("_td_clip")
    return counts


# -- step 5: blobs ---------------------------------------------------------------------------------------
def _still_referenced(catalog: Catalog, uris: list[str]) -> set[str]:
    with catalog.read() as con:
        return _referenced(con, uris)


def _delete_blobs(catalog: Catalog, store: BlobStore, plan: dict[str, Any]) -> list[dict[str, Any]]:
    blobs = plan["artefacts"]["blobs"]
    keep = _still_referenced(catalog, list(blobs))
    out = []
    for uri, where in blobs.items():
        if uri in keep:
            out.append(
                {
                    "uri": uri,
                    "sha256": uri[len(BLOB_PREFIX) :],
                    "from": where,
                    "deleted": False,
                    "note": "still referenced by content outside the takedown",
                }
            )
            continue
        existed = store.delete(uri)
        out.append(
            {
                "uri": uri,
                "sha256": uri[len(BLOB_PREFIX) :],
                "from": where,
                "deleted": True,
                **({} if existed else {"note": "already gone"}),
            }
        )
    return out


# -- the whole takedown ----------------------------------------------------------------------------------
SCOPES = ("source", "segment")


def _store_of(settings, store) -> BlobStore:
    from .lookup import resolve_store

    return resolve_store(settings, store)


def _id_key(source_ids: list[str], ranges: dict[str, list[list[int]]] | None) -> list[str]:
    """What a takedown id is made of: the sources, and for a segment takedown the ranges."""
    if ranges is None:
        return list(source_ids)
    return [*source_ids, "segment:" + json.dumps(ranges, sort_keys=True)]


def _find_resumable(catalog: Catalog, key: list[str]) -> tuple[str, str | None]:
    """The takedown id for these sources: an unfinished one to resume, or a fresh one."""
    n = 0
    while True:
        tid = _takedown_id(key, n)
        row = catalog.query("SELECT status FROM takedowns WHERE takedown_id = ?", [tid])
        if not row:
            return tid, None
        if row[0]["status"] != "done":
            return tid, row[0]["status"]
        n += 1


def takedown(
    catalog: Catalog,
    settings=None,
    *,
    source_id: str | None = None,
    source_ids: list[str] | None = None,
    url: str | None = None,
    uploader: str | None = None,
    match: str | os.PathLike | None = None,
    reason: str | None = None,
    store: BlobStore | str | os.PathLike | None = None,
    queue: list[dict[str, Any]] | None = None,
    scope: str = "source",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Take down sources and everything derived from them; returns the deletion receipt (see module docs).

    ``scope="segment"`` (with ``match``) removes only the clips whose spans overlap the time ranges the
    file matched, and tombstones only that footage; the sources and their other clips stay.
    ``dry_run`` changes nothing (no catalog row, file or blob) and returns the plan: what a real run with
    the same arguments removes (:func:`plan_view`).

    Unknown ids, URLs or uploaders raise :class:`~clipfactory.errors.NotFoundError`. A source that an
    earlier takedown already removed answers with that takedown's receipt (``status: "already_done"``).
    """
    if scope not in SCOPES:
        raise ConfigError(
            f"unknown takedown scope {scope!r}", item="--scope", fix="use --scope source or segment"
        )
    if scope == "segment" and match is None:
        raise ConfigError(
            "--scope segment needs the footage to remove: a file to match",
            item="--scope segment",
            fix="name the footage with --match FILE, or take down whole sources with --scope source",
        )
    blob_store = _store_of(settings, store)
    ids_ = list(source_ids or []) + ([source_id] if source_id else [])
    request = _request_key(ids_, url, uploader, match, scope)
    pending = _unfinished(catalog, request, ids_, scope)
    if pending is not None:
        journal = _load_journal(blob_store, pending)
        if journal is not None:
            if dry_run:
                return plan_view(journal["plan"], resumes=journal["steps_done"])
            log.info("resuming takedown %s after step %s", pending, journal["steps_done"][-1:])
            return _guarded(catalog, blob_store, journal)
    if ids_:
        gone = [s for s in ids_ if not catalog.query("SELECT 1 FROM sources WHERE source_id = ?", [s])]
        if gone and len(gone) == len(ids_):
            done = _earlier_receipt(catalog, blob_store, gone)
            if done is not None:
                return done
    resolved, how = resolve_targets(
        catalog,
        source_ids=ids_ or None,
        url=url,
        uploader=uploader,
        match=match,
        settings=settings,
        store=blob_store,
        refresh=not dry_run,
    )
    how["request"] = request
    if queue:
        how["queue"] = queue
    ranges = None
    if scope == "segment":
        with catalog.read() as con:
            ranges = segment_ranges(con, how, resolved)
    tid, status = _find_resumable(catalog, _id_key(resolved, ranges))
    if dry_run:
        with catalog.read() as con:
            return plan_view(_collect(con, tid, resolved, how, reason, scope))
    journal = _load_journal(blob_store, tid) if status else None
    if journal is None:
        plan = _plan(catalog, blob_store, tid, resolved, how, reason, scope)
        journal = {"takedown_id": tid, "plan": plan, "steps_done": [], "step_times": {}, "results": {}}
        _save_journal(blob_store, journal)
        with catalog.write() as con:
            con.execute("DELETE FROM takedowns WHERE takedown_id = ?", [tid])
            con.execute(
                "INSERT INTO takedowns (takedown_id, status, step, targets, reason, journal_path, started_at) "
                "VALUES (?, 'running', NULL, ?, ?, ?, ?)",
                [
                    tid,
                    json.dumps(
                        {"source_ids": resolved, "request": request, "scope": scope, "segments": ranges},
                        default=str,
                    ),
                    reason,
                    str(_dir(blob_store, tid) / "journal.json"),
                    _now(),
                ],
            )
        _mark(catalog, journal, "plan", blob_store)
    return _guarded(catalog, blob_store, journal)


def plan_view(plan: dict[str, Any], *, resumes: list[str] | None = None) -> dict[str, Any]:
    """What a takedown removes, as a dry run reports it: the same lists (and field names) as the
    receipt's ``removed``, the builds that get a new version, the tombstones it writes."""
    art = plan["artefacts"]
    shared = set(art.get("blobs_shared", []))
    shard_files = []
    for b in plan["builds"]:
        if is_url(b["out_dir"]):
            from ..buildfolder import BuildFolder

            folder = BuildFolder(b["out_dir"], b["build_id"])
            have = set(folder.names(".tar"))
            for name in b["affected_shards"]:
                if name in have:
                    size = folder.fs.size(folder._key(name))
                    shard_files.append({"path": f"{folder.location}/{name}", "bytes": int(size)})
            continue
        for name in b["affected_shards"]:
            p = Path(b["out_dir"]) / name
            if p.exists():
                shard_files.append({"path": str(p), "bytes": p.stat().st_size})
    removed_sources = set(plan.get("remove_source_ids", plan["source_ids"]))
    out = {
        "takedown_id": plan["takedown_id"],
        "status": "dry_run",
        "scope": plan.get("scope", "source"),
        "reason": plan["reason"],
        "requested": plan["requested"],
        "source_ids": plan["source_ids"],
        "segments": plan.get("segments") or {},
        "would_remove": {
            "sources": [
                {k: v for k, v in s.items() if k != "blob_uri"}
                for s in plan["sources"]
                if s["source_id"] in removed_sources
            ],
            "catalog_rows": sum(art["tables"].values()),
            "tables": art["tables"],
            "clips": art["clips"],
            "blobs": [
                {"uri": u, "sha256": u[len(BLOB_PREFIX) :], "from": w}
                for u, w in art["blobs"].items()
                if u not in shared
            ],
            "build_members": [{"build_id": b["build_id"], **r} for b in plan["builds"] for r in b["removed"]],
            "shard_files": shard_files,
            "index_frames": plan["index_frames"],
        },
        "blobs_kept": [
            {
                "uri": u,
                "sha256": u[len(BLOB_PREFIX) :],
                "from": w,
                "note": "still referenced by content outside the takedown",
            }
            for u, w in art["blobs"].items()
            if u in shared
        ],
        "builds": [
            {
                "build_id": b["build_id"],
                "status": b["status"],
                "new_build_id": b.get("new_build_id"),
                "new_out_dir": b.get("new_out_dir"),
                "removed_members": len(b["removed"]),
                "affected_shards": b["affected_shards"],
            }
            for b in plan["builds"]
        ],
        "tombstones": [
            {
                k: v
                for k, v in {
                    "tombstone_id": t.get("tombstone_id"),
                    "scope": t.get("scope", "source"),
                    "source_id": t.get("of_source") or t.get("source_id"),
                    "ranges": t.get("ranges"),
                }.items()
                if v is not None
            }
            for t in plan["tombstones"]
        ],
        "orphaned_duplicates": art.get("orphaned_duplicates", []),
        "dedup_copies": art.get("dedup_copies", []),
        "message": "dry run: nothing was changed",
    }
    if resumes is not None:
        out["resumes"] = {"steps_done": resumes}
        out["message"] += (
            f"; an interrupted takedown of this request resumes after step {resumes[-1]}"
            if resumes
            else "; an interrupted takedown of this request resumes"
        )
    return out


def _request_key(ids_: list[str], url, uploader, match, scope: str = "source") -> dict[str, Any]:
    if ids_:
        key = {"kind": "source_id", "value": sorted(ids_)}
    elif url:
        key = {"kind": "url", "value": url}
    elif uploader:
        key = {"kind": "uploader", "value": uploader}
    elif match is not None:

        p = Path(match)
        key = {"kind": "match", "value": sha256_file(str(p)) if p.is_file() else str(p)}
    else:
        key = {"kind": "none", "value": None}
    if scope != "source":
        key["scope"] = scope
    return key


def _unfinished(
    catalog: Catalog, request: dict[str, Any], ids_: list[str], scope: str = "source"
) -> str | None:
    """An interrupted takedown of the same request (or covering the same source ids), to resume."""
    rows = catalog.query(
        "SELECT takedown_id, targets FROM takedowns WHERE status <> 'done' ORDER BY started_at DESC"
    )
    for r in rows:
        t = json.loads(r["targets"] or "{}")
        if t.get("request") == request:
            return r["takedown_id"]
        if (
            ids_
            and scope == "source"
            and t.get("scope", "source") == "source"
            and set(ids_) <= set(t.get("source_ids", []))
        ):
            return r["takedown_id"]
    return None


def _guarded(catalog: Catalog, store: BlobStore, journal: dict[str, Any]) -> dict[str, Any]:
    try:
        return _run_steps(catalog, store, journal)
    except BaseException as exc:
        with catalog.write() as con:
            con.execute(
                "UPDATE takedowns SET status = 'failed', error = ? WHERE takedown_id = ?",
                [f"{type(exc).__name__}: {exc}", journal["takedown_id"]],
            )
        raise


def _run_steps(catalog: Catalog, store: BlobStore, journal: dict[str, Any]) -> dict[str, Any]:
    plan = journal["plan"]
    res = journal["results"]
    done = set(journal["steps_done"])
    if "tombstone" not in done:
        res["tombstones"] = _write_tombstones(catalog, store, plan)
        _mark(catalog, journal, "tombstone", store)
    if "builds" not in done:
        res["builds"] = _rewrite_builds(catalog, plan)
        _mark(catalog, journal, "builds", store)
    if "catalog" not in done:
        res["catalog_rows"] = _delete_rows(catalog, plan)
        _mark(catalog, journal, "catalog", store)
    if "blobs" not in done:
        res["blobs"] = _delete_blobs(catalog, store, plan)
        _mark(catalog, journal, "blobs", store)
    if "index" not in done:
        from .index import catalog_generation, remove_sources

        removed_sources = set(plan.get("remove_source_ids", plan["source_ids"]))
        if removed_sources:
            with catalog.read() as con:
                gen = catalog_generation(con)
            remove_sources(catalog, store, removed_sources, gen)
        # A segment takedown keeps the sources' frames; frames of removed clip blobs left frame_hashes,
        # which moved the generation on, so the persisted index is rebuilt when it is next loaded.
        _mark(catalog, journal, "index", store)
    receipt = _receipt(plan, journal)
    path = _dir(store, plan["takedown_id"]) / "receipt.json"
    body = json.dumps(receipt, indent=2, default=str, ensure_ascii=False)
    with atomic_write(path, "w") as fh:
        fh.write(body)
    digest = hashlib.sha256(body.encode()).hexdigest()
    with catalog.write() as con:
        con.execute(
            "UPDATE takedowns SET status = 'done', step = 'receipt', receipt_path = ?, receipt_sha256 = ?, "
            "finished_at = ?, error = NULL WHERE takedown_id = ?",
            [str(path), digest, _now(), plan["takedown_id"]],
        )
    if "receipt" not in done:
        journal["steps_done"].append("receipt")
        journal["step_times"]["receipt"] = _iso(_now())
        _save_journal(store, journal)
    return {**receipt, "receipt_path": str(path), "receipt_sha256": digest}


def _receipt(plan: dict[str, Any], journal: dict[str, Any]) -> dict[str, Any]:
    res = journal["results"]
    art = plan["artefacts"]
    builds = res.get("builds", [])
    removed_sources = plan.get("remove_source_ids", plan["source_ids"])
    return {
        "takedown_id": plan["takedown_id"],
        "status": "done",
        "scope": plan.get("scope", "source"),
        "reason": plan["reason"],
        "requested": plan["requested"],
        "source_ids": plan["source_ids"],
        "segments": plan.get("segments") or {},
        "sources": [{k: v for k, v in s.items() if k != "blob_uri"} for s in plan["sources"]],
        "started_at": plan["created_at"],
        "finished_at": journal["step_times"].get("index") or _iso(_now()),
        "steps": journal["step_times"],
        "removed": {
            "sources": [
                {k: v for k, v in s.items() if k != "blob_uri"}
                for s in plan["sources"]
                if s["source_id"] in removed_sources
            ],
            "catalog_rows": sum(res.get("catalog_rows", {}).values()),
            "tables": res.get("catalog_rows", {}),
            "clips": art["clips"],
            "blobs": res.get("blobs", []),
            "build_members": [{"build_id": b["build_id"], **r} for b in plan["builds"] for r in b["removed"]],
            "shard_files": [f for b in builds for f in b.get("removed_shard_files", [])],
            "index_frames": plan["index_frames"],
        },
        "builds": [
            {
                "superseded": b["superseded"],
                "new_build_id": b.get("new_build_id"),
                "new_out_dir": b.get("new_out_dir"),
                "removed_members": b["removed_members"],
                "affected_shards": b["affected_shards"],
            }
            for b in builds
        ],
        "tombstones": res.get("tombstones", []),
        "hashes": plan["hashes"],
        "orphaned_duplicates": art["orphaned_duplicates"],
        "dedup_copies": art.get("dedup_copies", []),
    }


def _earlier_receipt(catalog: Catalog, store: BlobStore, source_ids: list[str]) -> dict[str, Any] | None:
    rows = catalog.query(
        """SELECT t.takedown_id, t.receipt_path FROM takedowns t
           WHERE t.status = 'done' AND t.takedown_id IN (
               SELECT takedown_id FROM tombstones WHERE source_id IN (SELECT unnest(?)))
           ORDER BY t.finished_at DESC""",
        [source_ids],
    )
    for r in rows:
        if r["receipt_path"] and Path(r["receipt_path"]).exists():
            receipt = json.loads(Path(r["receipt_path"]).read_text())
            if set(source_ids) <= set(receipt["source_ids"]):
                return {**receipt, "status": "already_done", "receipt_path": r["receipt_path"]}
    return None


def process_queue(
    catalog: Catalog,
    settings=None,
    *,
    store: BlobStore | str | os.PathLike | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Take down every pending source of ``takedown_queue`` (one takedown, one receipt, for all of them).

    Entries whose source is unknown are marked ``rejected``; those already taken down ``done``. With
    ``dry_run`` nothing changes: the answer holds the plan (``plans``) and the entries that would be
    rejected or marked done.
    """
    with catalog.read() as con:
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "takedown_queue" not in have:
            return {
                "processed": 0,
                "receipts": [],
                "rejected": [],
                "message": "no takedown queue in this catalog",
            }
        rows = con.execute(
            """SELECT q.source_id, q.reason, q.evidence, q.queued_at, s.source_id IS NOT NULL,
                      EXISTS (SELECT 1 FROM tombstones t WHERE t.source_id = q.source_id)
               FROM takedown_queue q LEFT JOIN sources s USING (source_id)
               WHERE coalesce(q.status, 'pending') = 'pending' ORDER BY q.queued_at"""
        ).fetchall()
    live = [r for r in rows if r[4]]
    rejected = [r[0] for r in rows if not r[4] and not r[5]]
    already = [r[0] for r in rows if not r[4] and r[5]]
    receipts = []
    if live:
        reasons = sorted({r[1] for r in live if r[1]})
        entries = [{"source_id": r[0], "reason": r[1], "queued_at": str(r[3])} for r in live]
        receipts.append(
            takedown(
                catalog,
                settings,
                source_ids=sorted({r[0] for r in live}),
                reason="; ".join(reasons) or None,
                store=store,
                queue=entries,
                dry_run=dry_run,
            )
        )
    if dry_run:
        return {
            "status": "dry_run",
            "processed": len(rows),
            "plans": receipts,
            "rejected": rejected,
            "already_taken_down": already,
            "message": "dry run: nothing was changed",
        }
    with catalog.write() as con:
        if rejected:
            con.execute(
                "UPDATE takedown_queue SET status = 'rejected' WHERE source_id IN (SELECT unnest(?)) "
                "AND coalesce(status, 'pending') = 'pending'",
                [rejected],
            )
        if already:
            con.execute(
                "UPDATE takedown_queue SET status = 'done' WHERE source_id IN (SELECT unnest(?)) "
                "AND coalesce(status, 'pending') = 'pending'",
                [already],
            )
    return {"processed": len(rows), "receipts": receipts, "rejected": rejected, "already_taken_down": already}


def explain_section(con, source_id: str) -> dict[str, Any] | None:
    """Tombstones, takedowns and queue entries touching ``source_id`` (for ``clipfactory explain``), or None."""
    try:
        tombs = con.execute(
            "SELECT tombstone_id, reason, takedown_id, created_at, n_pdq, content_sha256 FROM tombstones WHERE source_id = ?",
            [source_id],
        ).fetchall()
        tds = con.execute(
            """SELECT takedown_id, status, step, reason, started_at, finished_at, receipt_path FROM takedowns
               WHERE list_contains(CAST(json_extract(targets, '$.source_ids') AS VARCHAR[]), ?)
               ORDER BY started_at""",
            [source_id],
        ).fetchall()
    except Exception:  # the fingerprint tables are not there
        return None
    queue = []
    try:
        queue = con.execute(
            "SELECT reason, status, queued_at FROM takedown_queue WHERE source_id = ? ORDER BY queued_at",
            [source_id],
        ).fetchall()
    except Exception:
        queue = []
    if not tombs and not tds and not queue:
        return None
    return {
        "source_id": source_id,
        "tombstoned": bool(tombs),
        "tombstones": [
            {
                "tombstone_id": t[0],
                "reason": t[1],
                "takedown_id": t[2],
                "created_at": str(t[3]),
                "n_pdq": t[4],
                "content_sha256": t[5],
            }
            for t in tombs
        ],
        "takedowns": [
            {
                "takedown_id": t[0],
                "status": t[1],
                "step": t[2],
                "reason": t[3],
                "started_at": str(t[4]),
                "finished_at": str(t[5]) if t[5] else None,
                "receipt_path": t[6],
            }
            for t in tds
        ],
        "queue": [{"reason": q[0], "status": q[1], "queued_at": str(q[2])} for q in queue],
    }
