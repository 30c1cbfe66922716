"""Helpers shared by the policy tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from clipfactory.catalog import Catalog, upsert_records
from clipfactory.config import Settings
from clipfactory.records import SourceRecord

# The ingest tables (10_sources.sql) are another subsystem's; create the two the gate reads only when the
# schema does not have them, with exactly its column names.
MEMBERSHIPS_DDL = """
CREATE TABLE IF NOT EXISTS memberships (
    dataset VARCHAR, source_id VARCHAR, manifest_id VARCHAR, first_line BIGINT,
    split VARCHAR, label VARCHAR, n_spans BIGINT
)"""
DATASETS_DDL = """
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR, format VARCHAR, registry_key VARCHAR, first_ingested_at TIMESTAMP, last_ingested_at TIMESTAMP
)"""


def add(
    catalog: Catalog, sources: list[SourceRecord], memberships: list[tuple] = (), datasets: list[tuple] = ()
):
    """Insert sources and (dataset, source_id[, split]) memberships and (dataset, registry_key) datasets."""
    with catalog.write() as con:
        con.execute(MEMBERSHIPS_DDL)
        con.execute(DATASETS_DDL)
        upsert_records(con, list(sources))
        for m in memberships:
            dataset, source_id, split = (*m, None)[:3]
            con.execute(
                "INSERT INTO memberships (dataset, source_id, split, n_spans) VALUES (?, ?, ?, 1)",
                [dataset, source_id, split],
            )
        for d, key in datasets:
            con.execute(
                "INSERT INTO datasets (dataset, format, registry_key) VALUES (?, 'generic', ?)", [d, key]
            )


def yt(vid: str, **kw) -> SourceRecord:
    assert len(vid) == 11
    return SourceRecord(
        f"youtube:{vid}", "youtube", platform_id=vid, url=f"https://www.youtube.com/watch?v={vid}", **kw
    )


def owned(n: int, **kw) -> SourceRecord:
    h = hashlib.sha256(str(n).encode()).hexdigest()
    return SourceRecord(f"sha256:{h}", "owned", content_sha256=h, **kw)


def settings_with(tmp_path: Path, **files: str) -> Settings:
    """Settings whose policy/registry/permissions files hold the given TOML texts."""
    kw = {}
    for key, text in files.items():
        p = tmp_path / f"{key}.toml"
        p.write_text(text)
        kw[f"{key}_file"] = str(p)
    return Settings(**kw)
