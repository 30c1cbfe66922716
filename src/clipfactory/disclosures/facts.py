"""The figures every disclosure document is made of, computed in DuckDB from one build and the catalog.

A build's members are its ``index.parquet`` (one row per clip: span, size, licence, scores, origin); the
catalog adds what the index does not carry: dataset memberships, uploaders, acquisition times, policy
decisions, consent checks, fetches, outcome rows and takedowns. Every figure is one SQL query over
those tables (see ``docs/disclosures.md`` for the query behind each field); Python only arranges the
rows. What the catalog cannot know is ``None`` here, and each document writes it as unknown, or as
"operator must state" where only the operator can know it.

Shares are by seconds of footage unless a field says otherwise. A source listed by several datasets
counts in full for each of them, so dataset shares can add up to more than 100%.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import dict_rows, table_columns

#: The figures are named in one place, and every document uses these words for them.
UNKNOWN = "unknown"
OPERATOR = "operator must state"

#: Index columns the reports read; an index without one of them (an older build) reads it as NULL.
INDEX_COLUMNS = {
    "clip_id": pa.string(),
    "source_id": pa.string(),
    "shard": pa.string(),
    "duration_ms": pa.int64(),
    "size_bytes": pa.int64(),
    "content_license": pa.string(),
    "rights_holder": pa.string(),
    "origin_uri": pa.string(),
    "motion": pa.float64(),
    "sharpness": pa.float64(),
    "luma": pa.float64(),
    "black_fraction": pa.float64(),
    "static_fraction": pa.float64(),
    "text_fraction": pa.float64(),
    "caption": pa.string(),
    "nsfw": pa.float64(),
    "face_count": pa.int64(),
    "face_area": pa.float64(),
}
#: Quality scores whose distributions the datasheet shows (index columns).
SCORES = ("motion", "sharpness", "luma", "black_fraction", "static_fraction", "text_fraction")
#: Consent signals the fetcher checks (``consent_checks.signal``), each reported even when it excluded nothing.
CONSENT_SIGNALS = ("platform", "robots.txt", "tdmrep", "x-robots-tag", "content-usage", "c2pa", "spawning")
HIST_BINS = 20
DOMAIN_SQL = (
    "CASE WHEN {u} IS NULL OR {u} = '' THEN NULL "
    "ELSE nullif(regexp_replace(lower(regexp_extract({u}, '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]+)', 1)), "
    "'^www\\.|:[0-9]+$|^[^@]*@', '', 'g'), '') END"
)


def domain_sql(col: str) -> str:
    """SQL for the host of URL column ``col``, lower case, without ``www.``, port or user (NULL without one)."""
    return DOMAIN_SQL.format(u=col)


def _rows(con, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return dict_rows(con.execute(sql, params or []))


def _one(con, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    rows = _rows(con, sql, params)
    return rows[0] if rows else {}


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    s = v.isoformat() if hasattr(v, "isoformat") else str(v)
    s = s.replace(" ", "T")
    if "T" in s and not s.endswith("Z") and "+" not in s[10:]:
        s = s.split(".")[0] + "Z"
    return s


def load_members(con, index_path: Path | None, *, name: str = "_cfr_clips") -> None:
    """Make the temporary table ``name`` of the build's clips from ``index.parquet`` (none when absent)."""
    cols = ", ".join(f"{c} {_duck(t)}" for c, t in INDEX_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols})")
    if index_path is None or not Path(index_path).exists():
        return
    have = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(index_path)]).fetchall()}
    sel = ", ".join(c if c in have else f"NULL::{_duck(t)} AS {c}" for c, t in INDEX_COLUMNS.items())
    con.execute(f"INSERT INTO {name} SELECT {sel} FROM read_parquet(?)", [str(index_path)])


def _duck(t: pa.DataType) -> str:
    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}[t]


def build_facts(
    con,
    manifest: dict[str, Any],
    index_path: Path | None,
    context: dict[str, Any],
    *,
    works_csv: Path | None = None,
) -> dict[str, Any]:
    """Every figure of the documents of one build version.

    ``manifest`` is the build's ``build.json``; ``index_path`` its ``index.parquet``; ``context`` what the
    settings say (``statements`` of the operator, the crawler's name and User-Agent, the licence table,
    the dataset registry, the share above which the audit warns). The connection may be read-only:
    only temporary tables are made, and dropped at the end.
    """
    load_members(con, index_path)
    tables = table_columns(con)
    try:
        facts = _facts(con, manifest, tables, context)
        if works_csv is not None:  # copyrighted_works.csv, written by DuckDB
            sql = facts["_works_sql"]
            con.execute(f"COPY ({sql}) TO '{_sql_str(str(works_csv))}' (HEADER, DELIMITER ',')")
        return facts
    finally:
        for t in ("_cfr_clips", "_cfr_src", "_cfr_lic"):
            con.execute(f"DROP TABLE IF EXISTS {t}")


def _facts(con, manifest: dict[str, Any], tables: dict[str, set[str]], ctx: dict[str, Any]) -> dict[str, Any]:
    purpose = manifest.get("purpose")
    src_cols = tables.get("sources", set())

    def scol(c: str, typ: str = "VARCHAR") -> str:
        return f"s.{c}" if c in src_cols else f"NULL::{typ}"

    # One row per source of the build: its seconds, clips and bytes in the build, and its catalog facts.
    src_join = "LEFT JOIN sources s ON s.source_id = c.source_id" if "sources" in tables else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _cfr_src AS
            SELECT c.source_id,
                   count(*) AS clips,
                   coalesce(sum(c.duration_ms), 0) / 1000.0 AS seconds,
                   coalesce(sum(c.size_bytes), 0) AS bytes,
                   any_value(c.content_license) AS content_license,
                   any_value(c.origin_uri) AS origin_uri,
                   any_value({scol("title")}) AS title,
                   any_value(coalesce({scol("rights_holder")}, c.rights_holder)) AS rights_holder,
                   any_value({scol("uploader")}) AS uploader,
                   any_value({scol("url")}) AS url,
                   any_value({scol("platform")}) AS platform,
                   any_value(TRY_CAST({scol("acquired_at")} AS TIMESTAMP)) AS acquired_at,
                   any_value({domain_sql(scol("url"))}) AS domain
            FROM _cfr_clips c {src_join}
            GROUP BY c.source_id"""
    )
    totals = _one(
        con,
        """SELECT count(*) AS n_clips, count(DISTINCT source_id) AS n_sources,
                  coalesce(sum(duration_ms), 0) / 1000.0 AS seconds, coalesce(sum(size_bytes), 0) AS bytes,
                  count(DISTINCT shard) AS n_shards,
                  count(*) FILTER (WHERE caption IS NOT NULL AND caption <> '') AS captioned,
                  count(*) FILTER (WHERE face_count > 0) AS with_faces,
                  count(*) FILTER (WHERE face_count IS NULL) AS faces_unchecked
           FROM _cfr_clips""",
    )
    total_s = float(totals["seconds"] or 0)
    totals["hours"] = total_s / 3600.0

    def share(rows: list[dict[str, Any]], key: str = "seconds") -> list[dict[str, Any]]:
        for r in rows:
            r["share"] = (float(r[key]) / total_s) if total_s > 0 else 0.0
            r["hours"] = float(r.get("seconds") or 0) / 3600.0
        return rows

    # -- datasets -----------------------------------------------------------------------------------
    datasets: list[dict[str, Any]] = []
    if "memberships" in tables:
        fmt = "d.format" if "datasets" in tables else "NULL::VARCHAR"
        reg = "d.registry_key" if "datasets" in tables else "NULL::VARCHAR"
        djoin = "LEFT JOIN datasets d ON d.dataset = m.dataset" if "datasets" in tables else ""
        datasets = _rows(
            con,
            f"""WITH m AS (SELECT DISTINCT dataset, source_id FROM memberships
                           WHERE source_id IN (SELECT source_id FROM _cfr_src))
                SELECT m.dataset, any_value({fmt}) AS format, any_value({reg}) AS registry_key,
                       count(*) AS sources, sum(s.clips) AS clips, sum(s.seconds) AS seconds,
                       sum(s.bytes) AS bytes
                FROM m JOIN _cfr_src s USING (source_id) {djoin}
                GROUP BY m.dataset ORDER BY seconds DESC, m.dataset""",
        )
    in_none = _one(
        con,
        "SELECT count(*) AS sources, coalesce(sum(clips), 0) AS clips, coalesce(sum(seconds), 0) AS seconds, "
        "coalesce(sum(bytes), 0) AS bytes FROM _cfr_src"
        + (" WHERE source_id NOT IN (SELECT source_id FROM memberships)" if "memberships" in tables else ""),
    )
    if in_none.get("sources"):
        datasets.append({"dataset": None, "format": None, "registry_key": None, **in_none})
    registry = ctx.get("registry")
    for d in share(datasets):
        entry = (
            registry.dataset(d["registry_key"] or d["dataset"])
            if registry is not None and d["dataset"]
            else None
        )
        d["name"] = (entry.name if entry is not None and entry.name else d["dataset"]) or UNKNOWN
        d["homepage"] = entry.homepage if entry is not None else None
        d["annotation_license"] = entry.annotation_license if entry is not None else None
        if d["format"] == "owned" or d["dataset"] == "owned":
            d["kind"] = "own media"
        elif entry is not None and entry.homepage:
            d["kind"] = "public dataset"
        else:
            d["kind"] = UNKNOWN  # an unregistered dataset: whether it is public is the operator's to state

    # -- licences -----------------------------------------------------------------------------------
    licences = share(
        _rows(
            con,
            """SELECT content_license AS license, count(*) AS sources, sum(clips) AS clips,
                      sum(seconds) AS seconds, sum(bytes) AS bytes
               FROM _cfr_src GROUP BY content_license ORDER BY seconds DESC, license NULLS LAST""",
        )
    )
    table = ctx.get("licenses")
    from ..factory.export import license_record

    for r in licences:
        rec = license_record(r["license"], table)
        r.update(
            {
                "family": rec["family"],
                "name": rec.get("name") or r["license"] or UNKNOWN,
                "url": rec.get("url"),
            }
        )
    lic_rows = [{"license": r["license"], "family": r["family"]} for r in licences]
    con.register(
        "_cfr_lic_view",
        pa.Table.from_pylist(lic_rows, schema=pa.schema([("license", pa.string()), ("family", pa.string())])),
    )
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _cfr_lic AS SELECT * FROM _cfr_lic_view")
    finally:
        con.unregister("_cfr_lic_view")
    classes: list[dict[str, Any]] = []
    decided = "policy_decisions" in tables and purpose
    if decided:
        classes = _rows(
            con,
            """SELECT coalesce(p.effective_class, 'not decided') AS class, count(*) AS sources,
                      sum(s.clips) AS clips, sum(s.seconds) AS seconds, sum(s.bytes) AS bytes,
                      count(*) FILTER (WHERE p.attribution) AS attribution_required,
                      count(*) FILTER (WHERE p.share_alike) AS share_alike
               FROM _cfr_src s LEFT JOIN policy_decisions p ON p.source_id = s.source_id AND p.purpose = ?
               GROUP BY 1 ORDER BY seconds DESC, 1""",
            [purpose],
        )
    share(classes)
    copyright_rows = _rows(
        con,
        """SELECT CASE WHEN l.family IN ('cc0', 'public-domain') THEN 'public domain'
                       WHEN l.family = 'none' OR l.family IS NULL THEN 'no licence recorded'
                       ELSE 'copyrighted, licensed' END AS status,
                  count(*) AS sources, sum(s.clips) AS clips, sum(s.seconds) AS seconds
           FROM _cfr_src s LEFT JOIN _cfr_lic l ON l.license IS NOT DISTINCT FROM s.content_license
           GROUP BY 1 ORDER BY seconds DESC, 1""",
    )
    share(copyright_rows)

    # -- domains, uploaders, years, languages, categories ------------------------------------------
    domains = share(
        _rows(
            con,
            """SELECT domain, count(*) AS sources, sum(clips) AS clips, sum(seconds) AS seconds,
                      sum(bytes) AS bytes
               FROM _cfr_src GROUP BY domain ORDER BY bytes DESC, seconds DESC, domain NULLS LAST""",
        )
    )
    n_dom = sum(1 for d in domains if d["domain"])
    top_n = math.ceil(n_dom * 0.10) if n_dom else 0
    top_domains = [d for d in domains if d["domain"]][:top_n]
    uploaders_all = _one(
        con,
        """WITH u AS (SELECT uploader, sum(seconds) AS seconds FROM _cfr_src WHERE uploader IS NOT NULL
                      GROUP BY uploader)
           SELECT count(*) AS n, sum(seconds * seconds) AS sq, sum(seconds) AS known FROM u""",
    )
    uploaders = share(
        _rows(
            con,
            """SELECT uploader, count(*) AS sources, sum(clips) AS clips, sum(seconds) AS seconds
               FROM _cfr_src GROUP BY uploader ORDER BY uploader IS NULL, seconds DESC, uploader LIMIT 21""",
        )
    )
    hhi_uploader = _hhi(uploaders_all, total_s)
    dom_all = _one(
        con,
        """WITH u AS (SELECT domain, sum(seconds) AS seconds FROM _cfr_src WHERE domain IS NOT NULL GROUP BY domain)
           SELECT count(*) AS n, sum(seconds * seconds) AS sq, sum(seconds) AS known FROM u""",
    )
    years = share(
        _rows(
            con,
            """SELECT CAST(year(acquired_at) AS VARCHAR) AS year, count(*) AS sources, sum(clips) AS clips,
                      sum(seconds) AS seconds
               FROM _cfr_src GROUP BY 1 ORDER BY 1 NULLS LAST""",
        )
    )
    languages = share(_languages(con, tables, ctx.get("source_languages")))
    categories = share(_categories(con, tables, ctx.get("source_categories")))

    # -- quality scores -----------------------------------------------------------------------------
    quality = {s: _histogram(con, s) for s in SCORES}

    # -- collection, acquisition, crawling ----------------------------------------------------------
    period = _one(
        con,
        "SELECT min(acquired_at) AS first, max(acquired_at) AS last, count(*) FILTER (WHERE acquired_at IS NULL) "
        "AS undated FROM _cfr_src",
    )
    platforms = share(
        _rows(
            con,
            """SELECT coalesce(platform, 'unknown') AS platform, count(*) AS sources, sum(clips) AS clips,
                      sum(seconds) AS seconds FROM _cfr_src GROUP BY 1 ORDER BY seconds DESC, 1""",
        )
    )
    crawl = {"sources": 0, "first": None, "last": None, "requests": 0}
    if "fetch_attempts" in tables:
        crawl = _one(
            con,
            """SELECT count(DISTINCT f.source_id) AS sources, min(f.started_at) AS first,
                      max(f.finished_at) AS last, count(*) AS requests
               FROM fetch_attempts f WHERE f.source_id IN (SELECT source_id FROM _cfr_src)""",
        )
    crawled_domains = []
    if "fetch_attempts" in tables:
        crawled_domains = share(
            _rows(
                con,
                """SELECT s.domain, count(*) AS sources, sum(s.clips) AS clips, sum(s.seconds) AS seconds,
                          sum(s.bytes) AS bytes
                   FROM _cfr_src s WHERE s.source_id IN (SELECT source_id FROM fetch_attempts)
                   GROUP BY 1 ORDER BY bytes DESC, seconds DESC, 1 NULLS LAST""",
            )
        )
    n_cd = sum(1 for d in crawled_domains if d["domain"])
    crawled_top = [d for d in crawled_domains if d["domain"]][: math.ceil(n_cd * 0.10) if n_cd else 0]
    tdm: list[dict[str, Any]] = []
    if "consent_checks" in tables:
        got = {
            r["signal"]: r
            for r in _rows(
                con,
                """SELECT signal, count(*) AS checks, count(DISTINCT source_id) AS sources_checked,
                          count(DISTINCT source_id) FILTER (WHERE verdict = 'deny') AS sources_excluded
                   FROM consent_checks GROUP BY signal""",
            )
        }
        for sig in sorted(set(CONSENT_SIGNALS) | set(got)):
            r = got.get(sig, {})
            tdm.append(
                {
                    "signal": sig,
                    "checks": int(r.get("checks") or 0),
                    "sources_checked": int(r.get("sources_checked") or 0),
                    "sources_excluded": int(r.get("sources_excluded") or 0),
                }
            )
    opted_out_in_build = 0
    if "consent_checks" in tables:
        opted_out_in_build = int(
            con.execute(
                "SELECT count(DISTINCT source_id) FROM consent_checks WHERE verdict = 'deny' "
                "AND source_id IN (SELECT source_id FROM _cfr_src)"
            ).fetchone()[0]
        )

    # -- what was dropped, and why ------------------------------------------------------------------
    dropped: list[dict[str, Any]] = []
    run_id = manifest.get("run_id")
    if run_id and "stage_outcomes" in tables:
        dropped = _rows(
            con,
            """SELECT stage, reason, count(DISTINCT item_id) AS items FROM stage_outcomes
               WHERE run_id = ? AND status = 'dropped' GROUP BY stage, reason ORDER BY items DESC, stage, reason""",
            [run_id],
        )
    failed = []
    if run_id and "stage_outcomes" in tables:
        failed = _rows(
            con,
            """SELECT stage, error_kind, count(DISTINCT item_id) AS items FROM latest_outcomes
               WHERE run_id = ? AND status = 'failed' GROUP BY 1, 2 ORDER BY items DESC, 1, 2""",
            [run_id],
        )
    refused = list(manifest.get("refused_sources") or [])
    if run_id and "latest_outcomes" in tables:
        # the sources the policy gate refused in the build's run (before any byte), beside those the
        # export refused: both are the licence policy refusing them for this build
        have = {r.get("source_id") for r in refused}
        for sid, reason in con.execute(
            """SELECT item_id, any_value(reason) FROM stage_outcomes WHERE run_id = ? AND stage = 'policy.gate'
               AND status = 'dropped' GROUP BY item_id ORDER BY item_id""",
            [run_id],
        ).fetchall():
            if sid not in have:
                refused.append({"source_id": sid, "reason": reason})

    # -- takedowns and policy -----------------------------------------------------------------------
    takedowns = {"done": 0, "tombstones": 0, "last": None}
    if "takedowns" in tables:
        takedowns.update(
            _one(
                con,
                # a takedown's own rewrite of a build's documents runs before its row says done: it counts
                "SELECT count(*) FILTER (WHERE status = 'done' OR takedown_id = ?) AS done, max(finished_at) AS last "
                "FROM takedowns",
                [(manifest.get("takedown") or {}).get("takedown_id")],
            )
        )
    if "tombstones" in tables:
        takedowns["tombstones"] = int(con.execute("SELECT count(*) FROM tombstones").fetchone()[0])
    if "takedown_queue" in tables:
        takedowns["queue_pending"] = int(
            con.execute(
                "SELECT count(*) FROM takedown_queue WHERE coalesce(status, 'pending') = 'pending'"
            ).fetchone()[0]
        )
    profile = None
    evaluation_sets: list[str] = []
    if "policy_evaluations" in tables and purpose:
        ev = _one(
            con, "SELECT profile, evaluation_datasets FROM policy_evaluations WHERE purpose = ?", [purpose]
        )
        if ev:
            profile = json.loads(ev["profile"]) if isinstance(ev.get("profile"), str) else ev.get("profile")
            evaluation_sets = list(ev.get("evaluation_datasets") or [])
    licensed_acquisition = 0
    if decided:
        licensed_acquisition = int(
            con.execute(
                """SELECT count(*) FROM policy_decisions WHERE purpose = ?
                   AND source_id IN (SELECT source_id FROM _cfr_src)
                   AND TRY_CAST(json_extract(lineage, '$.acquisition.scoped_permission') AS BOOLEAN)""",
                [purpose],
            ).fetchone()[0]
        )
    first_used = manifest.get("created_at")
    if "builds" in tables and manifest.get("name"):
        row = con.execute("SELECT min(created_at) FROM builds WHERE name = ?", [manifest["name"]]).fetchone()
        if row and row[0] is not None:
            first_used = min(filter(None, [_iso(row[0]), first_used]))
    runs_n = 0
    if "runs" in tables:
        runs_n = int(con.execute("SELECT count(*) FROM runs").fetchone()[0])

    works_sql = (
        "SELECT source_id, title, rights_holder, uploader, coalesce(url, origin_uri) AS url, content_license AS license, "
        "clips, round(seconds, 3) AS seconds FROM _cfr_src ORDER BY seconds DESC, source_id"
    )
    return {
        "build": {
            k: manifest.get(k)
            for k in (
                "build_id",
                "name",
                "version",
                "purpose",
                "created_at",
                "supersedes",
                "superseded_by",
                "status",
                "content_hash",
                "run_id",
                "n_shards",
                "shard_size",
                "index",
                "takedown",
            )
        },
        "totals": {k: (float(v) if isinstance(v, float) else int(v or 0)) for k, v in totals.items()},
        "datasets": datasets,
        "licences": licences,
        "license_classes": classes,
        "copyright": copyright_rows,
        "domains": domains,
        "top_domains": top_domains,
        "n_domains": n_dom,
        "domain_hhi": _hhi(dom_all, total_s),
        "uploaders": uploaders[:20] if uploaders and uploaders[-1]["uploader"] is not None else uploaders,
        "n_uploaders": int(uploaders_all.get("n") or 0),
        "uploader_hhi": hhi_uploader,
        "years": years,
        "languages": languages,
        "categories": categories,
        "balance": _balance(manifest.get("balance"), categories),
        "quality": quality,
        "platforms": platforms,
        "period": {
            "first": _iso(period.get("first")),
            "last": _iso(period.get("last")),
            "undated_sources": int(period.get("undated") or 0),
        },
        "crawl": {
            "sources": int(crawl.get("sources") or 0),
            "requests": int(crawl.get("requests") or 0),
            "first": _iso(crawl.get("first")),
            "last": _iso(crawl.get("last")),
            "domains": crawled_domains,
            "top_domains": crawled_top,
            "agent": ctx.get("agent"),
        },
        "tdm": tdm,
        "opted_out_in_build": opted_out_in_build,
        "dropped": dropped,
        "failed": failed,
        "refused_sources": refused,
        "takedowns": {k: (_iso(v) if k == "last" else v) for k, v in takedowns.items()},
        "profile": profile,
        "evaluation_sets": evaluation_sets,
        "licensed_acquisition": licensed_acquisition,
        "first_used": first_used,
        "runs": runs_n,
        "statements": dict(ctx.get("statements") or {}),
        "max_share": float(ctx.get("max_share", 0.2)),
        "_works_sql": works_sql,
    }


def _hhi(agg: dict[str, Any], total_s: float) -> float | None:
    """Herfindahl–Hirschman index (sum of squared shares, 0–1) over the known values; ``None`` without any."""
    known = float(agg.get("known") or 0)
    if not agg.get("n") or known <= 0:
        return None
    return float(agg["sq"]) / (known * known)


def _languages(con, tables: dict[str, set[str]], identified: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Seconds by language: where a manifest gave one (``clip_spans.extra``: ``language`` or ``lang``), else
    the language identified from the source's captions and transcripts (``identified``,
    :mod:`clipfactory.disclosures.languages`); the rest is counted under ``None`` (unknown)."""
    import pyarrow as pa

    ident = identified or {}
    con.register("_cfr_ident", pa.table({"source_id": pa.array(list(ident), pa.string()),
                                         "language": pa.array(list(ident.values()), pa.string())}))
    try:
        stated = (
            """SELECT source_id, any_value(lower(coalesce(extra ->> 'language', extra ->> 'lang'))) AS language
               FROM clip_spans WHERE source_id IN (SELECT source_id FROM _cfr_src)
                 AND coalesce(extra ->> 'language', extra ->> 'lang') IS NOT NULL
               GROUP BY source_id"""
            if "clip_spans" in tables and "extra" in tables["clip_spans"]
            else "SELECT NULL::VARCHAR AS source_id, NULL::VARCHAR AS language WHERE false"
        )
        return _rows(
            con,
            f"""WITH l AS ({stated})
               SELECT coalesce(l.language, i.language) AS language, count(*) AS sources, sum(s.clips) AS clips,
                      sum(s.seconds) AS seconds
               FROM _cfr_src s LEFT JOIN l USING (source_id) LEFT JOIN _cfr_ident i ON i.source_id = s.source_id
               GROUP BY 1 HAVING count(*) > 0 ORDER BY seconds DESC, 1 NULLS LAST""",
        )
    finally:
        con.unregister("_cfr_ident")


def _categories(
    con, tables: dict[str, set[str]], by_source: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Seconds by category: each clip takes its source's category from the semantic layer
    (``by_source``, what ``clipfactory categories`` says), else the first catalog table with ``clip_id``
    and ``category`` columns; a clip with neither is uncategorised (``None``, stated as unknown)."""
    if by_source:
        import pyarrow as pa

        cats = pa.table({"source_id": list(by_source), "category": list(by_source.values())})
        con.register("_cfr_cat", cats)
        try:
            return _rows(
                con,
                """SELECT k.category, count(*) AS clips, coalesce(sum(c.duration_ms), 0) / 1000.0 AS seconds
                   FROM _cfr_clips c LEFT JOIN _cfr_cat k USING (source_id)
                   GROUP BY 1 ORDER BY seconds DESC, 1 NULLS LAST""",
            )
        finally:
            con.unregister("_cfr_cat")
    table = next((t for t, cols in sorted(tables.items()) if {"clip_id", "category"} <= cols), None)
    if table is None:
        return _rows(
            con,
            "SELECT NULL::VARCHAR AS category, count(*) AS clips, coalesce(sum(duration_ms), 0) / 1000.0 AS seconds "
            "FROM _cfr_clips HAVING count(*) > 0",
        )
    return _rows(
        con,
        f"""WITH k AS (SELECT clip_id, any_value(category) AS category FROM "{table}" GROUP BY clip_id)
            SELECT k.category, count(*) AS clips, coalesce(sum(c.duration_ms), 0) / 1000.0 AS seconds
            FROM _cfr_clips c LEFT JOIN k USING (clip_id) GROUP BY 1 ORDER BY seconds DESC, 1 NULLS LAST""",
    )


def _balance(configured: dict[str, Any] | None, categories: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """``[build] balance``: per capped category, its target (the cap on the share of the build's clips) and
    the share of the build's clips it achieved, counted from the members; ``None`` when no cap was set."""
    if not configured or not configured.get("target"):
        return None
    total = sum(int(r.get("clips") or 0) for r in categories)
    clips = {r.get("category"): int(r.get("clips") or 0) for r in categories}
    return [
        {"category": c, "target": float(t), "clips": clips.get(c, 0),
         "achieved": (clips.get(c, 0) / total) if total else 0.0,
         "dropped_for_caps": int(configured.get("dropped") or 0)}
        for c, t in configured["target"].items()
    ]


def _histogram(con, col: str) -> dict[str, Any]:
    """``HIST_BINS`` equal-width bins of one score over the build's clips, with its summary figures."""
    s = _one(
        con,
        f"""SELECT count({col}) AS n, count(*) - count({col}) AS missing, min({col}) AS min, max({col}) AS max,
                   avg({col}) AS mean, quantile_cont({col}, 0.5) AS median FROM _cfr_clips""",
    )
    bins: list[dict[str, Any]] = []
    if s.get("n"):
        lo, hi = float(s["min"]), float(s["max"])
        width = (hi - lo) / HIST_BINS if hi > lo else 1.0
        bins = _rows(
            con,
            f"""SELECT least(CAST(floor(({col} - ?) / ?) AS INTEGER), {HIST_BINS - 1}) AS bin, count(*) AS clips
                FROM _cfr_clips WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 1""",
            [lo, width],
        )
        for b in bins:
            b["start"] = lo + b["bin"] * width
            b["end"] = lo + (b["bin"] + 1) * width
    return {
        **{k: (float(v) if v is not None and k not in ("n", "missing") else v) for k, v in s.items()},
        "bins": bins,
    }


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
