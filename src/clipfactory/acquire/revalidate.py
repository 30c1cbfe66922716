"""Revalidation: are fetched sources still there, and do their owners still consent?

For each source (of one build, or every fetched web source) the stage ``acquire.revalidate`` re-runs the
checks the fetcher ran when it downloaded: the Spawning Do-Not-Train registry (with an API key; one query per
batch of sources), platform terms, robots.txt, tdmrep.json, then a conditional ``GET`` (``If-None-Match`` /
``If-Modified-Since`` with the validators of the copy we hold) whose headers are checked for
``X-Robots-Tag``, ``tdm-reservation`` and ``Content-Usage``. The body is never read.

:func:`revalidate_sources` is one ``revalidate`` run (a ``runs`` row, one outcome row per source stored by
the executor with the evidence in its detail). :func:`load_revalidation` then turns the outcome rows into
evidence rows (purpose ``revalidate``, with the run id) and ``link_status`` rows: ``alive`` (304, or 200 with
``content_changed`` noted), ``gone`` (404/410), ``opted_out`` (a consent denial, a Spawning opt-out
included), ``blocked`` (403, 429, platform terms, robots.txt unreachable) or ``error``. Gone and opted-out
sources are queued in ``takedown_queue`` (once while pending) with their evidence; the takedown itself is
done elsewhere. Outcome rows a crashed revalidation left are loaded by the next one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import NotFoundError
from ..records import SourceRecord
from .driver import host_documents_fetched, policy_settings
from .evidence import (
    evidence_rows,
    link_status_of,
    load_fetch_evidence,
    mark_loaded,
    parse_time,
    pause_rows,
    write_evidence,
)

STAGE = "acquire.revalidate"
QUEUE_STATUSES = ("gone", "opted_out")


def select_fetched(
    catalog: Catalog, *, build: str | None = None, limit: int | None = None
) -> list[SourceRecord]:
    """Fetched web sources (a URL and a blob), of one build (by id or name) when given."""
    params: list[Any] = []
    if build is None:
        sql = "SELECT s.* FROM sources s WHERE s.url IS NOT NULL AND s.blob_uri IS NOT NULL ORDER BY s.source_id"
    else:
        rows = catalog.query(
            "SELECT build_id FROM builds WHERE build_id = ? OR name = ? ORDER BY version DESC", [build, build]
        )
        if not rows:
            raise NotFoundError(
                "no such build", item=build, fix="see the builds in the catalog (build id or name)"
            )
        ids = [r["build_id"] for r in rows]
        if rows[0]["build_id"] != build:
            ids = ids[:1]  # a name means its latest version
        sql = f"""SELECT s.* FROM sources s WHERE s.url IS NOT NULL AND s.source_id IN (
                    SELECT source_id FROM build_members WHERE build_id IN ({", ".join("?" for _ in ids)}))
                  ORDER BY s.source_id"""
        params += ids
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [SourceRecord.from_row(r) for r in catalog.query(sql, params)]


def held_validators(catalog_path: str | None, sources: list[SourceRecord]) -> dict[str, dict[str, str]]:
    """ETag/Last-Modified/Content-Length of the response each held copy came from (read-only)."""
    if not sources or not catalog_path or not Path(catalog_path).exists():
        return {}
    held = {s.source_id: s.content_sha256 for s in sources}
    rows = Catalog(catalog_path).query(
        """SELECT source_id, content_sha256, response_headers FROM (
               SELECT *, row_number() OVER (PARTITION BY source_id, content_sha256 ORDER BY finished_at DESC) AS rn
               FROM fetch_attempts
               WHERE content_sha256 IS NOT NULL AND source_id IN (SELECT unnest(?))) WHERE rn = 1""",
        [list(held)],
    )
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        if held[r["source_id"]] not in (None, r["content_sha256"]):
            continue
        try:
            headers = json.loads(r["response_headers"] or "{}")
        except ValueError:
            continue
        v = {}
        if isinstance(headers.get("etag"), str):
            v["etag"] = headers["etag"]
        if isinstance(headers.get("last-modified"), str):
            v["last_modified"] = headers["last-modified"]
        if isinstance(headers.get("content-length"), str):
            v["content_length"] = headers["content-length"]
        out[r["source_id"]] = v
    return out


def revalidate_sources(
    settings: Any,
    *,
    build: str | None = None,
    limit: int | None = None,
    progress: Any = None,
    platform_check: Any = None,
    transport: Any = None,
) -> dict[str, Any]:
    """Re-check availability and consent of fetched sources; mark link status and queue takedowns.

    One ``revalidate`` run of the stage ``acquire.revalidate``, whose options are those of
    ``[acquire.http]`` with ``[acquire.revalidate]`` over them.
    """
    from ..pipelines import Run
    from ..stages.acquire.revalidate import RevalidateStage

    catalog = Catalog(settings.catalog)
    with catalog.write() as con:
        load_fetch_evidence(con)
        load_revalidation(con)  # what a crashed earlier revalidation left in its outcome rows
    sources = select_fetched(catalog, build=build, limit=limit)
    config = {**settings.stage_config("acquire.http"), **settings.stage_config(RevalidateStage.name)}
    with Run(settings, command="revalidate", catalog=catalog, progress=progress, workers=1) as run:
        stage = RevalidateStage(
            config,
            run.context(policy_settings=policy_settings(settings)),
            platform_check=platform_check,
            transport=transport,
        )
        # The fetcher retries 429/5xx/timeouts itself with Retry-After; executor retries would multiply them.
        run.stage(stage, sources, retries=1)
        with catalog.write() as con:
            loaded = load_revalidation(con)
    stats = stage.last_stats
    mine = {it["source_id"]: it for it in loaded["items"] if it["run_id"] == run.run_id}
    items = [
        {k: v for k, v in mine[s.source_id].items() if k != "run_id"} for s in sources if s.source_id in mine
    ]
    counts: dict[str, int] = {}
    for it in items:
        counts[it["status"]] = counts.get(it["status"], 0) + 1
    return {
        "run_id": run.run_id,
        "build": build,
        "checked": len(sources),
        "counts": dict(sorted(counts.items())),
        "content_changed": sum(1 for it in items if it["content_changed"]),
        "queued_for_takedown": [q for q in loaded["queued"] if q in mine],
        "requests": stats.get("requests", 0),
        "host_documents_fetched": host_documents_fetched(stats),
        "items": items,
    }


def load_revalidation(con) -> dict[str, Any]:
    """Turn ``acquire.revalidate`` outcome rows not loaded yet into evidence rows (purpose ``revalidate``),
    ``link_status`` rows and takedown queue entries. Call inside ``catalog.write()``; idempotent.

    Returns ``{"items": [...], "queued": [source ids queued now], "attempts": n, "consent_checks": n}``.
    """
    rows = con.execute(
        """SELECT o.run_id, o.item_id, o.recorded_at, o.status, o.reason, o.detail
           FROM stage_outcomes o
           WHERE o.stage = ? AND o.detail IS NOT NULL
             AND NOT EXISTS (
               SELECT 1 FROM fetch_evidence_loaded l
               WHERE l.run_id = o.run_id AND l.item_id = o.item_id AND l.recorded_at = o.recorded_at)
           ORDER BY o.recorded_at, o.item_id""",
        [STAGE],
    ).fetchall()
    attempts, checks, docs, links, queue, items, markers = [], [], [], [], [], [], []
    pauses: list[dict] = []
    for run_id, source_id, recorded_at, outcome, reason, detail in rows:
        markers.append({"run_id": run_id, "item_id": source_id, "recorded_at": recorded_at})
        try:
            rv = json.loads(detail).get("revalidate") or {}
        except (ValueError, AttributeError):
            continue
        a, c, d = evidence_rows(run_id, source_id, rv, purpose="revalidate")
        pauses += pause_rows(run_id, source_id, rv)
        attempts += a
        checks += c
        docs += d
        status = link_status_of(outcome, reason)
        checked_at = parse_time(rv.get("checked_at")) or recorded_at
        links.append(
            {
                "source_id": source_id,
                "status": status,
                "checked_at": checked_at,
                "reason": reason,
                "http_status": rv.get("http_status"),
                "url": rv.get("final_url") or rv.get("url"),
                "content_changed": rv.get("content_changed"),
            }
        )
        items.append(
            {
                "run_id": run_id,
                "source_id": source_id,
                "status": status,
                "reason": reason,
                "http_status": rv.get("http_status"),
                "content_changed": rv.get("content_changed"),
            }
        )
        if status in QUEUE_STATUSES:
            held = rv.get("held") or {}
            denial = [x for x in c if x["verdict"] == "deny"]
            queue.append(
                {
                    "source_id": source_id,
                    "reason": reason,
                    "evidence": json.dumps(
                        {
                            "run_id": run_id,
                            "url": rv.get("url"),
                            "final_url": rv.get("final_url"),
                            "http_status": rv.get("http_status"),
                            "link_status": status,
                            "denial": [{k: x[k] for k in ("signal", "value", "evidence")} for x in denial],
                            "blob_uri": held.get("blob_uri"),
                            "content_sha256": held.get("content_sha256"),
                        },
                        default=str,
                    ),
                    "queued_at": checked_at,
                }
            )
    write_evidence(con, attempts=attempts, checks=checks, documents=docs, links=links, pauses=pauses)
    queued = _enqueue(con, queue)
    mark_loaded(con, markers)
    return {"items": items, "queued": queued, "attempts": len(attempts), "consent_checks": len(checks)}


def _enqueue(con, rows: list[dict[str, Any]]) -> list[str]:
    """Queue sources for takedown unless already pending; returns the ids queued now."""
    queued = []
    for r in rows:
        pending = con.execute(
            "SELECT count(*) FROM takedown_queue WHERE source_id = ? AND status = 'pending'", [r["source_id"]]
        ).fetchall()[0][0]
        if pending:
            continue
        con.execute(
            "INSERT INTO takedown_queue (source_id, reason, evidence, queued_at) VALUES (?, ?, ?, ?)",
            [r["source_id"], r["reason"], r["evidence"], r["queued_at"]],
        )
        queued.append(r["source_id"])
    return queued


def takedown_queue(catalog: Catalog, status: str | None = "pending") -> list[dict[str, Any]]:
    """The takedown queue (pending entries by default)."""
    sql = "SELECT source_id, reason, status, queued_at, evidence FROM takedown_queue"
    params: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    rows = catalog.query(sql + " ORDER BY queued_at, source_id", params)
    for r in rows:
        if isinstance(r["queued_at"], datetime):
            r["queued_at"] = r["queued_at"].isoformat()
    return rows


__all__ = ["held_validators", "load_revalidation", "revalidate_sources", "select_fetched", "takedown_queue"]
