"""Read-only views of the catalog for browsing: clips by filter, one clip in full, failures by reason, a text
search over captions and titles, and which blob a content hash names.

Every function reads; none writes. The web UI (:mod:`clipfactory.web`) shows what they return.
"""

from __future__ import annotations

import re
from typing import Any

from .db import Catalog, dict_rows, table_columns

#: Clip scores a browser may filter by range.
SCORES = (
    "sharpness",
    "motion",
    "luma",
    "aesthetic",
    "nsfw",
    "speech_ratio",
    "text_fraction",
    "black_fraction",
)
_SHA = re.compile(r"[0-9a-f]{64}")


def browse_clips(
    catalog: Catalog,
    *,
    build: str | None = None,
    dataset: str | None = None,
    license_class: str | None = None,
    purpose: str | None = None,
    drop_reason: str | None = None,
    category: str | None = None,
    scores: dict[str, tuple[float | None, float | None]] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Clips matching every filter given, by source and start: ``{"total", "clips": [...]}``.

    ``license_class`` is the effective licence class of the source's policy decision (for ``purpose``, any
    purpose when None); ``drop_reason`` a reason of the clip's (or its source's) latest dropped outcome, as
    a prefix (``quality.too_dark`` or ``quality``); ``scores`` maps a name of :data:`SCORES` to a
    ``(min, max)`` range, either end open when None. ``category`` is the content category of the clip's
    source as ``clipfactory categories`` gives it (a manifest label the taxonomy maps, else zero-shot on
    the text vectors, else ``other``)."""
    where, params = [], []
    in_category: list[str] | None = None
    if category:
        from ..semantic.categories import categorise

        in_category = [r["source_id"] for r in categorise(catalog)["rows"] if r["category"] == category]
    with catalog.read() as con:
        tables = table_columns(con)
        if build:
            where.append("c.clip_id IN (SELECT clip_id FROM build_members WHERE build_id = ?)")
            params.append(build)
        if dataset:
            where.append("c.source_id IN (SELECT source_id FROM memberships WHERE dataset = ?)")
            params.append(dataset)
        if license_class and "policy_decisions" in tables:
            where.append(
                "c.source_id IN (SELECT source_id FROM policy_decisions WHERE effective_class = ? "
                "AND (? IS NULL OR purpose = ?))"
            )
            params += [license_class, purpose, purpose]
        if drop_reason:
            where.append(
                "(c.clip_id IN (SELECT item_id FROM latest_outcomes WHERE status = 'dropped' AND starts_with(reason, ?))"
                " OR c.source_id IN (SELECT item_id FROM latest_outcomes WHERE status = 'dropped' "
                "AND starts_with(reason, ?)))"
            )
            params += [drop_reason, drop_reason]
        if in_category is not None:
            where.append("c.source_id IN (SELECT unnest(?))")
            params.append(in_category)
        for name, (lo, hi) in (scores or {}).items():
            if name not in SCORES:
                continue
            if lo is not None:
                where.append(f"c.{name} >= ?")
                params.append(float(lo))
            if hi is not None:
                where.append(f"c.{name} <= ?")
                params.append(float(hi))
        cond = " AND ".join(where) or "TRUE"
        total = con.execute(f"SELECT count(*) FROM clips c WHERE {cond}", params).fetchone()[0]
        rows = dict_rows(
            con.execute(
                f"""SELECT c.clip_id, c.source_id, c.start_ms, c.end_ms, c.blob_uri, c.thumb_uri, c.caption,
                           c.sharpness, c.motion, c.aesthetic, s.title, s.content_license
                    FROM clips c LEFT JOIN sources s USING (source_id) WHERE {cond}
                    ORDER BY c.source_id, c.start_ms LIMIT ? OFFSET ?""",
                [*params, int(limit), int(offset)],
            )
        )
    return {"total": int(total), "clips": rows}


def filter_options(catalog: Catalog) -> dict[str, list[str]]:
    """The values each filter of :func:`browse_clips` can take in this catalog."""
    with catalog.read() as con:
        tables = table_columns(con)

        def col(sql: str) -> list[str]:
            return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]

        return {
            "builds": col("SELECT build_id FROM builds ORDER BY name, version") if "builds" in tables else [],
            "datasets": col("SELECT DISTINCT dataset FROM memberships ORDER BY 1")
            if "memberships" in tables
            else [],
            "license_classes": col("SELECT DISTINCT effective_class FROM policy_decisions ORDER BY 1")
            if "policy_decisions" in tables
            else [],
            "drop_reasons": col(
                "SELECT DISTINCT split_part(reason, ':', 1) FROM latest_outcomes WHERE status = 'dropped' ORDER BY 1"
            ),
            "categories": _categories(),
            "scores": list(SCORES),
        }


def _categories() -> list[str]:
    """The taxonomy's categories and ``other`` (the packaged taxonomy, or CLIPFACTORY_TAXONOMY's)."""
    try:
        from ..semantic.categories import load_taxonomy

        tax = load_taxonomy(None)
    except Exception:  # noqa: BLE001 - without the semantic layer there is nothing to filter by
        return []
    return [*tax["categories"], tax["other"]]


def clip_detail(catalog: Catalog, clip_id: str) -> dict[str, Any] | None:
    """The clip's row, its source's title, URL and licence, and the builds that ship it; None if unknown."""
    with catalog.read() as con:
        tables = table_columns(con)
        rows = dict_rows(con.execute("SELECT * FROM clips WHERE clip_id = ?", [clip_id]))
        if not rows:
            return None
        clip = {k: v for k, v in rows[0].items() if v is not None}
        src = dict_rows(
            con.execute(
                "SELECT source_id, title, url, platform, uploader, content_license, rights_holder FROM sources "
                "WHERE source_id = ?",
                [clip["source_id"]],
            )
        )
        builds = (
            dict_rows(
                con.execute(
                    "SELECT m.build_id, m.shard, m.member_key, b.status FROM build_members m JOIN builds b "
                    "USING (build_id) WHERE m.clip_id = ? ORDER BY m.build_id",
                    [clip_id],
                )
            )
            if "build_members" in tables
            else []
        )
    return {"clip": clip, "source": src[0] if src else None, "builds": builds}


def failures_by_reason(catalog: Catalog) -> list[dict[str, Any]]:
    """Latest outcomes that dropped or failed an item, counted by stage and reason (or error kind)."""
    return catalog.query(
        """SELECT stage, status, coalesce(split_part(reason, ':', 1), error_kind, '?') AS reason, count(*) AS n
           FROM latest_outcomes WHERE status IN ('dropped', 'failed')
           GROUP BY ALL ORDER BY n DESC, stage, reason"""
    )


def text_search(catalog: Catalog, text: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Clips whose caption or transcript, or whose source's title, contains ``text`` (case-insensitive):
    the search where the catalog has no semantic vectors."""
    needle = (text or "").strip()
    if not needle:
        return []
    return catalog.query(
        """SELECT c.clip_id, c.source_id, c.start_ms, c.end_ms, c.caption, s.title, s.url
           FROM clips c LEFT JOIN sources s USING (source_id)
           WHERE contains(lower(coalesce(c.caption, '')), lower(?)) OR contains(lower(coalesce(c.transcript, '')), lower(?))
              OR contains(lower(coalesce(s.title, '')), lower(?))
           ORDER BY c.source_id, c.start_ms LIMIT ?""",
        [needle, needle, needle, int(limit)],
    )


def referenced_blob(
    catalog: Catalog, sha256: str, *, kinds: tuple[str, ...] = ("clip", "thumb")
) -> tuple[str, str] | None:
    """``(blob URI, kind)`` of ``sha256`` when the catalog references it as one of ``kinds`` (``clip``: a
    clip's media, ``thumb``: a clip's thumbnail, ``source``: a source's media), first kind first, else
    None. Anything that is not 64 lowercase hex digits is None."""
    if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
        return None
    uri = f"blob:sha256:{sha256}"
    parts = {
        "clip": "SELECT 1 FROM clips WHERE blob_uri = ?",
        "thumb": "SELECT 1 FROM clips WHERE thumb_uri = ?",
        "source": "SELECT 1 FROM sources WHERE blob_uri = ?",
    }
    with catalog.read() as con:
        for k in kinds:
            if con.execute(parts[k] + " LIMIT 1", [uri]).fetchall():
                return uri, k
    return None


def builds_with_reports(catalog: Catalog) -> list[dict[str, Any]]:
    """Every build (by name, newest version first) with the disclosure documents its ``build.json`` lists
    and that exist (``reports``: role -> file name), and its folder (``out_dir``)."""
    from ..buildfolder import BuildFolder
    from ..disclosures import REPORTS
    from ..errors import ClipfactoryError

    with catalog.read() as con:
        if "builds" not in table_columns(con):
            return []
    rows = catalog.query(
        "SELECT build_id, name, version, purpose, status, created_at, n_clips, n_shards, supersedes, out_dir "
        "FROM builds ORDER BY name, version DESC"
    )
    for r in rows:
        # a local folder or an object-store URL (``s3://…``): read through BuildFolder, never as a Path
        out = BuildFolder(r["out_dir"] or "", r["build_id"])
        try:
            m = out.manifest() or {}
            have = set(out.names()) if m.get("reports") else set()
        except (ClipfactoryError, OSError, ValueError):
            m, have = {}, set()
        r["reports"] = {
            k: v for k, v in (m.get("reports") or {}).items() if k in REPORTS and v == REPORTS[k] and v in have
        }
    return rows


def index_freshness(catalog: Catalog, store) -> dict[str, Any]:
    """What a lookup searches and how fresh it is: :func:`~clipfactory.fingerprints.index.index_status`
    and when fingerprints were last loaded (``last_indexed_at``); ``error`` when it cannot be read."""
    import duckdb

    from ..errors import ClipfactoryError
    from ..fingerprints.index import index_status

    try:
        st = index_status(catalog, store)
        with catalog.read() as con:
            row = con.execute("SELECT max(indexed_at) FROM fp_indexed").fetchone()
    except ClipfactoryError as exc:
        return {"error": exc.message}
    except duckdb.Error:  # a catalog from before the fingerprint tables, read as it is
        return {
            "error": "this catalog has no fingerprint index yet (clipfactory fingerprints index makes one)"
        }
    st["last_indexed_at"] = row[0] if row else None
    return st


__all__ = [
    "SCORES",
    "browse_clips",
    "builds_with_reports",
    "index_freshness",
    "clip_detail",
    "failures_by_reason",
    "filter_options",
    "referenced_blob",
    "text_search",
]
