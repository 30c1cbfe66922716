"""``explain``: everything the catalog knows about one source, and why the gate decided what it did.

The core sections come from the policy gate: the source record, its memberships, every licence on its
lineage (content terms and annotation terms kept apart), and the decision for each purpose with its
reasons in words. Other subsystems add their own sections through :data:`SECTION_PROVIDERS`: each entry is
``"module:function"``, the function is called as ``fn(con, source_id)`` inside a read-only connection and
returns a dict (or ``None`` for nothing to say). A provider whose module or function does not exist
(yet) is skipped. Providers of :data:`CATALOG_SECTION_PROVIDERS` are called as ``fn(catalog, source_id)``
once that connection is closed.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from typing import Any

from .catalog import Catalog, dict_rows, has_table, load_records
from .errors import NotFoundError
from .ids import url_source_id, youtube_source_id
from .records import SourceRecord

log = logging.getLogger(__name__)

#: ``module:function`` providers of extra sections, each keyed in the output by ``module`` without the
#: ``clipfactory.`` prefix (``acquire.evidence``, ``fingerprints.takedown``, ``build.export``).
SECTION_PROVIDERS = [
    "clipfactory.acquire.evidence:explain_section",
    "clipfactory.fingerprints.takedown:explain_section",
    "clipfactory.factory.export:explain_section",
    "clipfactory.fingerprints.dedup:explain_section",
]

#: ``module:function`` providers called as ``fn(catalog, source_id)`` after the read-only connection is
#: closed, for sections that read the catalog themselves (the source's content category and its scores).
CATALOG_SECTION_PROVIDERS = [
    "clipfactory.semantic.categories:explain_section",
]

#: What each reason means, by its namespace (the part before ``:``).
REASON_TEXT = {
    "dedup.restricted_copy": "the clip's footage matches a copy the purpose may not use; footage carries the most restrictive licence known for any copy of it, whatever licence this copy states",
    "dedup.near_duplicate_of": "the clip is a near-duplicate of a kept clip (the same footage, another copy)",
    "policy.license_noncommercial": "a licence on the lineage is non-commercial or academic-only, which this purpose does not accept",
    "policy.license_unspecified": "a licence on the lineage grants no use (all rights reserved or no licence stated), which this purpose does not accept",
    "policy.license_unknown": "a licence on the lineage is unknown or not yet classified (academic-only until someone classifies it)",
    "policy.attribution_required": "a licence requires attribution, which this purpose does not accept",
    "policy.share_alike_required": "a licence requires share-alike, which this purpose does not accept",
    "policy.dataset_withdrawn": "the dataset was withdrawn; withdrawn datasets are denied in every build",
    "policy.no_redistribution": "the dataset's terms forbid distribution, and a build is a distribution",
    "policy.dataset_denied": "the purpose profile refuses this dataset",
    "policy.platform_denied": "the purpose profile refuses this platform",
    "policy.needs_review": "the dataset's terms need legal review before use",
    "policy.platform_unknown": "the registry does not know this platform's terms; register it to decide",
    "policy.evaluation_set": "the source belongs to an evaluation set of the build (decontamination)",
    "policy.platform_terms_no_permission": "the platform's terms forbid downloading, and no written permission is recorded",
}


def describe_reason(reason: str) -> str:
    head, _, arg = reason.partition(":")
    text = REASON_TEXT.get(head, reason)
    return f"{text} ({arg})" if arg else text


def _candidates(text: str) -> list[str]:
    candidates: list[str] = [text]
    yt = youtube_source_id(text)
    if yt:
        candidates.append(yt)
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        candidates.append(f"sha256:{text.lower()}")
    if "://" in text or text.startswith("www."):
        candidates.append(url_source_id(text if "://" in text else "https://" + text))
    return candidates


def resolve_source_id(con, text: str) -> str | None:
    """The source id for an id or any URL spelling, or ``None`` when the catalog has no such source."""
    text = (text or "").strip()
    if not text:
        return None
    candidates = _candidates(text)
    for c in candidates:
        rows = con.execute("SELECT source_id FROM sources WHERE source_id = ?", [c]).fetchall()
        if rows:
            return rows[0][0]
    rows = con.execute(
        "SELECT source_id FROM sources WHERE url = ? OR origin_uri = ? ORDER BY source_id LIMIT 1",
        [text, text],
    ).fetchall()
    return rows[0][0] if rows else None


def _rows(con, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    return dict_rows(con.execute(sql, params))


def _sections(con, source_id: str, providers: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in SECTION_PROVIDERS if providers is None else providers:
        module, _, func = spec.partition(":")
        name = module.removeprefix("clipfactory.")
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError):
            continue
        try:
            section = fn(con, source_id)
        except Exception as exc:  # noqa: BLE001 - one subsystem's failure must not hide the others
            log.warning("explain section %s failed: %s", name, exc)
            section = {"error": f"{type(exc).__name__}: {exc}"}
        if section is not None:
            out[name] = section
    return out


def explain_source(
    catalog: Catalog, source: str, *, purpose: str | None = None, settings: Any = None
) -> dict[str, Any]:
    """Explain one source (an id or any URL spelling) for ``purpose``, or for every profile.

    Raises :class:`NotFoundError` when the catalog has no such source.
    """
    from .policy.gate import decide_source, policy_hash, registry_keys
    from .policy.permissions import load_permissions
    from .policy.profiles import load_policy

    policy = load_policy(settings)
    purposes = [purpose] if purpose else sorted(policy.profiles)
    for p in purposes:
        policy.profile(p)  # unknown purpose -> PolicyError before reading the catalog

    with catalog.read() as con:
        sid = resolve_source_id(con, source)
        if sid is None and has_table(con, "tombstones") and (source or "").strip():
            gone = con.execute(
                """SELECT source_id, takedown_id, reason, created_at FROM tombstones
                   WHERE source_id IN (SELECT unnest(?)) ORDER BY created_at DESC LIMIT 1""",
                [_candidates(source.strip())],
            ).fetchall()
            if gone:
                g_sid, td, why, at = gone[0]
                raise NotFoundError(
                    f"taken down by {td or 'a takedown'} on {str(at)[:19]}"
                    + (f" ({why})" if why else "")
                    + ": only its tombstone is left, which refuses the same footage if it comes back",
                    item=g_sid,
                    fix="see the takedown's receipt; `clipfactory lookup FILE` says which takedown removed footage",
                )
        if sid is None:
            raise NotFoundError(
                "no such source in the catalog",
                item=source,
                fix="give a source id (youtube:<id>, sha256:<hex>, url:<hash>) or a URL of an ingested source",
            )
        record = load_records(con, SourceRecord, [sid])[0]
        memberships: list[dict[str, Any]] = []
        if has_table(con, "memberships"):
            memberships = _rows(
                con,
                "SELECT * FROM memberships WHERE source_id = ? ORDER BY dataset, split",
                [sid],
            )
        keys = registry_keys(con)
        stored: list[dict[str, Any]] = []
        if has_table(con, "policy_decisions"):
            stored = _rows(con, "SELECT * FROM policy_decisions WHERE source_id = ? ORDER BY purpose", [sid])
        sections = _sections(con, sid)
    sections.update(_sections(catalog, sid, CATALOG_SECTION_PROVIDERS))

    mem_names = [m["dataset"] if not m.get("split") else f"{m['dataset']}:{m['split']}" for m in memberships]
    permissions = load_permissions(settings)
    decisions: dict[str, Any] = {}
    lineage: dict[str, Any] | None = None
    for p in purposes:
        d = decide_source(record, mem_names, p, settings=settings, registry_keys=keys)
        lineage = lineage or d.lineage
        decisions[p] = {
            "decision": d.decision,
            "use_ok": d.use_ok,
            "acquire_ok": d.acquire_ok,
            "effective_class": d.effective_class,
            "attribution": d.attribution,
            "share_alike": d.share_alike,
            "reasons": list(d.reasons),
            "why": [describe_reason(r) for r in d.reasons],
            "policy_hash": d.policy_hash,
            "evaluation_sets": d.lineage.get("evaluation_sets", []),
        }

    stored_out: dict[str, Any] = {}
    for row in stored:
        current = None
        if row["purpose"] in policy.profiles:
            current = row["policy_hash"] == policy_hash(policy, permissions, row["purpose"])
        stored_out[row["purpose"]] = {
            "decision": row["decision"],
            "reasons": list(row["reasons"] or []),
            "effective_class": row["effective_class"],
            "policy_hash": row["policy_hash"],
            "current_policy": current,
            "decided_at": row["decided_at"],
        }

    lineage = lineage or {}
    return {
        "source_id": sid,
        "query": source,
        "source": {k: v for k, v in record.to_row().items() if v is not None},
        "memberships": memberships,
        "licenses": {
            "content": (lineage.get("content") or {}).get("terms", []),
            "annotations": [
                {
                    "dataset": a["dataset"],
                    "chain": a.get("chain", []),
                    "terms": a.get("terms", []),
                    **({"flags": a["flags"]} if a.get("flags") else {}),
                    **({"registered": False} if not a.get("registered", True) else {}),
                }
                for a in lineage.get("annotations", [])
            ],
        },
        "acquisition": lineage.get("acquisition"),
        "decisions": decisions,
        "stored_decisions": stored_out,
        "sections": json.loads(json.dumps(sections, default=str)),
    }


__all__ = ["CATALOG_SECTION_PROVIDERS", "SECTION_PROVIDERS", "REASON_TEXT", "describe_reason", "explain_source", "resolve_source_id"]
