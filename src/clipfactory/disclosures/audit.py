"""Composition and bias audit of a build, and the difference between two builds.

:func:`audit` gives the shares of a build by dataset, source domain, uploader (the top 20 and a
concentration index), language, region, category and year, and warns where one uploader or domain holds
more than ``max_share`` of the hours. :func:`diff` says which clips and sources entered and left between
two builds, and why: a takedown, a policy decision, a new source, or the run's own filters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..catalog import Catalog, dict_rows
from . import facts_for, opened_build
from .facts import UNKNOWN

#: Audit dimensions: (name, facts key, the key of the value in each row).
DIMENSIONS = [
    ("dataset", "datasets", "name"),
    ("domain", "domains", "domain"),
    ("uploader", "uploaders", "uploader"),
    ("language", "languages", "language"),
    ("category", "categories", "category"),
    ("year", "years", "year"),
]


def audit(
    catalog: Catalog,
    settings,
    build: str,
    *,
    max_share: float | None = None,
    statements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The composition of ``build`` (a build id or folder, local or on object storage) as shares of its hours, with warnings above
    ``max_share`` (default: ``max_share`` of the statements, else 0.2)."""
    with opened_build(catalog, build) as (_folder, out_dir, manifest):
        f = facts_for(catalog, settings, manifest, out_dir, statements=statements)
    limit = float(max_share) if max_share is not None else f["max_share"]
    dims: dict[str, list[dict[str, Any]]] = {}
    for name, key, col in DIMENSIONS:
        dims[name] = [
            {
                "value": r.get(col) if r.get(col) is not None else UNKNOWN,
                "clips": int(r.get("clips") or 0),
                "hours": round(float(r.get("hours") or 0), 6),
                "share": round(float(r.get("share") or 0), 6),
            }
            for r in f[key]
        ]
    # The catalog records no region for any source: every clip is in the unknown region.
    dims["region"] = (
        [
            {
                "value": UNKNOWN,
                "clips": f["totals"]["n_clips"],
                "hours": round(f["totals"]["hours"], 6),
                "share": 1.0,
            }
        ]
        if f["totals"]["n_clips"]
        else []
    )
    warnings = []
    for name in ("uploader", "domain"):
        for r in dims[name]:
            if r["value"] != UNKNOWN and r["share"] > limit:
                warnings.append(
                    {
                        "dimension": name,
                        "value": r["value"],
                        "share": r["share"],
                        "max_share": limit,
                        "message": f"{name} {r['value']} holds {100 * r['share']:.1f}% of the hours, above {100 * limit:.1f}%",
                    }
                )
    return {
        "build_id": manifest.get("build_id"),
        "n_clips": f["totals"]["n_clips"],
        "hours": round(f["totals"]["hours"], 6),
        "n_uploaders": f["n_uploaders"],
        "uploader_hhi": f["uploader_hhi"],
        "n_domains": f["n_domains"],
        "domain_hhi": f["domain_hhi"],
        "max_share": limit,
        "dimensions": dims,
        "warnings": warnings,
    }


def diff(catalog: Catalog, build_a: str, build_b: str) -> dict[str, Any]:
    """What entered and left between ``build_a`` and ``build_b`` (ids or folders), and why."""
    with opened_build(catalog, build_a) as (_fa, dir_a, ma), opened_build(catalog, build_b) as (_fb, dir_b, mb):
        return _diff(catalog, dir_a, ma, dir_b, mb)


def _diff(catalog: Catalog, dir_a: Path, ma: dict[str, Any], dir_b: Path, mb: dict[str, Any]) -> dict[str, Any]:
    from .facts import load_members

    refused_a = {r["source_id"]: r.get("reason") for r in ma.get("refused_sources") or []}
    refused_b = {r["source_id"]: r.get("reason") for r in mb.get("refused_sources") or []}
    with catalog.read() as con:
        load_members(con, _index(dir_a, ma), name="_cfd_a")
        load_members(con, _index(dir_b, mb), name="_cfd_b")
        try:
            have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            left = _by_source(con, "_cfd_a", "_cfd_b")
            entered = _by_source(con, "_cfd_b", "_cfd_a")
            tomb = {}
            if "tombstones" in have:
                tomb = {
                    r[0]: {"takedown_id": r[1], "reason": r[2]}
                    for r in con.execute("SELECT source_id, takedown_id, reason FROM tombstones").fetchall()
                }
            decisions = {}
            if "policy_decisions" in have and mb.get("purpose"):
                decisions = {
                    r[0]: (r[1], list(r[2] or []))
                    for r in con.execute(
                        "SELECT source_id, decision, reasons FROM policy_decisions WHERE purpose = ?",
                        [mb["purpose"]],
                    ).fetchall()
                }
            known = set()
            if "sources" in have:
                ids = [r["source_id"] for r in entered + left]
                if ids:
                    known = {
                        r[0]
                        for r in con.execute(
                            "SELECT source_id FROM sources WHERE source_id IN (SELECT unnest(?)) "
                            "AND TRY_CAST(acquired_at AS TIMESTAMP) <= TRY_CAST(? AS TIMESTAMP)",
                            [ids, str(ma.get("created_at") or "").replace("Z", "")],
                        ).fetchall()
                    }
            counts = con.execute(
                "SELECT (SELECT count(*) FROM _cfd_a), (SELECT count(*) FROM _cfd_b)"
            ).fetchone()
        finally:
            con.execute("DROP TABLE IF EXISTS _cfd_a")
            con.execute("DROP TABLE IF EXISTS _cfd_b")
    takedowns_b = {(mb.get("takedown") or {}).get("takedown_id")} - {None}
    for r in left:
        sid = r["source_id"]
        if not r["whole_source"]:
            r["why"] = "some of its clips left: the run's filters or spans changed"
            if takedowns_b:
                r["why"] = "a segment takedown removed some of its clips"
        elif sid in tomb:
            r["why"] = f"takedown {tomb[sid]['takedown_id']}" + (
                f": {tomb[sid]['reason']}" if tomb[sid]["reason"] else ""
            )
        elif sid in refused_b:
            r["why"] = f"policy: {refused_b[sid]}"
        elif sid in decisions and decisions[sid][0] != "allow":
            r["why"] = "policy: " + (", ".join(decisions[sid][1]) or decisions[sid][0])
        else:
            r["why"] = "not selected, or its clips were dropped, in the run of the later build"
    for r in entered:
        sid = r["source_id"]
        if not r["whole_source"]:
            r["why"] = "more of its clips entered: the run's filters or spans changed"
        elif sid in refused_a:
            r["why"] = f"policy change: refused before ({refused_a[sid]})"
        elif sid not in known:
            r["why"] = "new source, acquired after the earlier build"
        else:
            r["why"] = "selected in the run of the later build"
    # A takedown rewrites the superseded version's index without the removed clips: they are counted
    # from its build.json, and the works are not named again.
    built = ma.get("n_clips_as_built") or ma.get("n_clips") or counts[0]
    gone = int(built) - int(counts[0])
    if gone > 0:
        ids = sorted(set(ma.get("takedowns") or []))
        left.append(
            {
                "source_id": None,
                "clips": gone,
                "seconds": None,
                "whole_source": None,
                "why": f"takedown {', '.join(ids) or UNKNOWN}: removed from both versions; the works are not named",
            }
        )
    return {
        "from": ma.get("build_id"),
        "to": mb.get("build_id"),
        "clips_before": int(built),
        "clips_after": int(counts[1]),
        "clips_entered": sum(r["clips"] for r in entered),
        "clips_left": sum(r["clips"] for r in left),
        "entered": entered,
        "left": left,
        "purpose": {"from": ma.get("purpose"), "to": mb.get("purpose")},
    }


def _index(d: Path, m: dict[str, Any]) -> Path | None:
    p = d / (m.get("index") or "index.parquet")
    return p if p.exists() else None


def _by_source(con, a: str, b: str) -> list[dict[str, Any]]:
    """Clips of ``a`` that ``b`` lacks, by source; ``whole_source`` when ``b`` has none of that source."""
    cur = con.execute(
        f"""SELECT x.source_id, count(*) AS clips, round(coalesce(sum(x.duration_ms), 0) / 1000.0, 3) AS seconds,
                   NOT EXISTS (SELECT 1 FROM {b} y WHERE y.source_id = x.source_id) AS whole_source
            FROM {a} x WHERE x.clip_id NOT IN (SELECT clip_id FROM {b})
            GROUP BY x.source_id ORDER BY clips DESC, x.source_id"""
    )
    return dict_rows(cur)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)
