"""Fetch evidence in the catalog: loading it from outcome rows, writing it, and explaining a source.

Stages never write the catalog. ``acquire.http`` returns its evidence in ``Result.detail`` (JSON), which every
executor stores with the outcome row in ``stage_outcomes``, atomically with the outcome itself.
:func:`load_fetch_evidence` copies new details into ``fetch_attempts``, ``consent_checks``,
``host_documents`` and ``link_status`` in one write transaction and remembers what it copied
(``fetch_evidence_loaded``), so it is idempotent and catches up after a crash. ``clipfactory fetch`` and
``clipfactory sources revalidate`` call it; a pipeline that runs ``acquire.http`` itself calls it afterwards.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

STAGE = "acquire.http"

_ATTEMPT_COLS = [
    ("run_id", pa.string()),
    ("source_id", pa.string()),
    ("purpose", pa.string()),
    ("url", pa.string()),
    ("final_url", pa.string()),
    ("status_code", pa.int32()),
    ("started_at", pa.timestamp("us")),
    ("finished_at", pa.timestamp("us")),
    ("outcome", pa.string()),
    ("reason", pa.string()),
    ("response_headers", pa.string()),
    ("content_sha256", pa.string()),
    ("bytes", pa.int64()),
    ("range_start", pa.int64()),
]
_CHECK_COLS = [
    ("run_id", pa.string()),
    ("source_id", pa.string()),
    ("url", pa.string()),
    ("phase", pa.string()),
    ("signal", pa.string()),
    ("value", pa.string()),
    ("verdict", pa.string()),
    ("reason", pa.string()),
    ("evidence", pa.string()),
    ("checked_at", pa.timestamp("us")),
]
_DOC_COLS = [
    ("host", pa.string()),
    ("kind", pa.string()),
    ("url", pa.string()),
    ("fetched_at", pa.timestamp("us")),
    ("status_code", pa.int32()),
    ("state", pa.string()),
    ("note", pa.string()),
    ("body_sha256", pa.string()),
    ("body_uri", pa.string()),
    ("run_id", pa.string()),
]
_PAUSE_COLS = [
    ("host", pa.string()),
    ("url", pa.string()),
    ("why", pa.string()),
    ("set_at", pa.timestamp("us")),
    ("not_before", pa.timestamp("us")),
    ("seconds", pa.float64()),
    ("source_id", pa.string()),
    ("run_id", pa.string()),
]
_LINK_COLS = [
    ("source_id", pa.string()),
    ("status", pa.string()),
    ("checked_at", pa.timestamp("us")),
    ("reason", pa.string()),
    ("http_status", pa.int32()),
    ("url", pa.string()),
    ("content_changed", pa.bool_()),
]


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (``...Z`` or with an offset) → naive UTC ``datetime``, as the catalog stores times."""
    if value is None or isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None)
            if isinstance(value, datetime) and value.tzinfo
            else value
        )
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- link status ---------------------------------------------------------------------------------------
def link_status_of(status: str, reason: str | None) -> str:
    """Map a fetch or revalidation outcome to a link status."""
    if status == "kept":
        return "alive"
    reason = reason or ""
    if reason in ("fetch.http_404", "fetch.http_410"):
        return "gone"
    if reason.startswith("consent."):
        return "opted_out"
    if reason.startswith("policy.") or reason in (
        "fetch.http_401",
        "fetch.http_403",
        "fetch.rate_limited",
        "fetch.robots_unreachable",
    ):
        return "blocked"
    if reason in (
        "fetch.not_video",
        "fetch.too_large",
        "fetch.too_many_redirects",
        "fetch.header_too_large",
        "fetch.bad_url",
    ):
        return "invalid"
    if status == "dropped" and reason.startswith("fetch.http_4"):
        return "gone"
    return "error"


# -- rows from one fetch's evidence --------------------------------------------------------------------
def evidence_rows(
    run_id: str, source_id: str, fetch: dict[str, Any], purpose: str = "fetch"
) -> tuple[list[dict], list[dict], list[dict]]:
    """``(attempts, consent checks, host documents)`` rows from the ``fetch`` part of a detail."""
    attempts = []
    for a in fetch.get("attempts", []):
        attempts.append(
            {
                "run_id": run_id,
                "source_id": source_id,
                "purpose": purpose,
                "url": a.get("url"),
                "final_url": a.get("final_url") or a.get("url"),
                "status_code": a.get("status_code"),
                "started_at": parse_time(a.get("started_at")),
                "finished_at": parse_time(a.get("finished_at")),
                "outcome": a.get("outcome"),
                "reason": a.get("reason"),
                "response_headers": json.dumps(a["response_headers"]) if a.get("response_headers") else None,
                "content_sha256": a.get("content_sha256"),
                "bytes": a.get("bytes"),
                "range_start": a.get("range_start"),
            }
        )
    checks = []
    for ch in fetch.get("consent", []):
        checks.append(
            {
                "run_id": run_id,
                "source_id": source_id,
                "url": ch.get("url"),
                "phase": ch.get("phase"),
                "signal": ch.get("signal"),
                "value": ch.get("value"),
                "verdict": ch.get("verdict"),
                "reason": ch.get("reason"),
                "evidence": json.dumps(ch.get("evidence") or {}, sort_keys=True, default=str),
                "checked_at": parse_time(ch.get("checked_at")),
            }
        )
    docs = []
    for d in fetch.get("host_documents", []):
        docs.append(
            {
                "host": d.get("host"),
                "kind": d.get("kind"),
                "url": d.get("url"),
                "fetched_at": parse_time(d.get("fetched_at")),
                "status_code": d.get("status_code"),
                "state": d.get("state"),
                "note": d.get("note"),
                "body_sha256": d.get("body_sha256"),
                "body_uri": d.get("body_uri"),
                "run_id": run_id,
            }
        )
    return attempts, checks, docs


def pause_rows(run_id: str, source_id: str, fetch: dict[str, Any]) -> list[dict]:
    """``host_pauses`` rows (the ``Retry-After`` pauses a fetch set) from the ``fetch`` part of a detail."""
    return [
        {
            "host": p.get("host"),
            "url": p.get("url"),
            "why": p.get("why"),
            "set_at": parse_time(p.get("set_at")),
            "not_before": parse_time(p.get("not_before")),
            "seconds": p.get("seconds"),
            "source_id": source_id,
            "run_id": run_id,
        }
        for p in fetch.get("host_pauses", [])
        if p.get("host") and p.get("not_before")
    ]


def active_host_pauses(catalog_or_con, origins: list[str] | None = None) -> list[dict[str, Any]]:
    """Origins that asked us not to come back before a time still to come: ``host``, ``not_before`` (naive
    UTC), ``why``, ``url`` of the latest such pause per origin. Reads a catalog or a connection; a catalog
    older than the ``host_pauses`` table has none."""
    sql = """
        SELECT host, not_before, why, url, set_at FROM (
            SELECT *, row_number() OVER (PARTITION BY host ORDER BY not_before DESC) AS rn
            FROM host_pauses WHERE not_before > ?
        ) WHERE rn = 1"""
    params: list[Any] = [utcnow()]
    if origins is not None:
        if not origins:
            return []
        sql += " AND host IN (SELECT unnest(?))"
        params.append(sorted(set(origins)))
    sql += " ORDER BY host"
    from ..catalog import Catalog

    if isinstance(catalog_or_con, Catalog):
        with catalog_or_con.read() as con:
            return _pauses(con, sql, params)
    return _pauses(catalog_or_con, sql, params)


def _pauses(con, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    from ..catalog import has_table

    if not has_table(con, "host_pauses"):
        return []
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _insert(con, table: str, cols: list[tuple[str, pa.DataType]], rows: list[dict], *, replace: bool = False):
    if not rows:
        return
    schema = pa.schema(cols)
    t = pa.Table.from_pylist([{k: r.get(k) for k, _ in cols} for r in rows], schema=schema)
    name = f"_cf_{table}"
    con.register(name, t)
    try:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)


def write_evidence(
    con,
    *,
    attempts: list[dict] = (),  # type: ignore[assignment]
    checks: list[dict] = (),  # type: ignore[assignment]
    documents: list[dict] = (),  # type: ignore[assignment]
    links: list[dict] = (),  # type: ignore[assignment]
    pauses: list[dict] = (),  # type: ignore[assignment]
) -> None:
    """Insert evidence rows (inside the caller's write transaction)."""
    _insert(con, "host_pauses", _PAUSE_COLS, list(pauses))
    _insert(con, "fetch_attempts", _ATTEMPT_COLS, list(attempts))
    _insert(con, "consent_checks", _CHECK_COLS, list(checks))
    _insert(con, "host_documents", _DOC_COLS, list(documents))
    if links:
        # One row per source: the latest check wins.
        latest: dict[str, dict] = {}
        for row in links:
            prev = latest.get(row["source_id"])
            if prev is None or (row["checked_at"] or datetime.min) >= (prev["checked_at"] or datetime.min):
                latest[row["source_id"]] = row
        _insert(con, "link_status", _LINK_COLS, list(latest.values()), replace=True)


def _pending_outcomes(con, source_id: str | None = None) -> list[tuple]:
    sql = """
        SELECT o.run_id, o.item_id, o.recorded_at, o.status, o.reason, o.detail
        FROM stage_outcomes o
        WHERE o.stage = ? AND o.detail IS NOT NULL
          AND NOT EXISTS (
            SELECT 1 FROM fetch_evidence_loaded l
            WHERE l.run_id = o.run_id AND l.item_id = o.item_id AND l.recorded_at = o.recorded_at)
    """
    params: list[Any] = [STAGE]
    if source_id is not None:
        sql += " AND o.item_id = ?"
        params.append(source_id)
    return con.execute(sql + " ORDER BY o.recorded_at", params).fetchall()


def mark_loaded(con, markers: list[dict[str, Any]]) -> None:
    """Record outcome rows (``run_id``, ``item_id``, ``recorded_at``) as loaded into the evidence tables,
    so that a later load skips them."""
    _insert(
        con,
        "fetch_evidence_loaded",
        [("run_id", pa.string()), ("item_id", pa.string()), ("recorded_at", pa.timestamp("us"))],
        markers,
    )


def load_fetch_evidence(con) -> dict[str, int]:
    """Copy the evidence of ``acquire.http`` outcomes not loaded yet. Call inside ``catalog.write()``."""
    rows = _pending_outcomes(con)
    attempts: list[dict] = []
    checks: list[dict] = []
    docs: list[dict] = []
    links: list[dict] = []
    pauses: list[dict] = []
    markers = []
    for run_id, item_id, recorded_at, status, reason, detail in rows:
        markers.append({"run_id": run_id, "item_id": item_id, "recorded_at": recorded_at})
        try:
            fetch = json.loads(detail).get("fetch") or {}
        except (ValueError, AttributeError):
            continue
        a, c, d = evidence_rows(run_id, item_id, fetch)
        attempts += a
        checks += c
        docs += d
        pauses += pause_rows(run_id, item_id, fetch)
        links.append(
            {
                "source_id": item_id,
                "status": link_status_of(status, reason),
                "checked_at": recorded_at,
                "reason": reason,
                "http_status": fetch.get("http_status"),
                "url": fetch.get("final_url") or fetch.get("url"),
                "content_changed": None,
            }
        )
    write_evidence(con, attempts=attempts, checks=checks, documents=docs, links=links, pauses=pauses)
    mark_loaded(con, markers)
    return {
        "outcomes": len(markers),
        "attempts": len(attempts),
        "consent_checks": len(checks),
        "host_documents": len(docs),
        "host_pauses": len(pauses),
    }


def recent_host_documents(catalog, ttl_s: float) -> list[dict[str, Any]]:
    """The latest robots.txt/tdmrep.json per origin fetched within ``ttl_s`` and readable."""
    since = utcnow() - timedelta(seconds=ttl_s)
    return catalog.query(
        """
        SELECT host, kind, fetched_at, status_code, body_uri FROM (
            SELECT *, row_number() OVER (PARTITION BY host, kind ORDER BY fetched_at DESC) AS rn
            FROM host_documents WHERE fetched_at >= ? AND state <> 'unreachable'
        ) WHERE rn = 1
        """,
        [since],
    )


# -- explain ---------------------------------------------------------------------------------------------
def _rows(con, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        d = dict(zip(names, row, strict=True))
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
            elif k in ("response_headers", "evidence") and isinstance(v, str):
                try:
                    d[k] = json.loads(v)
                except ValueError:
                    pass
        out.append(d)
    return out


def explain_section(con, source_id: str) -> dict[str, Any] | None:
    """Everything acquisition knows about a source, for ``clipfactory explain``; ``None`` when nothing.

    Works on a read-only connection. Evidence of outcomes not loaded into the tables yet is read from
    the outcome rows directly (flagged ``"pending_load": true``).
    """
    attempts = _rows(
        con,
        """SELECT run_id, purpose, url, final_url, status_code, started_at, finished_at, outcome, reason,
                  content_sha256, bytes, range_start, response_headers
           FROM fetch_attempts WHERE source_id = ? ORDER BY started_at DESC LIMIT 50""",
        [source_id],
    )
    checks = _rows(
        con,
        """SELECT run_id, url, phase, signal, value, verdict, reason, evidence, checked_at
           FROM consent_checks WHERE source_id = ? ORDER BY checked_at DESC LIMIT 100""",
        [source_id],
    )
    pending = False
    for run_id, _item, _at, _status, _reason, detail in _pending_outcomes(con, source_id):
        try:
            fetch = json.loads(detail).get("fetch") or {}
        except (ValueError, AttributeError):
            continue
        a, c, _d = evidence_rows(run_id, source_id, fetch)
        for row in a + c:
            for k, v in list(row.items()):
                if isinstance(v, datetime):
                    row[k] = v.isoformat()
                elif k in ("response_headers", "evidence") and isinstance(v, str):
                    row[k] = json.loads(v)
        attempts = a + attempts
        checks = c + checks
        pending = True
    link = _rows(con, "SELECT * FROM link_status WHERE source_id = ?", [source_id])
    queue = _rows(
        con,
        "SELECT reason, status, queued_at, evidence FROM takedown_queue WHERE source_id = ? ORDER BY queued_at",
        [source_id],
    )
    hosts = sorted({_origin(a.get("url")) for a in attempts if a.get("url")})
    documents: list[dict[str, Any]] = []
    if hosts:
        placeholders = ", ".join("?" for _ in hosts)
        documents = _rows(
            con,
            f"""SELECT host, kind, url, fetched_at, status_code, state, note, body_sha256, body_uri FROM (
                    SELECT *, row_number() OVER (PARTITION BY host, kind ORDER BY fetched_at DESC) AS rn
                    FROM host_documents WHERE host IN ({placeholders})
                ) WHERE rn = 1 ORDER BY host, kind""",
            hosts,
        )
    pauses = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p.items()}
        for p in active_host_pauses(con, hosts)
    ]
    if not (attempts or checks or link or queue):
        return None
    denials = [c for c in checks if c.get("verdict") == "deny"]
    return {
        "link_status": link[0] if link else None,
        "denials": denials,
        "attempts": attempts,
        "consent_checks": checks,
        "host_documents": documents,
        "host_pauses": pauses,  # origins that asked us to come back later, still in force
        "takedown_queue": queue,
        "pending_load": pending,
    }


def _origin(url: str) -> str:
    from .http import origin_of

    return origin_of(url)[0]


__all__ = [
    "active_host_pauses",
    "evidence_rows",
    "explain_section",
    "link_status_of",
    "load_fetch_evidence",
    "parse_time",
    "pause_rows",
    "recent_host_documents",
    "write_evidence",
]
