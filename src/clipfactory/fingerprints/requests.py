"""Takedown requests from creators: filed on the public web page, reviewed by an operator.

A request names the work by a URL the catalog holds, or by the match of a file the creator looked up
(:func:`~clipfactory.fingerprints.lookup.lookup` with ``keep_hashes``). The file itself is never kept: the
request keeps its sha256 and its PDQ hashes only. A new request is ``pending``; an operator then

* approves it (:func:`approve_request`): the takedown of the named sources runs
  (:func:`~clipfactory.fingerprints.takedown.takedown`), and the request keeps the takedown id and receipt;
* rejects it with a reason (:func:`reject_request`);
* or asks for more information (:func:`ask_for_info`), which sets ``info_requested`` until the operator
  acts again.

Every action is a row of ``takedown_request_actions`` with who did it and when. Tables:
``catalog/schema/57_requests.sql``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..catalog import Catalog, dict_rows
from ..catalog.outcomes import now as _now
from ..errors import ConfigError, NotFoundError

STATUSES = ("pending", "info_requested", "approved", "rejected")
#: Who the requester is to the work.
RELATIONSHIPS = {
    "owner": "I own the rights to the work",
    "agent": "I act for the rights holder",
    "licensee": "I hold an exclusive licence to the work",
    "other": "another relationship (explained in the statement)",
}
#: Longest contact, statement and note accepted (characters).
MAX_TEXT = 4000
#: Lowest lookup confidence for a matched source to be named by a request (as ``takedown --match``).
MIN_CONFIDENCE = 0.5


def _text(value: str | None, name: str, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    v = (value or "").strip()
    if not v:
        if required:
            raise ConfigError(f"the {name} is empty", item=name, fix=f"fill in the {name}")
        return None
    if len(v) > limit:
        raise ConfigError(
            f"the {name} is longer than {limit} characters", item=name, fix=f"shorten the {name}"
        )
    return v


def new_request_id() -> str:
    """A random request id (``tr-`` and 16 URL-safe characters): it is the key of the status page."""
    return "tr-" + secrets.token_urlsafe(12)


def submit_request(
    catalog: Catalog,
    *,
    contact: str,
    relationship: str,
    statement: str,
    work_url: str | None = None,
    lookup_result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """File a ``pending`` request; returns it (:func:`get_request`).

    ``lookup_result`` is a lookup answer of the creator's file (made with ``keep_hashes``): its matched
    sources of confidence >= :data:`MIN_CONFIDENCE` are named, its hashes kept. ``work_url`` must name a
    source of the catalog. One of the two is needed.
    """
    from .takedown import resolve_targets

    contact = _text(contact, "contact", limit=500)
    statement = _text(statement, "statement")
    if relationship not in RELATIONSHIPS:
        raise ConfigError(
            f"unknown relationship to the work: {relationship!r}",
            item="relationship",
            fix=f"choose one of {', '.join(RELATIONSHIPS)}",
        )
    work_url = _text(work_url, "work URL", required=False, limit=2000)
    sources: set[str] = set()
    matched: dict[str, Any] = {}
    query_sha = None
    pdq: list[str] = []
    pdq_t: list[int] = []
    if lookup_result is not None:
        hits = [m for m in lookup_result.get("matches", []) if m["confidence"] >= MIN_CONFIDENCE]
        if not hits:
            raise NotFoundError(
                "the file matches no footage of the catalog, so there is nothing to take down",
                item="file",
                fix="look the file up again, or name the work by the URL the catalog holds",
            )
        sources |= {m["source_id"] for m in hits}
        q = lookup_result.get("query", {})
        query_sha = q.get("sha256")
        pdq = list(q.get("pdq") or [])
        pdq_t = [int(t) for t in q.get("pdq_time_ms") or []]
        matched["file"] = [
            {
                "source_id": m["source_id"],
                "confidence": m["confidence"],
                "segments": [
                    {
                        k: s.get(k)
                        for k in ("source_start_ms", "source_end_ms", "query_start_ms", "query_end_ms")
                    }
                    for s in m.get("segments", [])
                ],
            }
            for m in hits
        ]
    if work_url:
        ids_, how = resolve_targets(catalog, url=work_url)
        sources |= set(ids_)
        matched["url"] = {"url": work_url, "source_ids": ids_}
    if not sources:
        raise ConfigError(
            "name the work: a URL the catalog holds, or a file whose footage matched",
            item="work",
            fix="paste the work's URL, or look up the file first and file the request from its match",
        )
    rid = new_request_id()
    now = _now()
    with catalog.write() as con:
        con.execute(
            """INSERT INTO takedown_requests (request_id, status, contact, work_url, relationship, statement,
                   source_ids, query_sha256, query_pdq, query_pdq_time_ms, matched, created_at, updated_at)
               VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                rid,
                contact,
                work_url,
                relationship,
                statement,
                sorted(sources),
                query_sha,
                pdq,
                pdq_t,
                json.dumps(matched),
                now,
                now,
            ],
        )
        con.execute(
            "INSERT INTO takedown_request_actions VALUES (?, 'submitted', 'requester', NULL, NULL, ?)",
            [rid, now],
        )
    return get_request(catalog, rid)


def _row(con, request_id: str) -> dict[str, Any] | None:
    cur = con.execute(
        """SELECT request_id, status, contact, work_url, relationship, statement, source_ids, query_sha256,
                  len(query_pdq) AS n_pdq, matched, takedown_id, receipt_path, decision_note, created_at,
                  updated_at
           FROM takedown_requests WHERE request_id = ?""",
        [request_id],
    )
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if not rows:
        return None
    r = dict(zip(names, rows[0], strict=True))
    r["matched"] = json.loads(r["matched"]) if r["matched"] else {}
    r["source_ids"] = list(r["source_ids"] or [])
    return r


def _has_tables(con) -> bool:
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return "takedown_requests" in have


def get_request(catalog: Catalog, request_id: str) -> dict[str, Any]:
    """The request with its actions (oldest first), or :class:`NotFoundError`."""
    with catalog.read() as con:
        r = _row(con, request_id) if _has_tables(con) else None
        if r is None:
            raise NotFoundError("no such takedown request", item=request_id, fix="check the request id")
        cur = con.execute(
            "SELECT action, actor, note, takedown_id, acted_at FROM takedown_request_actions WHERE request_id = ? "
            "ORDER BY acted_at, action",
            [request_id],
        )
        r["actions"] = [
            dict(zip(("action", "actor", "note", "takedown_id", "at"), a, strict=True))
            for a in cur.fetchall()
        ]
    return r


def public_view(request: dict[str, Any]) -> dict[str, Any]:
    """What the requester's status page shows: no operator names, no fingerprints."""
    return {
        "request_id": request["request_id"],
        "status": request["status"],
        "created_at": request["created_at"],
        "updated_at": request["updated_at"],
        "work_url": request["work_url"],
        "relationship": request["relationship"],
        "n_sources": len(request["source_ids"]),
        "takedown_id": request["takedown_id"],
        "note": request["decision_note"] if request["status"] in ("rejected", "info_requested") else None,
    }


def list_requests(catalog: Catalog, status: str | None = None) -> list[dict[str, Any]]:
    """Requests, oldest first (``status`` filters)."""
    if status is not None and status not in STATUSES:
        raise ConfigError(
            f"unknown request status {status!r}", item="status", fix=f"use one of {', '.join(STATUSES)}"
        )
    with catalog.read() as con:
        if not _has_tables(con):
            return []
        cur = con.execute(
            """SELECT request_id, status, contact, work_url, relationship, statement, source_ids,
                      len(query_pdq) AS n_pdq, takedown_id, decision_note, created_at, updated_at
               FROM takedown_requests WHERE ? IS NULL OR status = ? ORDER BY created_at""",
            [status, status],
        )
        return dict_rows(cur)


def _open(catalog: Catalog, request_id: str) -> dict[str, Any]:
    r = get_request(catalog, request_id)
    if r["status"] not in ("pending", "info_requested"):
        raise ConfigError(
            f"takedown request {request_id} is {r['status']} already",
            item=request_id,
            fix="only pending requests (or ones waiting for information) can be decided",
        )
    return r


def _record(
    catalog: Catalog,
    request_id: str,
    *,
    status: str,
    action: str,
    actor: str,
    note: str | None,
    takedown_id: str | None = None,
    receipt_path: str | None = None,
) -> None:
    now = _now()
    with catalog.write() as con:
        con.execute(
            """UPDATE takedown_requests SET status = ?, decision_note = coalesce(?, decision_note),
                   takedown_id = coalesce(?, takedown_id), receipt_path = coalesce(?, receipt_path), updated_at = ?
               WHERE request_id = ?""",
            [status, note, takedown_id, receipt_path, now, request_id],
        )
        con.execute(
            "INSERT INTO takedown_request_actions VALUES (?, ?, ?, ?, ?, ?)",
            [request_id, action, actor, note, takedown_id, now],
        )


def approve_request(
    catalog: Catalog, settings=None, *, request_id: str, actor: str, store=None
) -> dict[str, Any]:
    """Run the takedown of the request's sources; returns ``{"request": ..., "receipt": ...}``.

    Sources that are gone already (an earlier takedown) answer with that takedown's receipt."""
    from .takedown import takedown

    actor = _text(actor, "operator name", limit=200)
    r = _open(catalog, request_id)
    receipt = takedown(
        catalog,
        settings,
        source_ids=r["source_ids"],
        reason=f"takedown request {request_id} ({r['relationship']})",
        store=store,
    )
    _record(
        catalog,
        request_id,
        status="approved",
        action="approved",
        actor=actor,
        note=None,
        takedown_id=receipt.get("takedown_id"),
        receipt_path=receipt.get("receipt_path"),
    )
    return {"request": get_request(catalog, request_id), "receipt": receipt}


def reject_request(catalog: Catalog, *, request_id: str, actor: str, reason: str) -> dict[str, Any]:
    """Reject with a reason (shown to the requester)."""
    actor = _text(actor, "operator name", limit=200)
    reason = _text(reason, "reason")
    _open(catalog, request_id)
    _record(catalog, request_id, status="rejected", action="rejected", actor=actor, note=reason)
    return get_request(catalog, request_id)


def ask_for_info(catalog: Catalog, *, request_id: str, actor: str, question: str) -> dict[str, Any]:
    """Ask the requester for more information (shown on the status page); the request stays open."""
    actor = _text(actor, "operator name", limit=200)
    question = _text(question, "question")
    _open(catalog, request_id)
    _record(catalog, request_id, status="info_requested", action="info_requested", actor=actor, note=question)
    return get_request(catalog, request_id)


__all__ = [
    "RELATIONSHIPS",
    "STATUSES",
    "approve_request",
    "ask_for_info",
    "get_request",
    "list_requests",
    "public_view",
    "reject_request",
    "submit_request",
]
