"""A hand-made build whose every figure is known from its rows (see the table in ``make_build``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipfactory.catalog import Catalog
from clipfactory.catalog.db import upsert_records
from clipfactory.config import load_settings
from clipfactory.records import SourceRecord

# source: (url, uploader, licence, acquired_at, datasets, [(duration_ms, size_bytes), ...])
SOURCES = {
    "web:s1": (
        "https://www.alpha.example/v/1",
        "ann",
        "CC-BY-4.0",
        "2024-05-01T10:00:00Z",
        ["kinetics-400", "stock"],
        [(60_000, 1000), (30_000, 1000)],
    ),
    "web:s2": (
        "https://alpha.example/v/2",
        "ann",
        "CC0-1.0",
        "2025-01-10T10:00:00Z",
        ["kinetics-400"],
        [(36_000, 500)],
    ),
    "web:s3": (
        "https://beta.example:8080/x",
        "bob",
        "CC-BY-SA-4.0",
        "2025-02-01T10:00:00Z",
        ["stock"],
        [(10_000, 100)] * 3,
    ),
    "sha256:s4": (None, None, "CC-BY-4.0", None, ["owned"], [(24_000, 50)]),
}
# Totals: 7 clips, 180 s (0.05 h), 4 sources. kinetics-400 126 s (70%), stock 120 s, owned 24 s.
# Domains: alpha.example 126 s / 2500 B, beta.example 30 s / 300 B, no URL 24 s. Uploaders: ann 126 s, bob 30 s.


def _index_rows(build_id: str, sources: dict) -> list[dict]:
    rows = []
    for sid, (_url, _up, lic, _acq, _ds, clips) in sources.items():
        for i, (dur, size) in enumerate(clips):
            cid = f"{sid.split(':')[1]}c{i}"
            rows.append(
                {
                    "build_id": build_id,
                    "shard": "shard-000000.tar",
                    "key": cid,
                    "clip_id": cid,
                    "source_id": sid,
                    "start_ms": i * dur,
                    "end_ms": (i + 1) * dur,
                    "duration_ms": dur,
                    "size_bytes": size,
                    "content_license": lic,
                    "rights_holder": f"holder of {sid}",
                    "attribution": f"credit {sid}",
                    "origin_uri": _url or f"{sid}.mp4",
                    "motion": 1.0 + i,
                    "sharpness": 100.0 * (i + 1),
                    "luma": 50.0 + 10 * i,
                    "caption": "a caption" if sid == "web:s1" else None,
                    "mp4_sha256": "0" * 64,
                }
            )
    return rows


def write_version(
    root: Path,
    build_id: str,
    version: int,
    sources: dict,
    *,
    purpose: str = "commercial",
    created_at: str = "2025-03-01T00:00:00Z",
    **extra,
) -> tuple[Path, dict]:
    out = root / "builds" / "synthetic" / f"v{version}"
    out.mkdir(parents=True)
    rows = _index_rows(build_id, sources)
    schema = pa.schema(
        [
            ("build_id", pa.string()),
            ("shard", pa.string()),
            ("key", pa.string()),
            ("clip_id", pa.string()),
            ("source_id", pa.string()),
            ("start_ms", pa.int64()),
            ("end_ms", pa.int64()),
            ("duration_ms", pa.int64()),
            ("size_bytes", pa.int64()),
            ("content_license", pa.string()),
            ("rights_holder", pa.string()),
            ("attribution", pa.string()),
            ("origin_uri", pa.string()),
            ("motion", pa.float64()),
            ("sharpness", pa.float64()),
            ("luma", pa.float64()),
            ("caption", pa.string()),
            ("mp4_sha256", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / "index.parquet")
    manifest = {
        "build_id": build_id,
        "name": "synthetic",
        "version": version,
        "purpose": purpose,
        "created_at": created_at,
        "supersedes": None,
        "n_clips": len(rows),
        "n_sources": len(sources),
        "n_shards": 1 if rows else 0,
        "shard_size": 100,
        "content_hash": "c" * 32,
        "shards": [{"name": "shard-000000.tar", "n_clips": len(rows), "sha256": "1" * 64, "bytes": 1}]
        if rows
        else [],
        "index": "index.parquet",
        "refused_sources": [],
        "files": [],
        "run_id": "run-1",
        "status": "complete",
        **extra,
    }
    (out / "build.json").write_text(json.dumps(manifest))
    return out, manifest


def fill_catalog(cat: Catalog, sources: dict, purpose: str = "commercial") -> None:
    with cat.write() as con:
        recs = []
        for sid, (url, up, lic, acq, _ds, _clips) in sources.items():
            recs.append(
                SourceRecord(
                    source_id=sid,
                    platform="owned" if url is None else "web",
                    url=url,
                    uploader=up,
                    content_license=lic,
                    acquired_at=acq,
                    title=f"title {sid}",
                    rights_holder=f"holder of {sid}",
                )
            )
        upsert_records(con, recs)
        for ds, fmt, reg in (
            ("kinetics-400", "kinetics", "kinetics-400"),
            ("stock", "generic", None),
            ("owned", "owned", "owned"),
        ):
            con.execute("INSERT INTO datasets VALUES (?, ?, ?, now(), now())", [ds, fmt, reg])
        for sid, (_url, _up, lic, _acq, dss, _clips) in sources.items():
            for ds in dss:
                con.execute("INSERT INTO memberships (dataset, source_id) VALUES (?, ?)", [ds, sid])
            attribution = not lic.startswith("CC0")
            con.execute(
                "INSERT INTO policy_decisions (source_id, purpose, decision, effective_class, attribution, share_alike, "
                "reasons, lineage) VALUES (?, ?, 'allow', 'commercial', ?, ?, [], '{}')",
                [sid, purpose, attribution, "SA" in lic],
            )
        for sid in [x for x in ("web:s1", "web:s2", "web:s3") if x in sources]:
            con.execute(
                "INSERT INTO fetch_attempts (run_id, source_id, url, started_at, finished_at, outcome) VALUES "
                "('run-1', ?, ?, TIMESTAMP '2024-05-01 09:00:00', TIMESTAMP '2025-02-01 11:00:00', 'kept')",
                [sid, sources[sid][0]],
            )
        for sid, signal, verdict in (
            ("web:s1", "robots.txt", "allow"),
            ("web:s9", "robots.txt", "deny"),
            ("web:s10", "tdmrep", "deny"),
        ):
            con.execute(
                "INSERT INTO consent_checks (run_id, source_id, signal, verdict) VALUES ('run-1', ?, ?, ?)",
                [sid, signal, verdict],
            )
        con.execute(
            "INSERT INTO stage_outcomes (run_id, stage, item_id, status, reason, recorded_at) VALUES "
            "('run-1', 'quality.filter', 'x1', 'dropped', 'quality.too_dark', now()),"
            "('run-1', 'quality.filter', 'x2', 'dropped', 'quality.too_dark', now()),"
            "('run-1', 'quality.filter', 'x3', 'dropped', 'quality.too_short', now())"
        )


@pytest.fixture
def synthetic(tmp_path):
    """(catalog, settings, build folder, manifest) of the hand-made build ``synthetic-v1``."""
    cat = Catalog(tmp_path / "catalog.duckdb", create=True)
    fill_catalog(cat, SOURCES)
    s = load_settings(
        None, overrides={"catalog": str(tmp_path / "catalog.duckdb"), "store": str(tmp_path / "store")}
    )
    out, manifest = write_version(tmp_path, "synthetic-v1", 1, SOURCES)
    return cat, s, out, manifest
