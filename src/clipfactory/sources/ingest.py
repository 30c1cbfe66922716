"""Ingest manifests into the catalog: vectorised, atomic, idempotent.

One manifest is one transaction. DuckDB reads the file (every field as text), the format's adapter maps
it to pre-rows in SQL (:mod:`.adapters`), and one SQL pass canonicalises ids, converts spans to
milliseconds and validates. Then, still in the same transaction, the rows go to
``sources`` (one row per canonical video across every dataset: new ones inserted, missing fields of
known ones filled), ``memberships`` (one row per source per dataset), ``clip_spans`` (with clip ids,
computed as the spans are inserted), ``ingest_errors``,
``manifests`` and ``datasets``. A crash or Ctrl-C anywhere before the commit leaves the catalog exactly
as it was. The manifest id is the sha256 of the file's bytes, so ingesting the same file again is a
no-op. No Python runs per row, except for the rare Panda-70M rows whose Python-list strings need
``ast.literal_eval`` and for owned files, which must be hashed.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..catalog import Catalog
from ..errors import ClipfactoryError, ConfigError, ManifestError, TerminalError
from ..ids import CLIP_ID_SQL
from . import readers
from .adapters import PRE_COLUMNS, Context, ident, parse_mapping
from .detect import choose
from .owned import MEDIA_SUFFIXES
from .readers import FileFacts, RowError, Staged
from .sql import install_macros, lit

log = logging.getLogger(__name__)

_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")


@dataclass
class IngestSummary:
    """What one ``ingest`` of one manifest did."""

    uri: str
    manifest_id: str
    dataset: str
    format: str
    rows_total: int = 0
    rows_ok: int = 0
    rows_bad: int = 0
    new_sources: int = 0
    new_memberships: int = 0
    spans: int = 0  # rows with a start and end time
    captions: int = 0  # rows with a caption (of a span, or of the whole video)
    already_ingested: bool = False
    lines_exact: bool = True
    seconds: float = 0.0
    errors: list[RowError] = field(default_factory=list)  # the first few, in file order

    def error_lines(self) -> list[str]:
        """``file:line: reason`` for the errors kept in the summary."""
        return [f"{e.where(self.uri)}: {e.reason}" for e in self.errors]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = [
            {
                "line": e.line,
                "pointer": e.pointer,
                "reason": e.reason,
                "raw": e.raw,
                "where": e.where(self.uri),
            }
            for e in self.errors
        ]
        return d


@dataclass
class IngestOptions:
    """Knobs of the ingest connection. ``memory_limit`` (e.g. ``"1GB"``) makes DuckDB spill to disk."""

    memory_limit: str | None = None
    threads: int | None = None
    max_errors: int = 20


#: The phases of one manifest's ingest, in order, as ``ingest_manifest(progress=...)`` reports them (a
#: manifest without spans or captions has no ``spans`` phase).
INGEST_PHASES = ("read", "validate", "errors", "sources", "memberships", "spans", "commit")
_PHASE_OF_STEP = {
    "read": "read",
    "adapter": "validate",
    "rows": "validate",
    "count rows": "errors",
    "insert sources": "sources",
    "had members": "memberships",
    "had spans": "spans",
    "insert spans": "spans",
    "insert manifest": "commit",
}
_PROGRESS: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "clipfactory_ingest_progress", default=None
)


@contextlib.contextmanager
def _step(name: str):
    """Log how long one step of an ingest took (at DEBUG level: ``bench/bench_ingest.py`` turns it on), and tell the
    ingest's progress callback when a new phase begins."""
    report = _PROGRESS.get()
    if report is not None and name in _PHASE_OF_STEP:
        report(_PHASE_OF_STEP[name])
    t, cpu = time.perf_counter(), time.process_time()
    yield
    log.debug("ingest step %s: %.3fs (cpu %.3fs)", name, time.perf_counter() - t, time.process_time() - cpu)


def _dataset_name(name: str) -> str:
    name = name.strip()
    if not _DATASET_RE.match(name):
        raise ManifestError(
            f"invalid dataset name {name!r}",
            fix="use letters, digits and . _ - : + (for example kinetics-400 or my-dataset)",
        )
    return name


def _configure(con: duckdb.DuckDBPyConnection, opts: IngestOptions) -> None:
    if opts.threads:
        con.execute(f"SET threads = {int(opts.threads)}")
    if opts.memory_limit:
        try:
            con.execute(f"SET memory_limit = {lit(str(opts.memory_limit))}")
        except duckdb.Error as exc:
            raise ConfigError(
                f"not a memory size: {opts.memory_limit!r}",
                item="--memory-limit",
                fix="give a size such as 512MB, 1GB or 4GB",
            ) from exc


def _already(catalog: Catalog, manifest_id: str) -> dict[str, Any] | None:
    rows = catalog.query(
        "SELECT dataset, format, uri, rows_total, rows_ok, rows_bad FROM manifests WHERE manifest_id = ?",
        [manifest_id],
    )
    return rows[0] if rows else None


def _already_summary(uri: str, manifest_id: str, row: dict[str, Any]) -> IngestSummary:
    return IngestSummary(
        uri=uri,
        manifest_id=manifest_id,
        dataset=row["dataset"],
        format=row["format"],
        rows_total=row["rows_total"] or 0,
        rows_ok=row["rows_ok"] or 0,
        rows_bad=row["rows_bad"] or 0,
        already_ingested=True,
    )


def _begin(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, uri: str, manifest_id: str, opts: IngestOptions
) -> IngestSummary | None:
    """In the write transaction of an ingest: the summary of an earlier ingest of ``manifest_id`` (nothing
    to do), else None once ``con`` is configured and has the SQL macros."""
    if con.execute("SELECT count(*) FROM manifests WHERE manifest_id = ?", [manifest_id]).fetchall()[0][0]:
        row = _already(catalog, manifest_id)
        assert row is not None
        return _already_summary(uri, manifest_id, row)
    _configure(con, opts)
    install_macros(con)
    return None


# -- the shared SQL pass ------------------------------------------------------------------------------
#: Pre-row columns that are kept in ``_cf_rows`` when the adapter fills them.
_OPTIONAL = (
    "pointer",
    "url",
    "title",
    "duration_ms",
    "caption",
    "label",
    "split",
    "extra",
    "content_sha256",
    "origin_uri",
    "size_bytes",
    "content_license",
    "rights_holder",
    "uploader",
)


class _Cols:
    """The optional columns ``_cf_rows`` has; others read as typed NULLs."""

    def __init__(self, given: set[str]):
        self.given = {c for c in _OPTIONAL if c in given}
        self.spans = "start_ms" in given or "end_ms" in given

    def __call__(self, name: str, prefix: str = "") -> str:
        if name in self.given:
            return prefix + name
        return f"NULL::{PRE_COLUMNS[name]}"


def _finish_sql(pre_sql: str, cols: _Cols) -> str:
    """Validation and canonical source ids over an adapter's pre-rows."""
    keep = "".join(f", {c}" for c in _OPTIONAL if c in cols.given)
    # Clip ids are not computed here: only the spans insert needs them (one sha256 per span row, in
    # the insert's own parallel pipeline, instead of a column kept in memory for every row).
    spans = ", start_ms, end_ms" if cols.spans else ""
    return f"""
    WITH p AS ({pre_sql}),
    e AS (
        SELECT *, coalesce(error, CASE
            WHEN pid IS NULL THEN CASE
                WHEN platform = 'youtube' THEN cf_yt_reason(id_text)
                WHEN id_text IS NULL OR cf_strip(id_text) = '' THEN 'missing ' || platform || ' id'
                ELSE 'bad ' || platform || ' id ' || id_text END
            WHEN start_text IS NOT NULL AND start_ms IS NULL THEN 'unparsable start time ' || start_text
            WHEN end_text IS NOT NULL AND end_ms IS NULL THEN 'unparsable end time ' || end_text
            WHEN (start_ms IS NULL) <> (end_ms IS NULL) THEN 'a span needs both a start and an end'
            WHEN start_ms < 0 THEN 'negative span start ' || start_text
            WHEN end_ms < start_ms THEN 'inverted span: end ' || end_text || ' is before start ' || start_text
            WHEN end_ms = start_ms THEN 'empty span: start and end are both ' || start_text
            WHEN duration_text IS NOT NULL AND duration_ms IS NULL THEN 'unparsable duration ' || duration_text
            WHEN duration_ms < 0 THEN 'negative duration ' || duration_text
            END) AS err
        FROM p),
    s AS (
        SELECT * EXCLUDE (error, err), err AS error,
               CASE WHEN err IS NULL
                    THEN (CASE platform WHEN 'web' THEN 'url' WHEN 'owned' THEN 'sha256' ELSE platform END) || ':' || pid
               END AS source_id
        FROM e)
    SELECT ord, line, source_id, platform, pid AS platform_id{keep}{spans},
           error, CASE WHEN error IS NOT NULL THEN raw END AS raw
    FROM s"""


def _raw_fill_sql(staged: Staged) -> str:
    """How to show an error row's text when the adapter did not keep it: the fields joined by commas."""
    if staged.kind == "jsonl":
        return "s.j"
    if staged.kind in ("csv", "parquet") and staged.columns:
        cols = ", ".join(f"coalesce(s.{ident(c)}, '')" for c in staged.columns)
        return f"concat_ws(',', {cols})"
    return "NULL"


@dataclass
class _Written:
    rows_total: int
    rows_bad: int
    new_sources: int
    new_memberships: int
    spans: int
    captions: int
    errors: list[RowError]


def _write(con: duckdb.DuckDBPyConnection, **kwargs: Any) -> _Written:
    """Everything after ``_cf_rows`` exists: counts, then every insert. Runs inside the write transaction."""
    # Row order matters only up to here (row ids give line numbers and each source's first row); the
    # inserts below may run in parallel, which DuckDB allows only when it need not keep insertion order.
    con.execute("SET preserve_insertion_order = false")
    try:
        return _write_rows(con, **kwargs)
    finally:
        # After a failed statement the transaction is aborted and refuses even a RESET; it rolls back.
        with contextlib.suppress(duckdb.TransactionException):
            con.execute("RESET preserve_insertion_order")


def aggregate_per_source(con: duckdb.DuckDBPyConnection, c: _Cols) -> None:
    """``_cf_agg`` from ``_cf_rows``: one row per source, with what the manifest says about the video
    and its membership in this dataset (first line, distinct spans).

    Distinct spans first, then sources; the first row of each source (by row id, which follows the
    file) gives its fields. This is cheaper than arg_min/any_value over strings for millions of rows.
    A clip id is a function of the source and the two times (both or neither are given on a valid
    row), so the distinct spans are grouped by the times: two integers hash faster than the id."""
    fields = [f for f in _OPTIONAL if f in c.given and f not in ("pointer", "caption", "extra")]
    times = "start_ms, end_ms" if c.spans else "NULL::BIGINT AS start_ms, NULL::BIGINT AS end_ms"
    _x(
        con,
        "aggregate per source",
        f"""CREATE OR REPLACE TEMP TABLE _cf_agg AS
            WITH k AS (SELECT source_id, {times}, min(rowid) AS r FROM _cf_rows WHERE error IS NULL GROUP BY ALL),
                 g AS (SELECT source_id, min(r) AS r, count(start_ms) AS n_spans FROM k GROUP BY source_id)
            SELECT g.source_id, x.platform, x.platform_id, x.line AS first_line, g.n_spans
                   {"".join(f", x.{f}" for f in fields)}
            FROM g JOIN _cf_rows x ON x.rowid = g.r""",
    )


def _write_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    manifest_id: str,
    dataset: str,
    uri: str,
    fmt: str,
    registry_key: str | None,
    staged: Staged,
    cols: _Cols,
    opts: IngestOptions,
) -> _Written:
    c = cols
    # Rows: a line-oriented file has one record per staged row (ords of extra records have no line); a
    # JSON document's records are its elements.
    if staged.kind in ("csv", "jsonl", "parquet"):
        extra_rows = _x(con, "count rows", "SELECT count(DISTINCT ord) FROM _cf_rows WHERE line IS NULL")[0][
            0
        ]
        bad_rows = _x(con, "count bad", "SELECT count(DISTINCT ord) FROM _cf_rows WHERE error IS NOT NULL")[
            0
        ][0]
        total = staged.rows + extra_rows
    else:
        total, bad_rows = _x(
            con,
            "count rows",
            "SELECT count(DISTINCT ord), count(DISTINCT ord) FILTER (WHERE error IS NOT NULL) FROM _cf_rows",
        )[0]
    rejects = staged.rejects
    total += len(rejects)
    bad_rows += len(rejects)

    # Errors: rows the SQL pass flagged, and rows DuckDB could not split into fields.
    raw_fill = _raw_fill_sql(staged)
    join = "LEFT JOIN _cf_src s USING (ord)" if raw_fill != "NULL" else ""
    _x(
        con,
        "insert errors",
        f"""INSERT INTO ingest_errors (manifest_id, dataset, uri, line, reason, raw, pointer)
            SELECT ?, ?, ?, r.line, r.error, coalesce(r.raw, {raw_fill}), {c("pointer", "r.")}
            FROM (SELECT * FROM _cf_rows WHERE error IS NOT NULL) r {join}""",
        [manifest_id, dataset, uri],
    )
    if rejects:
        con.register(
            "_cf_rejects",
            pa.table(
                {
                    "line": pa.array([r.line for r in rejects], pa.int64()),
                    "reason": pa.array([r.reason for r in rejects], pa.string()),
                    "raw": pa.array([r.raw for r in rejects], pa.string()),
                    "pointer": pa.array([r.pointer for r in rejects], pa.string()),
                }
            ),
        )
        _x(
            con,
            "insert rejects",
            """INSERT INTO ingest_errors (manifest_id, dataset, uri, line, reason, raw, pointer)
               SELECT ?, ?, ?, line, reason, raw, pointer FROM _cf_rejects""",
            [manifest_id, dataset, uri],
        )
        con.unregister("_cf_rejects")
    first_errors = [
        RowError(line, reason, raw, pointer)
        for line, reason, raw, pointer in _x(
            con,
            "first errors",
            """SELECT line, reason, raw, pointer FROM ingest_errors WHERE manifest_id = ?
               ORDER BY line NULLS LAST, pointer LIMIT ?""",
            [manifest_id, opts.max_errors],
        )
    ]

    aggregate_per_source(con, c)
    a = _Cols(c.given - {"pointer", "caption", "extra"})
    new_sources = _x(
        con,
        "insert sources",
        f"""INSERT INTO sources (source_id, platform, platform_id, url, title, duration_ms, content_sha256,
                                 origin_uri, size_bytes, content_license, rights_holder, uploader)
            SELECT a.source_id, a.platform, a.platform_id,
                   CASE WHEN a.platform = 'youtube' THEN 'https://www.youtube.com/watch?v=' || a.platform_id
                        ELSE {a("url", "a.")} END,
                   {a("title", "a.")}, {a("duration_ms", "a.")}, {a("content_sha256", "a.")}, {a("origin_uri", "a.")},
                   {a("size_bytes", "a.")}, {a("content_license", "a.")}, {a("rights_holder", "a.")},
                   {a("uploader", "a.")}
            FROM _cf_agg a ANTI JOIN sources s ON s.source_id = a.source_id""",
    )[0][0]
    # Known sources: fill the fields they lack (never overwrite what is there).
    fillable = [
        f for f in ("title", "duration_ms", "url", "content_license", "rights_holder", "uploader")
        if f in a.given
    ]
    if fillable:
        counts = _x(
            con, "fillable", "SELECT " + ", ".join(f"count({f})" for f in fillable) + " FROM _cf_agg"
        )[0]
        fillable = [f for f, n in zip(fillable, counts, strict=True) if n]
    if fillable and new_sources < _x(con, "count sources", "SELECT count(*) FROM _cf_agg")[0][0]:
        sets = ", ".join(f"{f} = coalesce(sources.{f}, a.{f})" for f in fillable)
        cond = " OR ".join(f"(sources.{f} IS NULL AND a.{f} IS NOT NULL)" for f in fillable)
        _x(
            con,
            "fill sources",
            f"UPDATE sources SET {sets} FROM _cf_agg a WHERE sources.source_id = a.source_id AND ({cond})",
        )

    split, label = a("split", "a."), a("label", "a.")
    had_members = _x(con, "had members", "SELECT count(*) > 0 FROM memberships WHERE dataset = ?", [dataset])[
        0
    ][0]
    if had_members:
        new_members = _x(
            con,
            "insert memberships",
            f"""INSERT INTO memberships SELECT ?, a.source_id, ?, a.first_line, {split}, {label}, a.n_spans
                FROM _cf_agg a ANTI JOIN (SELECT source_id FROM memberships WHERE dataset = ?) m
                  ON m.source_id = a.source_id""",
            [dataset, manifest_id, dataset],
        )[0][0]
    else:
        new_members = _x(
            con,
            "insert memberships",
            f"INSERT INTO memberships SELECT ?, a.source_id, ?, a.first_line, {split}, {label}, a.n_spans FROM _cf_agg a",
            [dataset, manifest_id],
        )[0][0]

    # Spans and captions. Another manifest of the same dataset may already hold the same span and caption.
    spans = 0
    if c.spans or "caption" in c.given:
        r = c
        has_span = "r.start_ms IS NOT NULL" if c.spans else "FALSE"
        span_filter = f"r.error IS NULL AND ({has_span} OR {r('caption', 'r.')} IS NOT NULL)"
        had_spans = (
            had_members
            and _x(con, "had spans", "SELECT count(*) > 0 FROM clip_spans WHERE dataset = ?", [dataset])[0][0]
        )
        clip_id = f"CASE WHEN r.start_ms IS NOT NULL THEN {_ROW_CLIP_ID} END" if c.spans else "NULL::VARCHAR"
        dedup = (
            f"""AND NOT EXISTS (SELECT 1 FROM clip_spans x WHERE x.dataset = ? AND x.source_id = r.source_id
                  AND x.clip_id IS NOT DISTINCT FROM {clip_id} AND x.caption IS NOT DISTINCT FROM {r("caption", "r.")})"""
            if had_spans
            else ""
        )
        params: list[Any] = [dataset, manifest_id] + ([dataset] if had_spans else [])
        start, end = ("r.start_ms", "r.end_ms") if c.spans else ("NULL::BIGINT", "NULL::BIGINT")
        extra = "CAST(r.extra AS JSON)" if "extra" in c.given else "NULL::JSON"
        spans = _x(
            con,
            "insert spans",
            f"""INSERT INTO clip_spans (dataset, source_id, clip_id, start_ms, end_ms, caption, label, split,
                                        manifest_id, line, extra)
                SELECT ?, r.source_id, {clip_id}, {start}, {end}, {r("caption", "r.")}, {r("label", "r.")},
                       {r("split", "r.")}, ?, r.line, {extra}
                FROM _cf_rows r WHERE {span_filter} {dedup}""",
            params,
        )[0][0]
    if had_members and c.spans:
        # A source the dataset already had: its spans are the distinct ones of every manifest, which a
        # later manifest may repeat, so count them again where this manifest gave any.
        _x(
            con,
            "update memberships",
            """UPDATE memberships SET n_spans = t.n
               FROM (SELECT source_id, count(DISTINCT clip_id) AS n FROM clip_spans
                     WHERE dataset = ? AND source_id IN (SELECT source_id FROM _cf_agg WHERE n_spans > 0)
                     GROUP BY source_id) t
               WHERE memberships.dataset = ? AND memberships.source_id = t.source_id
                 AND memberships.n_spans IS DISTINCT FROM t.n""",
            [dataset, dataset],
        )
    # Spans are the distinct clips with times (a row repeated is one span, as memberships count them); a
    # caption of the whole video (MSR-VTT, WebVid) is a caption, not a span.
    captions = 0
    if spans and had_spans:
        spans, captions = _x(
            con,
            "count spans",
            """SELECT count(DISTINCT clip_id) FILTER (WHERE start_ms IS NOT NULL), count(caption)
               FROM clip_spans WHERE dataset = ? AND manifest_id = ?""",
            [dataset, manifest_id],
        )[0]
    elif spans:
        # Nothing was left out as already there, so the spans are the distinct (source, start, end) of the
        # valid rows, which the per-source aggregate has counted (a distinct count of clip ids, or a scan
        # of clip_spans, would redo that work), and the captions are those of the valid rows.
        spans = _x(con, "count spans", "SELECT coalesce(sum(n_spans), 0) FROM _cf_agg")[0][0] if c.spans else 0
        if "caption" in c.given:
            captions = _x(
                con, "count captions", "SELECT count(caption) FROM _cf_rows WHERE error IS NULL"
            )[0][0]

    _x(
        con,
        "insert manifest",
        "INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
        [manifest_id, dataset, uri, fmt, total, total - bad_rows, bad_rows],
    )
    _x(
        con,
        "upsert dataset",
        """INSERT INTO datasets VALUES (?, ?, ?, current_timestamp::TIMESTAMP, current_timestamp::TIMESTAMP)
           ON CONFLICT (dataset) DO UPDATE SET last_ingested_at = excluded.last_ingested_at,
               format = coalesce(datasets.format, excluded.format),
               registry_key = coalesce(datasets.registry_key, excluded.registry_key)""",
        [dataset, fmt, registry_key],
    )
    for t in ("_cf_agg", "_cf_rows", readers.RAW):
        _x(con, "drop", f"DROP TABLE IF EXISTS {t}")
    return _Written(total, bad_rows, new_sources, new_members, int(spans), int(captions), first_errors)


def _summary(
    w: _Written,
    uri: str,
    manifest_id: str,
    dataset: str,
    fmt: str,
    started: float,
    *,
    lines_exact: bool = True,
) -> IngestSummary:
    return IngestSummary(
        uri=uri,
        manifest_id=manifest_id,
        dataset=dataset,
        format=fmt,
        rows_total=w.rows_total,
        rows_ok=w.rows_total - w.rows_bad,
        rows_bad=w.rows_bad,
        new_sources=w.new_sources,
        new_memberships=w.new_memberships,
        spans=w.spans,
        captions=w.captions,
        lines_exact=lines_exact,
        seconds=time.monotonic() - started,
        errors=w.errors,
    )


def _x(con: duckdb.DuckDBPyConnection, step: str, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one statement of the ingest, fetch its rows, and log its duration."""
    with _step(step):
        return con.execute(sql, params or []).fetchall()


def _stage(con: duckdb.DuckDBPyConnection, facts: FileFacts, kind: str, adapter) -> Staged:
    if kind == "csv":
        return readers.stage_csv(
            con, facts, header=adapter.header, names=list(adapter.names) if adapter.names else None
        )
    if kind == "jsonl":
        return readers.stage_lines(con, facts)
    if kind == "json":
        return readers.stage_json_document(con, facts)
    if kind == "parquet":
        return readers.stage_parquet(con, facts)
    raise ManifestError(f"cannot read file kind {kind}", item=facts.path)


def _registry_key(dataset: str, implied: str | None) -> str | None:
    """The registry entry a dataset refers to: its own name when the registry knows it, else the format's."""
    try:
        from .registry import load_registry

        known = load_registry().dataset(dataset) is not None
    except (ImportError, ClipfactoryError):
        known = False
    return dataset if known else implied


def ingest_manifest(
    catalog: Catalog,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    dataset: str | None = None,
    mapping: str | dict[str, str] | None = None,
    captions: str | os.PathLike | None = None,
    license: str | None = None,
    rights_holder: str | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    max_errors: int = 20,
    progress: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Ingest one manifest file (or an owned media folder) into ``catalog``.

    ``format`` overrides detection; ``dataset`` names the dataset (default: the format's registry key).
    ``mapping`` is the generic adapter's column mapping (``id=col,url=col,start=col,end=col,...``).
    ``captions`` is HowTo100M's ``caption.pickle``. ``license``/``rights_holder`` apply to owned media.
    ``progress`` is called with the name of each phase (:data:`INGEST_PHASES`) as it begins.
    """
    started = time.monotonic()
    opts = IngestOptions(memory_limit=memory_limit, threads=threads, max_errors=max_errors)
    spath = str(path)
    token = _PROGRESS.set(_once_each(progress) if progress else None)
    try:
        return _ingest_one(catalog, spath, format, dataset, mapping, captions, license, rights_holder, opts, started)
    except duckdb.OutOfMemoryException as exc:
        raise out_of_memory(spath, opts, exc) from None
    finally:
        _PROGRESS.reset(token)


def _once_each(progress: Callable[[str], None]) -> Callable[[str], None]:
    """``progress``, called once per phase however many steps the phase has."""
    seen: set[str] = set()

    def report(phase: str) -> None:
        if phase not in seen:
            seen.add(phase)
            progress(phase)

    return report


def out_of_memory(item: str, opts: IngestOptions, exc: BaseException) -> TerminalError:
    """The error of an ingest that DuckDB could not fit in its memory limit: which limit, and the fix."""
    used = re.search(r"\(([^()]*/[^()]*) used\)", str(exc))
    limit = f"--memory-limit {opts.memory_limit}" if opts.memory_limit else "DuckDB's default limit (80% of RAM)"
    return TerminalError(
        f"DuckDB ran out of memory ingesting this file under {limit}"
        + (f" ({used.group(1)} in use)" if used else ""),
        item=item,
        fix="give a larger --memory-limit (for example --memory-limit 4GB), or fewer --threads",
    )


def _ingest_one(
    catalog: Catalog,
    spath: str,
    format: str | None,
    dataset: str | None,
    mapping: str | dict[str, str] | None,
    captions: str | os.PathLike | None,
    license: str | None,
    rights_holder: str | None,
    opts: IngestOptions,
    started: float,
) -> IngestSummary:
    if (format or "").strip().lower() in ("owned", "folder") or _is_owned_target(spath):
        from .owned import ingest_owned

        return ingest_owned(
            catalog,
            [spath],
            license=license,
            rights_holder=rights_holder,
            dataset=dataset or "owned",
            opts=opts,
        )
    local = _local_manifest(spath)
    try:
        return _ingest_file(catalog, spath, local, format, dataset, mapping, captions, opts, started)
    finally:
        if local != spath and not spath.startswith("file://"):
            shutil.rmtree(os.path.dirname(local), ignore_errors=True)


def _ingest_file(
    catalog: Catalog,
    uri: str,
    local: str,
    format: str | None,
    dataset: str | None,
    mapping: str | dict[str, str] | None,
    captions: str | os.PathLike | None,
    opts: IngestOptions,
    started: float,
) -> IngestSummary:
    if not os.path.isfile(local):
        raise ManifestError("manifest not found", item=uri, fix="check the path")
    m = parse_mapping(mapping)
    facts = FileFacts.of(local)
    manifest_id = facts.sha256
    # A first ingest creates the catalog (in the write below); only an existing one can know the file.
    prior = _already(catalog, manifest_id) if catalog.path.exists() else None
    if prior is not None:
        s = _already_summary(uri, manifest_id, prior)
        s.seconds = time.monotonic() - started
        return s
    adapter, det, implied = choose(facts, format, m)
    if adapter.name == "howto100m" and captions is None:
        sibling = Path(local).with_name("caption.pickle")
        captions = str(sibling) if sibling.exists() else None
    ctx = Context(
        path=local,
        facts=facts,
        staged=Staged(list(det.columns), 0, kind=det.kind),
        mapping=m,
        options={"captions": str(captions) if captions else None},
    )
    inferred = implied or (adapter.default_dataset(ctx) if adapter.default_dataset else None)
    name = dataset or inferred or adapter.registry_key
    if not name:
        if adapter.name == "kinetics":
            raise ManifestError(
                "cannot tell which Kinetics this list is (it has no is_cc column and its name does not say)",
                item=uri,
                fix="give --dataset kinetics-600 or --dataset kinetics-700",
            )
        raise ManifestError(
            f"the {adapter.name} format needs a dataset name", item=uri, fix="give --dataset NAME"
        )
    name = _dataset_name(name)
    fmt = adapter.name
    registry_key = _registry_key(name, inferred or adapter.registry_key)

    with catalog.write() as con:
        done = _begin(con, catalog, uri, manifest_id, opts)
        if done is not None:
            return done
        with _step("read"):
            staged = _stage(con, facts, det.kind, adapter)
        ctx.staged = staged
        with _step("adapter"):
            pre = adapter.build(ctx, con)
        cols = _Cols(ctx.given)
        _x(con, "rows", f"CREATE OR REPLACE TEMP TABLE _cf_rows AS {_finish_sql(pre, cols)}")
        w = _write(
            con,
            manifest_id=manifest_id,
            dataset=name,
            uri=uri,
            fmt=fmt,
            registry_key=registry_key,
            staged=staged,
            cols=cols,
            opts=opts,
        )
    return _summary(w, uri, manifest_id, name, fmt, started, lines_exact=staged.lines_exact)


def ingest_manifests(
    catalog: Catalog, paths: Iterable[str | os.PathLike], **kwargs: Any
) -> list[IngestSummary]:
    """Ingest several manifests, one transaction each, in order."""
    return [ingest_manifest(catalog, p, **kwargs) for p in paths]


def ingest_pre_rows(
    catalog: Catalog,
    pre: pa.Table,
    *,
    manifest_id: str,
    dataset: str,
    uri: str,
    fmt: str,
    registry_key: str | None = None,
    opts: IngestOptions | None = None,
    extra_errors: Sequence[RowError] = (),
) -> IngestSummary:
    """Ingest rows that were built in Python (owned media): same validation and writes as a manifest."""
    started = time.monotonic()
    opts = opts or IngestOptions()
    missing = [c for c in PRE_COLUMNS if c not in pre.column_names]
    for c in missing:
        pre = pre.append_column(c, pa.nulls(pre.num_rows, _ARROW[PRE_COLUMNS[c]]))
    given = {c for c in pre.column_names if pre.column(c).null_count < pre.num_rows}
    pre = pre.select(list(PRE_COLUMNS))
    with catalog.write() as con:
        done = _begin(con, catalog, uri, manifest_id, opts)
        if done is not None:
            return done
        con.register("_cf_pre_in", pre)
        con.execute("CREATE OR REPLACE TEMP TABLE _cf_pre AS SELECT * FROM _cf_pre_in")
        con.unregister("_cf_pre_in")
        cols = _Cols(given)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cf_rows AS {_finish_sql('SELECT * FROM _cf_pre', cols)}")
        staged = Staged([], pre.num_rows, list(extra_errors), True, "python")
        w = _write(
            con,
            manifest_id=manifest_id,
            dataset=dataset,
            uri=uri,
            fmt=fmt,
            registry_key=registry_key,
            staged=staged,
            cols=cols,
            opts=opts,
        )
    return _summary(w, uri, manifest_id, dataset, fmt, started)


_ARROW = {"BIGINT": pa.int64(), "VARCHAR": pa.string()}

#: :data:`~clipfactory.ids.CLIP_ID_SQL` over the columns of ``_cf_rows r`` (the spans insert's dedup
#: subquery has columns of the same names).
_ROW_CLIP_ID = re.sub(r"\b(source_id|start_ms|end_ms)\b", r"r.\1", CLIP_ID_SQL)


def _is_owned_target(path: str) -> bool:
    if "://" in path and not path.startswith("file://"):
        return Path(path.split("?", 1)[0]).suffix.lower() not in _MANIFEST_SUFFIXES
    p = Path(path.removeprefix("file://"))
    return p.is_dir() or p.suffix.lower() in MEDIA_SUFFIXES


_MANIFEST_SUFFIXES = {
    ".csv",
    ".tsv",
    ".txt",
    ".json",
    ".jsonl",
    ".ndjson",
    ".parquet",
    ".pq",
    ".pickle",
    ".pkl",
}


def _local_manifest(path: str) -> str:
    """A local path for a manifest given as a local path, ``file://`` or an fsspec URL (copied to a temp file)."""
    if path.startswith("file://"):
        return path[len("file://") :]
    if "://" not in path:
        return path
    import tempfile

    import fsspec

    # Keep the file name: it can say which dataset or split the manifest is.
    name = Path(path.split("?", 1)[0]).name or "manifest"
    tmp = os.path.join(tempfile.mkdtemp(prefix="clipfactory-manifest-"), name)
    try:
        with fsspec.open(path, "rb") as src, open(tmp, "wb") as dst:
            while True:
                buf = src.read(1 << 20)
                if not buf:
                    break
                dst.write(buf)
    except Exception as exc:  # fsspec backends raise their own error types
        shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)
        raise ManifestError(f"cannot fetch manifest: {exc}", item=path) from exc
    return tmp
