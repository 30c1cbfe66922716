"""Runs and outcome rows: the one writer of ``runs`` and ``stage_outcomes``.

Every run is started with :func:`start_run` and ended with :func:`finish_run`; every outcome row is built
with :func:`outcome_row` and stored with :func:`write_outcomes` (or through the Parquet parts an executor
writes with :data:`OUTCOME_SCHEMA`). A run row remembers the host and process that runs it, so a run whose
process is gone (killed, power loss) is marked ``interrupted`` by :func:`mark_interrupted`, which the next
run and ``runs list`` call.

Counts shown to users always come from outcome rows (:func:`list_runs`, :func:`run_detail`).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ..errors import NotFoundError

OUTCOME_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("stage_version", pa.int32()),
        ("config_hash", pa.string()),
        ("item_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("error_kind", pa.string()),
        ("error", pa.string()),
        ("detail", pa.string()),
        ("output_ids", pa.list_(pa.string())),
        ("attempt", pa.int32()),
        ("recorded_at", pa.timestamp("us")),
    ]
)


def now() -> datetime:
    """The catalog's timestamps are naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def outcome_row(
    run_id: str,
    stage: str,
    stage_version: int,
    config_hash: str,
    item_id: str,
    status: str,
    *,
    reason: str | None = None,
    error_kind: str | None = None,
    error: str | None = None,
    detail: str | dict | None = None,
    output_ids: Iterable[str] = (),
    attempt: int = 1,
    recorded_at: datetime | None = None,
) -> dict[str, Any]:
    if status not in ("kept", "dropped", "failed"):
        raise ValueError(f"outcome status must be kept, dropped or failed, not {status!r}")
    if isinstance(detail, dict):
        detail = json.dumps(detail, sort_keys=True)
    return {
        "run_id": run_id,
        "stage": stage,
        "stage_version": int(stage_version),
        "config_hash": config_hash,
        "item_id": item_id,
        "status": status,
        "reason": reason,
        "error_kind": error_kind,
        "error": error,
        "detail": detail,
        "output_ids": list(output_ids),
        "attempt": int(attempt),
        "recorded_at": recorded_at or now(),
    }


def outcome_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA)


def write_outcomes(con, rows: list[dict[str, Any]]) -> int:
    """Insert outcome rows inside an open write transaction (``with catalog.write() as con``)."""
    if not rows:
        return 0
    con.register("_cf_outcomes", outcome_table(rows))
    try:
        con.execute("INSERT INTO stage_outcomes BY NAME SELECT * FROM _cf_outcomes")
    finally:
        con.unregister("_cf_outcomes")
    return len(rows)


def load_outcome_part(con, path: str) -> None:
    """Insert one outcome part file written with :data:`OUTCOME_SCHEMA`."""
    load_outcome_parts(con, [path])


def load_outcome_parts(con, paths: list[str]) -> None:
    """Insert outcome part files written with :data:`OUTCOME_SCHEMA`, in one statement."""
    if paths:
        con.execute(
            "INSERT INTO stage_outcomes BY NAME SELECT * FROM read_parquet(?, union_by_name = true)", [list(paths)]
        )


# -- runs -------------------------------------------------------------------------------------------------
def _host() -> str:
    return socket.gethostname()


def start_run(con, command: str, executor: str, config: dict[str, Any] | None = None, run_id: str | None = None) -> str:
    """Insert a ``running`` run row owned by this process; returns its id."""
    from .. import __version__

    run_id = run_id or new_run_id()
    con.execute(
        """INSERT INTO runs (run_id, command, executor, started_at, finished_at, status, config,
                             clipfactory_version, host, pid)
           VALUES (?, ?, ?, ?, NULL, 'running', ?, ?, ?, ?)""",
        [run_id, command, executor, now(), json.dumps(config or {}, default=str), __version__, _host(), os.getpid()],
    )
    return run_id


def finish_run(con, run_id: str, status: str) -> None:
    if status not in ("finished", "failed", "interrupted"):
        raise ValueError(f"a run ends finished, failed or interrupted, not {status!r}")
    con.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, now(), run_id])


def record_resumed(con, run_id: str, n: int) -> None:
    """Remember how many received items earlier runs had finished: a resumed run's own outcome rows omit them."""
    con.execute("UPDATE runs SET resumed = ? WHERE run_id = ?", [int(n), run_id])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def mark_interrupted(catalog) -> list[str]:
    """Mark ``running`` runs of this host whose process is gone as ``interrupted``; returns their ids.

    Runs started on another host are left alone: their process cannot be seen from here.
    """
    rows = catalog.query("SELECT run_id, host, pid FROM runs WHERE status = 'running'")
    host = _host()
    dead = [r["run_id"] for r in rows if r["host"] == host and r["pid"] is not None and not _alive(int(r["pid"]))]
    # A run row from before runs recorded their process cannot be checked; it stays as it is.
    if dead:
        with catalog.write() as con:
            con.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = coalesce(finished_at, ?) "
                "WHERE status = 'running' AND run_id IN (SELECT unnest(?))",
                [now(), dead],
            )
    return dead


# -- reading ----------------------------------------------------------------------------------------------
def list_runs(catalog) -> list[dict[str, Any]]:
    """Runs, newest first, each with figures from its own outcome rows that add up:

    * ``last_stage``: the stage the run reached last (the one whose first outcome came last, the order of
      :func:`run_detail`), ``None`` for a run without outcome rows; ``last_stage_kept``: the items that
      stage kept, which is what the run delivered (clips exported by ``build.export``, files acquired by
      ``add``'s ``acquire.local``). An item kept by every stage is counted once, not once per stage.
    * ``dropped`` / ``failed``: the items dropped or failed at any stage, each at the stage that stopped it
      (an item dropped at one stage goes no further, so none is counted twice).
    * ``stages``: how many stages the run has outcome rows for.
    * ``resumed``, where recorded: the items the run received that earlier runs had finished (a run that
      only resumed finished work has no outcome rows: no last stage, 0 kept).
    """
    from .db import table_columns

    mark_interrupted(catalog)
    with catalog.read() as con:
        has_resumed = "resumed" in table_columns(con).get("runs", set())
    resumed = "r.resumed" if has_resumed else "NULL::BIGINT AS resumed"
    return catalog.query(
        f"""WITH per_stage AS (
               SELECT run_id, stage, min(recorded_at) AS first_at,
                      count(DISTINCT item_id) FILTER (WHERE status = 'kept') AS kept,
                      count(DISTINCT item_id) FILTER (WHERE status = 'dropped') AS dropped,
                      count(DISTINCT item_id) FILTER (WHERE status = 'failed') AS failed
               FROM stage_outcomes GROUP BY run_id, stage),
           ranked AS (
               SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY first_at DESC, stage DESC) AS rn
               FROM per_stage),
           per_run AS (
               SELECT run_id, count(*) AS stages, sum(dropped) AS dropped, sum(failed) AS failed,
                      any_value(stage) FILTER (WHERE rn = 1) AS last_stage,
                      any_value(kept) FILTER (WHERE rn = 1) AS last_stage_kept
               FROM ranked GROUP BY run_id)
           SELECT r.run_id, r.command, r.status, r.started_at, r.finished_at, {resumed},
                  coalesce(p.stages, 0) AS stages, p.last_stage,
                  coalesce(p.last_stage_kept, 0) AS last_stage_kept,
                  coalesce(p.dropped, 0)::BIGINT AS dropped, coalesce(p.failed, 0)::BIGINT AS failed
           FROM runs r LEFT JOIN per_run p USING (run_id)
           ORDER BY r.started_at DESC"""
    )


def run_detail(catalog, run_id: str) -> dict[str, Any]:
    mark_interrupted(catalog)
    run = catalog.query("SELECT run_id, command, executor, status, started_at, finished_at FROM runs WHERE run_id = ?", [run_id])
    if not run:
        raise NotFoundError("no such run", item=run_id, fix="see `clipfactory runs list`")
    # Stages in the order the run ran them (the first outcome row of each), not by name.
    counts = catalog.query(
        """WITH c AS (SELECT stage, status, coalesce(reason, error_kind) AS reason, count(*) AS n,
                             min(recorded_at) AS t
                      FROM stage_outcomes WHERE run_id = ? GROUP BY stage, status, coalesce(reason, error_kind))
           SELECT stage, status, reason, n FROM c
           ORDER BY min(t) OVER (PARTITION BY stage), stage, status, reason""",
        [run_id],
    )
    failures = catalog.query(
        """SELECT stage, item_id, error_kind, error FROM stage_outcomes
           WHERE run_id = ? AND status = 'failed' ORDER BY stage, item_id LIMIT 200""",
        [run_id],
    )
    r = run[0]
    return {
        "run_id": run_id, "status": r["status"], "command": r["command"], "executor": r["executor"],
        "started_at": r["started_at"], "finished_at": r["finished_at"], "counts": counts, "failures": failures,
    }


def record_loaded_parts(con, parts: list[tuple[str, str]]) -> None:
    """Record ``(part, run_id)`` pairs as loaded, inside the write transaction that loads them."""
    if parts:
        con.execute(
            "INSERT OR IGNORE INTO loaded_parts SELECT unnest(?), unnest(?), ?",
            [[p for p, _ in parts], [r for _, r in parts], now()],
        )
