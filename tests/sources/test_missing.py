"""`sources missing`: manifest entries without media, in a blob store or a folder named by platform id."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from clipfactory.errors import NotFoundError
from clipfactory.sources import ingest_manifest, missing_sources
from clipfactory.storage import BlobStore


@pytest.fixture
def cat(catalog, manifests, tmp_path):
    ingest_manifest(catalog, manifests / "kinetics400_sample.csv")  # 0wR5jVB-WPk, 3caPS4FHFF8, AbCdEfGhIjK
    ingest_manifest(catalog, manifests / "acav100m_output.csv")  # NgI3xyMX1Ss, 0wR5jVB-WPk
    return catalog


def test_folder_named_by_platform_id(cat, tmp_path):
    d = tmp_path / "videos"
    (d / "deep").mkdir(parents=True)
    (d / "0wR5jVB-WPk.mp4").write_bytes(b"x")
    (d / "deep" / "3caPS4FHFF8_000036_000046.mp4").write_bytes(b"x")  # Kinetics clip name
    (d / ".AbCdEfGhIjK.mp4").write_bytes(b"x")  # hidden: not media
    r = missing_sources(cat, d)
    assert (r.sources, r.present, r.missing, r.store_kind) == (4, 2, 2, "media folder")
    assert [row["source_id"] for row in r.rows] == ["youtube:AbCdEfGhIjK", "youtube:NgI3xyMX1Ss"]
    assert r.rows[1]["datasets"] == ["acav100m"]
    only = missing_sources(cat, d, dataset="kinetics-400")
    assert (only.sources, only.missing) == (3, 1)


def test_blob_store_and_parquet_output(cat, tmp_path):
    store = BlobStore(tmp_path / "store")
    uri, _ = store.put_file(__file__)
    gone = "blob:sha256:" + "0" * 64
    with cat.write() as con:
        con.execute("UPDATE sources SET blob_uri = ? WHERE source_id = 'youtube:0wR5jVB-WPk'", [uri])
        con.execute("UPDATE sources SET blob_uri = ? WHERE source_id = 'youtube:3caPS4FHFF8'", [gone])
    out = tmp_path / "missing.parquet"
    r = missing_sources(cat, store.root, output=out, limit=1)
    assert (r.present, r.missing, r.store_kind) == (1, 3, "blob store")
    assert len(r.rows) == 1
    table = pq.read_table(out)
    assert sorted(table.column("source_id").to_pylist()) == [
        "youtube:3caPS4FHFF8",
        "youtube:AbCdEfGhIjK",
        "youtube:NgI3xyMX1Ss",
    ]


def test_missing_errors(cat, tmp_path):
    with pytest.raises(NotFoundError, match="store folder not found"):
        missing_sources(cat, tmp_path / "nope")
    with pytest.raises(NotFoundError, match="no such dataset"):
        missing_sources(cat, tmp_path, dataset="nope")
