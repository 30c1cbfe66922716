"""Counts derived from outcome rows (never counted by hand)."""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .errors import NotFoundError


def list_runs(catalog: Catalog) -> list[dict[str, Any]]:
    return catalog.query(
        """SELECT r.run_id, r.command, r.status, r.started_at, r.finished_at,
                  count(o.item_id) FILTER (WHERE o.status = 'kept') AS kept,
                  count(o.item_id) FILTER (WHERE o.status = 'dropped') AS dropped,
                  count(o.item_id) FILTER (WHERE o.status = 'failed') AS failed
           FROM runs r LEFT JOIN stage_outcomes o USING (run_id)
           GROUP BY ALL ORDER BY r.started_at DESC"""
    )


def run_detail(catalog: Catalog, run_id: str) -> dict[str, Any]:
    if not catalog.query("SELECT 1 FROM runs WHERE run_id = ?", [run_id]):
        raise NotFoundError("no such run", item=run_id, fix="see `clipfactory runs list`")
    counts = catalog.query(
        """SELECT stage, status, coalesce(reason, error_kind) AS reason, count(*) AS n
           FROM stage_outcomes WHERE run_id = ? GROUP BY ALL ORDER BY stage, status, reason""",
        [run_id],
    )
    failures = catalog.query(
        """SELECT stage, item_id, error_kind, error FROM stage_outcomes
           WHERE run_id = ? AND status = 'failed' ORDER BY stage, item_id LIMIT 200""",
        [run_id],
    )
    return {"run_id": run_id, "counts": counts, "failures": failures}
