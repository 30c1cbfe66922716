"""Ingest manifests into the catalog: vectorised, atomic, idempotent.

One manifest is one transaction. DuckDB reads the file (every field as text), the format's adapter maps
it to pre-rows in SQL (:mod:`.adapters`), and one SQL pass canonicalises ids, converts spans to
milliseconds, validates, and computes clip ids. Then, still in the same transaction, the rows go to
``sources`` (one row per canonical video across every dataset: new ones inserted, missing fields of
known ones filled), ``memberships`` (one row per source per dataset), ``clip_spans``, ``ingest_errors``,
``manifests`` and ``datasets``. A crash or Ctrl-C anywhere before the commit leaves the catalog exactly
as it was. The manifest id is the sha256 of the file's bytes, so ingesting the same file again is a
no-op. No Python runs per row, except for the rare Panda-70M rows whose Python-list strings need
``ast.literal_eval`` and for owned files, which must be hashed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..catalog import Catalog
from ..errors import ClipfactoryError, ManifestError
from ..ids import CLIP_ID_SQL
from . import readers
from .adapters import PRE_COLUMNS, Context, parse_mapping
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
    spans: int = 0
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
        con.execute(f"SET memory_limit = {lit(str(opts.memory_limit))}")


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


# -- the shared SQL pass ------------------------------------------------------------------------------
def _finish_sql(pre_sql: str) -> str:
    """Validation, canonical source ids and clip ids over an adapter's pre-rows."""
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
    SELECT ord, line, pointer, source_id, platform, pid AS platform_id, url, title, duration_ms, start_ms, end_ms,
           caption, label, split, extra, content_sha256, origin_uri, size_bytes, content_license, rights_holder,
           CASE WHEN error IS NULL AND start_ms IS NOT NULL THEN {CLIP_ID_SQL} END AS clip_id,
           error, CASE WHEN error IS NOT NULL THEN raw END AS raw
    FROM s"""


def _raw_fill_sql(staged: Staged) -> str:
    """How to show an error row's text when the adapter did not keep it: the fields joined by commas."""
    if staged.kind == "jsonl":
        return "s.j"
    if staged.kind in ("csv", "parquet") and staged.columns:
        cols = ", ".join(f"coalesce(s.{_q(c)}, '')" for c in staged.columns)
        return f"concat_ws(',', {cols})"
    return "NULL"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Written:
    rows_total: int
    rows_bad: int
    new_sources: int
    new_memberships: int
    spans: int
    errors: list[RowError]


def _write(
    con: duckdb.DuckDBPyConnection,
    *,
    manifest_id: str,
    dataset: str,
    uri: str,
    fmt: str,
    registry_key: str | None,
    staged: Staged,
    opts: IngestOptions,
) -> _Written:
    """Everything after ``_cf_rows`` exists: counts, then every insert. Runs inside the write transaction."""
    total, bad_rows, n_spans = con.execute(
        """SELECT count(DISTINCT ord), count(DISTINCT ord) FILTER (WHERE error IS NOT NULL),
                  count(*) FILTER (WHERE error IS NULL AND (start_ms IS NOT NULL OR caption IS NOT NULL))
           FROM _cf_rows"""
    ).fetchall()[0]
    rejects = staged.rejects
    total += len(rejects)
    bad_rows += len(rejects)

    # Errors: rows the SQL pass flagged, and rows DuckDB could not split into fields.
    raw_fill = _raw_fill_sql(staged)
    join = "LEFT JOIN _cf_src s USING (ord)" if raw_fill != "NULL" else ""
    con.execute(
        f"""INSERT INTO ingest_errors (manifest_id, dataset, uri, line, reason, raw, pointer)
            SELECT ?, ?, ?, r.line, r.error, coalesce(r.raw, {raw_fill}), r.pointer
            FROM _cf_rows r {join} WHERE r.error IS NOT NULL""",
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
        con.execute(
            """INSERT INTO ingest_errors (manifest_id, dataset, uri, line, reason, raw, pointer)
               SELECT ?, ?, ?, line, reason, raw, pointer FROM _cf_rejects""",
            [manifest_id, dataset, uri],
        )
        con.unregister("_cf_rejects")
    first_errors = [
        RowError(line, reason, raw, pointer)
        for line, reason, raw, pointer in con.execute(
            """SELECT line, reason, raw, pointer FROM ingest_errors WHERE manifest_id = ?
               ORDER BY line NULLS LAST, pointer LIMIT ?""",
            [manifest_id, opts.max_errors],
        ).fetchall()
    ]

    # One row per source: what the manifest says about the video, and its membership in this dataset.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _cf_agg AS
           SELECT source_id, any_value(platform) AS platform, any_value(platform_id) AS platform_id,
                  any_value(url) AS url, any_value(title) AS title, max(duration_ms) AS duration_ms,
                  any_value(content_sha256) AS content_sha256, any_value(origin_uri) AS origin_uri,
                  any_value(size_bytes) AS size_bytes, any_value(content_license) AS content_license,
                  any_value(rights_holder) AS rights_holder,
                  min(ord) AS first_ord, arg_min(line, ord) AS first_line, arg_min(split, ord) AS split,
                  arg_min(label, ord) AS label, count(DISTINCT clip_id) AS n_spans
           FROM _cf_rows WHERE error IS NULL GROUP BY source_id"""
    )
    new_sources = con.execute(
        """INSERT INTO sources (source_id, platform, platform_id, url, title, duration_ms, content_sha256,
                                origin_uri, size_bytes, content_license, rights_holder)
           SELECT a.source_id, a.platform, a.platform_id,
                  CASE WHEN a.platform = 'youtube' THEN 'https://www.youtube.com/watch?v=' || a.platform_id
                       ELSE a.url END,
                  a.title, a.duration_ms, a.content_sha256, a.origin_uri, a.size_bytes, a.content_license,
                  a.rights_holder
           FROM _cf_agg a ANTI JOIN sources s ON s.source_id = a.source_id"""
    ).fetchall()[0][0]
    # Known sources: fill the fields they lack (never overwrite what is there).
    fills = con.execute(
        "SELECT count(title), count(duration_ms), count(url), count(content_license), count(rights_holder) FROM _cf_agg"
    ).fetchall()[0]
    fillable = [
        c
        for c, n in zip(
            ("title", "duration_ms", "url", "content_license", "rights_holder"), fills, strict=True
        )
        if n
    ]
    if fillable and new_sources < len_agg(con):
        sets = ", ".join(f"{c} = coalesce(sources.{c}, a.{c})" for c in fillable)
        cond = " OR ".join(f"(sources.{c} IS NULL AND a.{c} IS NOT NULL)" for c in fillable)
        con.execute(
            f"UPDATE sources SET {sets} FROM _cf_agg a WHERE sources.source_id = a.source_id AND ({cond})"
        )

    had_members = con.execute("SELECT count(*) > 0 FROM memberships WHERE dataset = ?", [dataset]).fetchall()[
        0
    ][0]
    if had_members:
        con.execute(
            """UPDATE memberships SET n_spans = memberships.n_spans + a.n_spans
               FROM _cf_agg a WHERE memberships.dataset = ? AND memberships.source_id = a.source_id
                 AND a.n_spans > 0""",
            [dataset],
        )
        new_members = con.execute(
            """INSERT INTO memberships SELECT ?, a.source_id, ?, a.first_line, a.split, a.label, a.n_spans
               FROM _cf_agg a ANTI JOIN (SELECT source_id FROM memberships WHERE dataset = ?) m
                 ON m.source_id = a.source_id""",
            [dataset, manifest_id, dataset],
        ).fetchall()[0][0]
    else:
        new_members = con.execute(
            "INSERT INTO memberships SELECT ?, source_id, ?, first_line, split, label, n_spans FROM _cf_agg",
            [dataset, manifest_id],
        ).fetchall()[0][0]

    # Spans and captions. Another manifest of the same dataset may already hold the same span and caption.
    span_filter = "r.error IS NULL AND (r.start_ms IS NOT NULL OR r.caption IS NOT NULL)"
    had_spans = (
        had_members
        and con.execute("SELECT count(*) > 0 FROM clip_spans WHERE dataset = ?", [dataset]).fetchall()[0][0]
    )
    dedup = (
        """AND NOT EXISTS (SELECT 1 FROM clip_spans c WHERE c.dataset = ? AND c.source_id = r.source_id
              AND c.clip_id IS NOT DISTINCT FROM r.clip_id AND c.caption IS NOT DISTINCT FROM r.caption)"""
        if had_spans
        else ""
    )
    params: list[Any] = [dataset, manifest_id] + ([dataset] if had_spans else [])
    spans = con.execute(
        f"""INSERT INTO clip_spans (dataset, source_id, clip_id, start_ms, end_ms, caption, label, split,
                                    manifest_id, line, extra)
            SELECT ?, r.source_id, r.clip_id, r.start_ms, r.end_ms, r.caption, r.label, r.split, ?, r.line,
                   CAST(r.extra AS JSON)
            FROM _cf_rows r WHERE {span_filter} {dedup}""",
        params,
    ).fetchall()[0][0]
    del n_spans

    con.execute(
        """INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)""",
        [manifest_id, dataset, uri, fmt, total, total - bad_rows, bad_rows],
    )
    con.execute(
        """INSERT INTO datasets VALUES (?, ?, ?, current_timestamp::TIMESTAMP, current_timestamp::TIMESTAMP)
           ON CONFLICT (dataset) DO UPDATE SET last_ingested_at = excluded.last_ingested_at,
               format = coalesce(datasets.format, excluded.format),
               registry_key = coalesce(datasets.registry_key, excluded.registry_key)""",
        [dataset, fmt, registry_key],
    )
    for t in ("_cf_agg", "_cf_rows", readers.RAW):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return _Written(total, bad_rows, new_sources, new_members, spans, first_errors)


def len_agg(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM _cf_agg").fetchall()[0][0]


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
) -> IngestSummary:
    """Ingest one manifest file (or an owned media folder) into ``catalog``.

    ``format`` overrides detection; ``dataset`` names the dataset (default: the format's registry key).
    ``mapping`` is the generic adapter's column mapping (``id=col,url=col,start=col,end=col,...``).
    ``captions`` is HowTo100M's ``caption.pickle``. ``license``/``rights_holder`` apply to owned media.
    """
    started = time.monotonic()
    opts = IngestOptions(memory_limit=memory_limit, threads=threads, max_errors=max_errors)
    spath = str(path)
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
        if local != spath and spath.split("://", 1)[0] not in ("", "file"):
            with contextlib.suppress(OSError):
                os.unlink(local)


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
    prior = _already(catalog, manifest_id)
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
        if con.execute("SELECT count(*) FROM manifests WHERE manifest_id = ?", [manifest_id]).fetchall()[0][
            0
        ]:
            row = _already(catalog, manifest_id)
            assert row is not None
            return _already_summary(uri, manifest_id, row)
        _configure(con, opts)
        install_macros(con)
        staged = _stage(con, facts, det.kind, adapter)
        ctx.staged = staged
        pre = adapter.build(ctx, con)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cf_rows AS {_finish_sql(pre)}")
        w = _write(
            con,
            manifest_id=manifest_id,
            dataset=name,
            uri=uri,
            fmt=fmt,
            registry_key=registry_key,
            staged=staged,
            opts=opts,
        )
    return IngestSummary(
        uri=uri,
        manifest_id=manifest_id,
        dataset=name,
        format=fmt,
        rows_total=w.rows_total,
        rows_ok=w.rows_total - w.rows_bad,
        rows_bad=w.rows_bad,
        new_sources=w.new_sources,
        new_memberships=w.new_memberships,
        spans=w.spans,
        lines_exact=staged.lines_exact,
        seconds=time.monotonic() - started,
        errors=w.errors,
    )


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
    pre = pre.select(list(PRE_COLUMNS))
    with catalog.write() as con:
        if con.execute("SELECT count(*) FROM manifests WHERE manifest_id = ?", [manifest_id]).fetchall()[0][
            0
        ]:
            row = _already(catalog, manifest_id)
            assert row is not None
            return _already_summary(uri, manifest_id, row)
        _configure(con, opts)
        install_macros(con)
        con.register("_cf_pre_in", pre)
        con.execute("CREATE OR REPLACE TEMP TABLE _cf_pre AS SELECT * FROM _cf_pre_in")
        con.unregister("_cf_pre_in")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cf_rows AS {_finish_sql('SELECT * FROM _cf_pre')}")
        staged = Staged([], pre.num_rows, list(extra_errors), True, "python")
        w = _write(
            con,
            manifest_id=manifest_id,
            dataset=dataset,
            uri=uri,
            fmt=fmt,
            registry_key=registry_key,
            staged=staged,
            opts=opts,
        )
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
        seconds=time.monotonic() - started,
        errors=w.errors,
    )


_ARROW = {"BIGINT": pa.int64(), "VARCHAR": pa.string()}


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

    suffix = Path(path.split("?", 1)[0]).suffix
    fd, tmp = tempfile.mkstemp(prefix="clipfactory-manifest-", suffix=suffix)
    os.close(fd)
    try:
        with fsspec.open(path, "rb") as src, open(tmp, "wb") as dst:
            while True:
                buf = src.read(1 << 20)
                if not buf:
                    break
                dst.write(buf)
    except Exception as exc:
        os.unlink(tmp)
        raise ManifestError(f"cannot fetch manifest: {exc}", item=path) from exc
    return tmp
