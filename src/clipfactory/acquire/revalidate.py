"""Revalidation: are fetched sources still there, and do their owners still consent?

For each source (of one build, or every fetched web source) the fetcher re-runs the checks it ran when it
downloaded: the Spawning Do-Not-Train registry (with an API key; one query for all the sources), platform
terms, robots.txt, tdmrep.json, then a conditional ``GET`` (``If-None-Match`` / ``If-Modified-Since`` with
the validators of the copy we hold) whose headers are checked for ``X-Robots-Tag``, ``tdm-reservation`` and
``Content-Usage``. The body is never read.

Outcomes become ``link_status`` rows: ``alive`` (304, or 200 with ``content_changed`` noted), ``gone``
(404/410), ``opted_out`` (a consent denial, a Spawning opt-out included), ``blocked`` (403, 429, platform
terms, robots.txt unreachable) or ``error``. Gone and opted-out sources are queued in ``takedown_queue``
(once while pending) with their evidence; the takedown itself is done elsewhere. Network work comes first,
then one write transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from ..catalog import Catalog
from ..catalog.outcomes import new_run_id
from ..errors import NotFoundError
from ..records import SourceRecord
from ..storage import BlobStore
from .driver import policy_settings
from .evidence import evidence_rows, link_status_of, load_fetch_evidence, utcnow, write_evidence
from .http import Fetcher, FetchOptions, LoopThread, default_platform_check

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


def _validators(catalog: Catalog, sources: list[SourceRecord]) -> dict[str, dict[str, str]]:
    """ETag/Last-Modified of the response each held copy came from."""
    if not sources:
        return {}
    rows = catalog.query(
        """SELECT source_id, content_sha256, response_headers FROM (
               SELECT *, row_number() OVER (PARTITION BY source_id, content_sha256 ORDER BY finished_at DESC) AS rn
               FROM fetch_attempts WHERE content_sha256 IS NOT NULL) WHERE rn = 1"""
    )
    held = {s.source_id: s.content_sha256 for s in sources}
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        if r["source_id"] not in held or held[r["source_id"]] not in (None, r["content_sha256"]):
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
    platform_check: Any = None,
    transport: Any = None,
) -> dict[str, Any]:
    """Re-check availability and consent of fetched sources; mark link status and queue takedowns."""
    catalog = Catalog(settings.catalog)
    with catalog.write() as con:
        load_fetch_evidence(con)
    sources = select_fetched(catalog, build=build, limit=limit)
    validators = _validators(catalog, sources)
    options = FetchOptions(**settings.stage_config("acquire.http"))
    check = platform_check or default_platform_check(SimpleNamespace(**policy_settings(settings)))
    store = BlobStore(settings.store) if settings.store else None
    run_id = "revalidate-" + new_run_id()
    loop = LoopThread("cf-revalidate")
    try:

        async def work():
            async with Fetcher(options, store, platform_check=check, transport=transport) as f:
                outs = await _revalidate_all(f, sources, validators)
                return outs, dict(f.stats)

        outcomes, stats = loop.run(work())
    finally:
        loop.close()
    now = utcnow()
    attempts, checks, docs, links, queue, items = [], [], [], [], [], []
    for src, out in zip(sources, outcomes, strict=True):
        ev = out.evidence.to_dict() if out.evidence else {}
        a, c, d = evidence_rows(run_id, src.source_id, ev, purpose="revalidate")
        attempts += a
        checks += c
        docs += d
        status = link_status_of(out.status, out.reason)
        links.append(
            {
                "source_id": src.source_id,
                "status": status,
                "checked_at": now,
                "reason": out.reason,
                "http_status": out.http_status,
                "url": out.final_url or src.url,
                "content_changed": out.content_changed,
            }
        )
        item = {
            "source_id": src.source_id,
            "status": status,
            "reason": out.reason,
            "http_status": out.http_status,
            "content_changed": out.content_changed,
        }
        items.append(item)
        if status in QUEUE_STATUSES:
            denial = [x for x in c if x["verdict"] == "deny"]
            queue.append(
                {
                    "source_id": src.source_id,
                    "reason": out.reason,
                    "evidence": json.dumps(
                        {
                            "run_id": run_id,
                            "url": src.url,
                            "final_url": out.final_url,
                            "http_status": out.http_status,
                            "link_status": status,
                            "denial": [{k: x[k] for k in ("signal", "value", "evidence")} for x in denial],
                            "blob_uri": src.blob_uri,
                            "content_sha256": src.content_sha256,
                        },
                        default=str,
                    ),
                    "queued_at": now,
                }
            )
    with catalog.write() as con:
        write_evidence(con, attempts=attempts, checks=checks, documents=docs, links=links)
        queued = _enqueue(con, queue)
    counts: dict[str, int] = {}
    for it in items:
        counts[it["status"]] = counts.get(it["status"], 0) + 1
    return {
        "run_id": run_id,
        "build": build,
        "checked": len(sources),
        "counts": dict(sorted(counts.items())),
        "content_changed": sum(1 for it in items if it["content_changed"]),
        "queued_for_takedown": queued,
        "requests": stats.get("requests", 0),
        "host_documents_fetched": {
            "robots.txt": stats.get("host_doc.robots.txt", 0),
            "tdmrep.json": stats.get("host_doc.tdmrep.json", 0),
        },
        "items": items,
    }


async def _revalidate_all(
    fetcher: Fetcher, sources: list[SourceRecord], validators: dict[str, dict[str, str]]
):
    import asyncio

    await fetcher.prefetch_spawning(s.url for s in sources)  # batched registry queries, not one per source
    return list(await asyncio.gather(*(fetcher.revalidate(s, validators.get(s.source_id)) for s in sources)))


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


__all__ = ["revalidate_sources", "select_fetched", "takedown_queue"]
