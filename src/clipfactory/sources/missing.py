"""Which manifest entries have no media: one vectorised join of sources against a file listing.

A store is either a clipfactory blob store (``<store>/blobs/aa/bb/<sha256>``: a source has media when its
``blob_uri`` or ``content_sha256`` names a blob that exists) or a plain folder of media files named by
platform id (``<ytid>.mp4``, Kinetics-style ``<ytid>_<start:06d>_<end:06d>.mp4``, ``<sha256>.mp4``).
Both are checked, so a blob store with a few loose files works too. DuckDB's ``glob()`` lists local
folders; fsspec lists remote prefixes. At the scale of millions of sources this is two hash joins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, dict_rows
from ..errors import NotFoundError
from ..storage import atomic_path
from .sql import lit

_BLOB_RE = r"(?:^|/)blobs/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})$"
_KINETICS_RE = r"^(.+)_[0-9]{6}_[0-9]{6}$"


@dataclass
class MissingReport:
    store: str
    store_kind: str  # blob store | media folder | blob store + media folder | empty
    files: int
    sources: int
    present: int
    missing: int
    dataset: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # the first missing sources
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "store_kind": self.store_kind,
            "files": self.files,
            "dataset": self.dataset,
            "sources": self.sources,
            "present": self.present,
            "missing": self.missing,
            "output": self.output,
            "rows": self.rows,
        }


def _listing(con, store: str) -> None:
    """Create ``_cf_files(rel)``: every file under the store, relative to it."""
    if "://" in store and not store.startswith("file://"):
        import fsspec

        fs, root = fsspec.core.url_to_fs(store)
        root = root.rstrip("/")
        names = [f[len(root) + 1 :] if f.startswith(root + "/") else f for f in fs.find(root)]
        con.register("_cf_files_in", pa.table({"rel": pa.array(names, pa.string())}))
        con.execute("CREATE OR REPLACE TEMP TABLE _cf_files AS SELECT rel FROM _cf_files_in")
        con.unregister("_cf_files_in")
        return
    root = Path(store.removeprefix("file://"))
    if not root.is_dir():
        raise NotFoundError(
            "store folder not found", item=store, fix="give --store a folder or a blob store root"
        )
    base = str(root.resolve())
    pattern = os.path.join(base, "**")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _cf_files AS
            SELECT substr(file, {len(base) + 2}) AS rel FROM glob({lit(pattern)})"""
    )


def missing_sources(
    catalog: Catalog,
    store: str | os.PathLike,
    *,
    dataset: str | None = None,
    output: str | os.PathLike | None = None,
    limit: int | None = 20,
) -> MissingReport:
    """Sources (of ``dataset``, or all) with no media in ``store``; all of them go to ``output`` (Parquet)."""
    store = str(store)
    with catalog.read() as con:
        if (
            dataset
            and not con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [dataset]).fetchall()[0][0]
        ):
            raise NotFoundError(
                "no such dataset in the catalog", item=dataset, fix="see `clipfactory datasets list`"
            )
        _listing(con, store)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _cf_names AS
                WITH f AS (
                    SELECT rel, regexp_extract(rel, {lit(_BLOB_RE)}, 1) AS blob,
                           regexp_replace(regexp_replace(rel, '^.*/', ''), '\\.[^.]*$', '') AS stem
                    FROM _cf_files WHERE NOT regexp_matches(rel, '(^|/)\\.'))
                SELECT DISTINCT 'blob' AS kind, blob AS name FROM f WHERE blob <> ''
                UNION SELECT DISTINCT 'name', stem FROM f WHERE blob = ''
                UNION SELECT DISTINCT 'name', regexp_extract(stem, {lit(_KINETICS_RE)}, 1) FROM f
                    WHERE blob = '' AND regexp_matches(stem, {lit(_KINETICS_RE)})"""
        )
        files, n_blobs, n_named = con.execute(
            """SELECT (SELECT count(*) FROM _cf_files), count(*) FILTER (WHERE kind = 'blob'),
                      count(*) FILTER (WHERE kind = 'name') FROM _cf_names"""
        ).fetchall()[0]
        scope = (
            "(SELECT s.* FROM sources s SEMI JOIN memberships m ON m.source_id = s.source_id AND m.dataset = ?)"
            if dataset
            else "sources"
        )
        params = [dataset] if dataset else []
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _cf_missing AS
                WITH s AS (SELECT source_id, platform, platform_id, url, content_sha256, blob_uri FROM {scope}),
                     b AS (SELECT name FROM _cf_names WHERE kind = 'blob'),
                     n AS (SELECT name FROM _cf_names WHERE kind = 'name'),
                     have AS (
                        SELECT source_id FROM s JOIN b
                            ON b.name = CASE WHEN s.blob_uri LIKE 'blob:sha256:%' THEN substr(s.blob_uri, 13) END
                        UNION SELECT source_id FROM s JOIN b ON b.name = s.content_sha256
                        UNION SELECT source_id FROM s JOIN n ON n.name = s.platform_id
                        UNION SELECT source_id FROM s JOIN n ON n.name = s.content_sha256)
                SELECT s.source_id, s.platform, s.platform_id, s.url,
                       (SELECT list(m.dataset ORDER BY m.dataset) FROM memberships m WHERE m.source_id = s.source_id)
                           AS datasets
                FROM s ANTI JOIN have USING (source_id)""",
            params,
        )
        total = con.execute(f"SELECT count(*) FROM {scope} s", params).fetchall()[0][0]
        missing = con.execute("SELECT count(*) FROM _cf_missing").fetchall()[0][0]
        lim = f"LIMIT {int(limit)}" if limit else ""
        cur = con.execute(f"SELECT * FROM _cf_missing ORDER BY source_id {lim}")
        rows = dict_rows(cur)
        out = None
        if output is not None:
            with atomic_path(output) as tmp:
                con.execute(
                    f"COPY (SELECT * FROM _cf_missing ORDER BY source_id) TO {lit(str(tmp))} (FORMAT parquet)"
                )
            out = str(output)
        for t in ("_cf_missing", "_cf_names", "_cf_files"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    kind = {
        (True, True): "blob store + media folder",
        (True, False): "blob store",
        (False, True): "media folder",
        (False, False): "empty",
    }[(n_blobs > 0, n_named > 0)]
    return MissingReport(
        store=store,
        store_kind=kind,
        files=int(files),
        sources=int(total),
        present=int(total - missing),
        missing=int(missing),
        dataset=dataset,
        rows=rows,
        output=out,
    )
