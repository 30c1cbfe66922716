"""``clipfactory fetch``: run ``acquire.http`` over the catalog's web sources that have no blob yet.

The stage never writes the catalog; the executor stores each outcome row (with the evidence in its
``detail``) and the fetched records, then :func:`fetch_sources` loads the evidence into the fetch tables in
one write transaction.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from ..catalog import Catalog
from ..records import SourceRecord
from .evidence import STAGE, active_host_pauses, load_fetch_evidence
from .http import iso_utc, origin_of


def policy_settings(settings: Any) -> dict[str, Any]:
    """The parts of the settings the policy gate reads, as a picklable dict for the stage context."""
    keys = ("permissions_file", "policy_file", "registry_file", "purpose")
    return {k: getattr(settings, k, None) for k in keys}


def select_unfetched(
    catalog: Catalog, *, dataset: str | None = None, limit: int | None = None
) -> list[SourceRecord]:
    """Sources with a URL and no blob, optionally of one dataset, in source id order."""
    sql = "SELECT s.* FROM sources s WHERE s.url IS NOT NULL AND s.blob_uri IS NULL"
    params: list[Any] = []
    if dataset is not None:
        sql += " AND s.source_id IN (SELECT source_id FROM memberships WHERE dataset = ?)"
        params.append(dataset)
    sql += " ORDER BY s.source_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [SourceRecord.from_row(r) for r in catalog.query(sql, params)]


def fetch_sources(
    settings: Any,
    *,
    dataset: str | None = None,
    limit: int | None = None,
    progress: Any = None,
    platform_check: Any = None,
    transport: Any = None,
) -> dict[str, Any]:
    """Fetch the web sources that have no blob yet; returns counts by outcome and reason.

    Settings come from :func:`clipfactory.config.load_settings`; the stage's options from its
    ``[acquire.http]`` section.
    """
    from ..errors import NotFoundError
    from ..pipelines import Run

    catalog = Catalog(settings.catalog)
    with catalog.write() as con:
        caught_up = load_fetch_evidence(con)  # evidence a crashed earlier run left in outcome rows
    if dataset is not None:
        known = catalog.query(
            "SELECT 1 FROM datasets WHERE dataset = ? UNION ALL SELECT 1 FROM memberships WHERE dataset = ? LIMIT 1",
            [dataset, dataset],
        )
        if not known:
            raise NotFoundError(
                "no such dataset in the catalog", item=dataset, fix="see `clipfactory datasets list`"
            )
    sources = select_unfetched(catalog, dataset=dataset, limit=limit)
    with Run(settings, command="fetch", catalog=catalog, progress=progress, workers=1) as run:
        stage, summary = fetch_stage_run(run, sources, platform_check=platform_check, transport=transport)
    loaded = summary.pop("_loaded")
    st = summary["summary"]
    stats = stage.last_stats
    reasons = run_reasons(catalog, run.run_id, [s.source_id for s in sources])
    origins = sorted({origin_of(s.url)[0] for s in sources if s.url and urlsplit(s.url).hostname})
    paused = [
        {
            "origin": p["host"],
            "not_before": iso_utc(p["not_before"].replace(tzinfo=UTC).timestamp()),
            "why": p["why"],
            "url": p["url"],
        }
        for p in active_host_pauses(catalog, origins)
    ]
    return {
        "run_id": run.run_id,
        "selected": len(sources),
        "kept": st.kept if st else 0,
        "dropped": st.dropped if st else 0,
        "failed": st.failed if st else 0,
        "skipped": st.skipped if st else 0,
        "reasons": reasons,
        "paused_origins": paused,
        "requests": stats.get("requests", 0),
        "retries": stats.get("retries", 0),
        "bytes": stats.get("bytes", 0),
        "host_documents_fetched": host_documents_fetched(stats),
        "spawning_queries": {
            "requests": stats.get("spawning.requests", 0),
            "retries": stats.get("spawning.retries", 0),
            "errors": stats.get("spawning.errors", 0),
        },
        "evidence_loaded": {k: loaded[k] + caught_up[k] for k in loaded},
    }


def run_reasons(catalog: Catalog, run_id: str, item_ids: list[str]) -> dict[str, int]:
    """Counts by reason of the outcomes ``run_id`` recorded at ``acquire.http`` for ``item_ids``, read from
    the outcome rows as the ``run`` summary and ``explain`` do: a failure counts under its own reason
    (``fetch.rate_limited``), and only one without a reason under ``failed.<kind>``."""
    if not item_ids:
        return {}
    rows = catalog.query(
        """SELECT reason, count(*) AS n FROM (
               SELECT arg_max(coalesce(reason, CASE WHEN status = 'failed' THEN 'failed.' || error_kind END),
                              recorded_at) AS reason
               FROM stage_outcomes
               WHERE run_id = ? AND stage = ? AND item_id IN (SELECT unnest(?)) AND status <> 'kept'
               GROUP BY item_id)
           WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason""",
        [run_id, STAGE, list(dict.fromkeys(item_ids))],
    )
    return {r["reason"]: int(r["n"]) for r in rows}


def host_documents_fetched(stats: dict[str, int]) -> dict[str, int]:
    """How many times a run's fetcher fetched robots.txt and tdmrep.json (from its ``stats``)."""
    return {
        "robots.txt": stats.get("host_doc.robots.txt", 0),
        "tdmrep.json": stats.get("host_doc.tdmrep.json", 0),
    }


def fetch_stage_run(run: Any, sources: list[SourceRecord], *, platform_check: Any = None, transport: Any = None):
    """Run ``acquire.http`` over ``sources`` inside ``run`` and load its evidence into the fetch tables.

    Returns ``(stage, {"outputs": [...], "summary": StageSummary, "_loaded": counts})``.
    """
    from ..stages.acquire.http import HttpFetchStage

    stage = HttpFetchStage(
        run.settings.stage_config(HttpFetchStage.name),
        run.context(policy_settings=policy_settings(run.settings)),
        platform_check=platform_check,
        transport=transport,
    )
    # The stage retries 429/5xx/timeouts itself with Retry-After; executor retries would multiply attempts.
    done = run.stage(stage, sources, retries=1)
    with run.catalog.write() as con:
        loaded = load_fetch_evidence(con)
    return stage, {"outputs": done.outputs, "summary": done.summary, "_loaded": loaded}


__all__ = [
    "fetch_sources",
    "fetch_stage_run",
    "host_documents_fetched",
    "policy_settings",
    "run_reasons",
    "select_unfetched",
]
