"""Link health: per dataset, how many web sources are alive, gone, opted out or blocked.

Reads ``link_status`` (written by fetches and revalidations), ``memberships`` and ``takedown_queue``. A web
source is one with a URL; one never fetched nor revalidated counts as ``unchecked``.
"""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog
from .evidence import load_fetch_evidence

STATUSES = ("alive", "gone", "opted_out", "blocked", "invalid", "error", "unchecked")


def link_health(catalog: Catalog, *, load_pending: bool = True) -> dict[str, Any]:
    """``{"datasets": [{dataset, sources, alive, gone, ..., takedown_pending}], "total": {...}}``.

    Sources in no dataset are reported under ``(none)``. ``load_pending`` first loads fetch evidence that
    a run left in its outcome rows (one short write; skipped where the catalog is read-only).
    """
    if load_pending and catalog.writable:
        with catalog.write() as con:
            load_fetch_evidence(con)
    rows = catalog.query(
        """
        WITH web AS (SELECT source_id FROM sources WHERE url IS NOT NULL),
        member AS (
            SELECT w.source_id, coalesce(m.dataset, '(none)') AS dataset
            FROM web w LEFT JOIN memberships m ON m.source_id = w.source_id
        ),
        pending AS (SELECT DISTINCT source_id FROM takedown_queue WHERE status = 'pending')
        SELECT mb.dataset,
               coalesce(l.status, 'unchecked') AS status,
               count(*) AS n,
               count(p.source_id) AS queued
        FROM member mb
        LEFT JOIN link_status l ON l.source_id = mb.source_id
        LEFT JOIN pending p ON p.source_id = mb.source_id
        GROUP BY ALL ORDER BY 1, 2
        """
    )
    by_ds: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {"sources": 0, **{s: 0 for s in STATUSES}, "takedown_pending": 0}
    for r in rows:
        d = by_ds.setdefault(
            r["dataset"],
            {"dataset": r["dataset"], "sources": 0, **{s: 0 for s in STATUSES}, "takedown_pending": 0},
        )
        d[r["status"]] = d.get(r["status"], 0) + r["n"]
        d["sources"] += r["n"]
        d["takedown_pending"] += r["queued"]
    distinct = catalog.query(
        """SELECT coalesce(l.status, 'unchecked') AS status, count(*) AS n,
                  count(*) FILTER (WHERE s.source_id IN (SELECT source_id FROM takedown_queue WHERE status = 'pending')) AS queued
           FROM sources s LEFT JOIN link_status l ON l.source_id = s.source_id
           WHERE s.url IS NOT NULL GROUP BY ALL"""
    )
    for r in distinct:  # a source in two datasets counts once in the total
        total[r["status"]] = total.get(r["status"], 0) + r["n"]
        total["sources"] += r["n"]
        total["takedown_pending"] += r["queued"]
    for d in by_ds.values():
        d["alive_share"] = round(d["alive"] / d["sources"], 4) if d["sources"] else None
    total["alive_share"] = round(total["alive"] / total["sources"], 4) if total["sources"] else None
    return {"datasets": list(by_ds.values()), "total": total}


__all__ = ["link_health", "STATUSES"]
