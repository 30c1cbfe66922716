"""Read-only views of what ingest recorded: datasets, sources, errors."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog
from ..errors import NotFoundError


def list_datasets(catalog: Catalog) -> list[dict[str, Any]]:
    """One row per dataset: format, registry key, manifests, sources, spans (with times), captions, bad rows,
    ingest times."""
    return catalog.query(
        """WITH mf AS (SELECT dataset, count(*) AS manifests, sum(rows_total) AS rows_total,
                              sum(rows_bad) AS rows_bad FROM manifests GROUP BY dataset),
                mb AS (SELECT dataset, count(*) AS sources, sum(n_spans) AS spans FROM memberships GROUP BY dataset),
                cp AS (SELECT dataset, count(caption) AS captions FROM clip_spans GROUP BY dataset)
           SELECT d.dataset, d.format, d.registry_key, coalesce(mf.manifests, 0) AS manifests,
                  coalesce(mb.sources, 0) AS sources, coalesce(mb.spans, 0) AS spans,
                  coalesce(cp.captions, 0) AS captions,
                  coalesce(mf.rows_total, 0) AS rows_total, coalesce(mf.rows_bad, 0) AS rows_bad,
                  d.first_ingested_at, d.last_ingested_at
           FROM datasets d LEFT JOIN mf USING (dataset) LEFT JOIN mb USING (dataset) LEFT JOIN cp USING (dataset)
           ORDER BY d.dataset"""
    )


def _require_dataset(catalog: Catalog, dataset: str) -> None:
    if not catalog.scalar("SELECT count(*) FROM datasets WHERE dataset = ?", [dataset]):
        known = [r["dataset"] for r in catalog.query("SELECT dataset FROM datasets ORDER BY dataset")]
        raise NotFoundError(
            "no such dataset in the catalog",
            item=dataset,
            fix=f"datasets are: {', '.join(known)}" if known else "ingest a manifest first",
        )


def list_sources(
    catalog: Catalog, *, dataset: str | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Sources (optionally of one dataset) with the datasets that list each, in source id order."""
    params: list[Any] = []
    where = ""
    if dataset:
        _require_dataset(catalog, dataset)
        where = "WHERE s.source_id IN (SELECT source_id FROM memberships WHERE dataset = ?)"
        params.append(dataset)
    lim = f"LIMIT {int(limit)}" if limit else ""
    return catalog.query(
        f"""SELECT s.source_id, s.platform, s.platform_id, s.url, s.title, s.duration_ms, s.content_license,
                   s.blob_uri, list(m.dataset ORDER BY m.dataset) AS datasets
            FROM (SELECT * FROM sources s {where} ORDER BY source_id {lim}) s
            LEFT JOIN memberships m USING (source_id)
            GROUP BY ALL ORDER BY s.source_id""",
        params,
    )


def count_sources(catalog: Catalog, *, dataset: str | None = None) -> int:
    if dataset:
        _require_dataset(catalog, dataset)
        return int(catalog.scalar("SELECT count(*) FROM memberships WHERE dataset = ?", [dataset]))
    return int(catalog.scalar("SELECT count(*) FROM sources"))


def list_errors(
    catalog: Catalog, *, dataset: str | None = None, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Rows that ingest could not read, in file and line order."""
    params: list[Any] = []
    where = ""
    if dataset:
        where = "WHERE dataset = ?"
        params.append(dataset)
    lim = f"LIMIT {int(limit)}" if limit else ""
    return catalog.query(
        f"""SELECT dataset, uri, line, pointer, reason, raw FROM ingest_errors {where}
            ORDER BY uri, line NULLS LAST, pointer {lim}""",
        params,
    )
