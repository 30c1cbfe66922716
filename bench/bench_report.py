"""Disclosure reports of a build of 1 M clips: time and peak memory against one DuckDB scan of its index.

The build is synthetic (no media): an ``index.parquet`` of N clip rows over N/10 sources, and a catalog
holding those sources (with URLs on 5,000 domains, 20,000 uploaders, acquisition dates), two dataset
memberships per source, a policy decision per source, consent checks and outcome rows. The report is
made in a fresh process (``--child``) so that its peak RSS (VmHWM) is its own.

Baseline: one DuckDB pass over the index (count, sum of durations), the least any report must read.

    python bench/bench_report.py [--clips 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_build(root: Path, n_clips: int) -> Path:
    import duckdb

    from clipfactory.catalog import Catalog

    n_src = max(1, n_clips // 10)
    cat = Catalog(root / "catalog.duckdb", create=True)
    with cat.write() as con:
        con.execute(
            f"""INSERT INTO sources BY NAME
                SELECT 'web:' || i AS source_id, 'web' AS platform,
                       'https://host' || (i % 5000) || '.example/v/' || i AS url,
                       'uploader' || (i % 20000) AS uploader, 'holder' || (i % 20000) AS rights_holder,
                       'title ' || i AS title,
                       CASE i % 4 WHEN 0 THEN 'CC-BY-4.0' WHEN 1 THEN 'CC0-1.0' WHEN 2 THEN 'CC-BY-SA-4.0'
                                  ELSE 'LicenseRef-Stock' END AS content_license,
                       CASE WHEN i % 50 = 0 THEN NULL
                            ELSE strftime(TIMESTAMP '2022-01-01' + INTERVAL (i % 1000) DAY, '%Y-%m-%dT%H:%M:%SZ') END AS acquired_at
                FROM range({n_src}) t(i)"""
        )
        con.execute("INSERT INTO datasets VALUES ('kinetics-400', 'kinetics', 'kinetics-400', now(), now())")
        con.execute("INSERT INTO datasets VALUES ('stock', 'generic', NULL, now(), now())")
        con.execute(
            f"""INSERT INTO memberships (dataset, source_id)
                SELECT 'kinetics-400', 'web:' || i FROM range({n_src}) t(i) WHERE i % 3 <> 0
                UNION ALL SELECT 'stock', 'web:' || i FROM range({n_src}) t(i) WHERE i % 2 = 0"""
        )
        con.execute(
            f"""INSERT INTO policy_decisions (source_id, purpose, decision, effective_class, attribution,
                                              share_alike, reasons, lineage)
                SELECT 'web:' || i, 'commercial', 'allow', 'commercial', i % 4 <> 1, i % 4 = 2, [], '{{}}'
                FROM range({n_src}) t(i)"""
        )
        con.execute(
            f"""INSERT INTO fetch_attempts (run_id, source_id, url, started_at, finished_at, outcome)
                SELECT 'run-1', 'web:' || i, 'https://host' || (i % 5000) || '.example/v/' || i,
                       TIMESTAMP '2022-01-01', TIMESTAMP '2024-09-01', 'kept' FROM range({n_src}) t(i)"""
        )
        con.execute(
            f"""INSERT INTO consent_checks (run_id, source_id, signal, verdict)
                SELECT 'run-1', 'web:' || i, ['robots.txt', 'tdmrep', 'x-robots-tag'][1 + i % 3],
                       CASE WHEN i % 97 = 0 THEN 'deny' ELSE 'allow' END FROM range({2 * n_src}) t(i)"""
        )
        con.execute(
            f"""INSERT INTO stage_outcomes (run_id, stage, item_id, status, reason, recorded_at)
                SELECT 'run-1', 'quality.filter', 'c' || i, 'dropped',
                       ['quality.too_dark', 'quality.too_short', 'quality.static'][1 + i % 3], now()
                FROM range({n_clips // 5}) t(i)"""
        )
    out = root / "builds" / "bench" / "v1"
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"""COPY (
              SELECT 'bench-v1' AS build_id, 'shard-' || lpad(CAST(i // 100 AS VARCHAR), 6, '0') || '.tar' AS shard,
                     'c' || i AS key, 'c' || i AS clip_id, 'web:' || (i % {n_src}) AS source_id,
                     0::BIGINT AS start_ms, (2000 + i % 8000)::BIGINT AS end_ms, (2000 + i % 8000)::BIGINT AS duration_ms,
                     (100000 + i % 900000)::BIGINT AS size_bytes,
                     CASE (i % {n_src}) % 4 WHEN 0 THEN 'CC-BY-4.0' WHEN 1 THEN 'CC0-1.0' WHEN 2 THEN 'CC-BY-SA-4.0'
                                         ELSE 'LicenseRef-Stock' END AS content_license,
                     'holder' || ((i % {n_src}) % 20000) AS rights_holder, 'credit' AS attribution,
                     'https://host' || ((i % {n_src}) % 5000) || '.example/v/' || (i % {n_src}) AS origin_uri,
                     (i % 100) / 10.0 AS motion, (i % 1000) * 3.0 AS sharpness, (i % 255)::DOUBLE AS luma,
                     (i % 10) / 100.0 AS black_fraction, (i % 7) / 10.0 AS static_fraction,
                     (i % 5) / 50.0 AS text_fraction,
                     CASE WHEN i % 3 = 0 THEN 'a caption' END AS caption
              FROM range({n_clips}) t(i)
            ) TO '{out / "index.parquet"}' (FORMAT PARQUET)"""
    )
    manifest = {
        "build_id": "bench-v1",
        "name": "bench",
        "version": 1,
        "purpose": "commercial",
        "created_at": "2024-09-02T00:00:00Z",
        "supersedes": None,
        "n_clips": n_clips,
        "n_shards": n_clips // 100,
        "index": "index.parquet",
        "refused_sources": [],
        "files": [],
        "shards": [],
        "run_id": "run-1",
        "status": "complete",
    }
    (out / "build.json").write_text(json.dumps(manifest))
    return out


def child(root: Path) -> None:
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.disclosures import write_reports

    s = load_settings(None, overrides={"catalog": str(root / "catalog.duckdb")})
    out = root / "builds" / "bench" / "v1"
    t0 = time.perf_counter()
    res = write_reports(Catalog(s.catalog), s, out, dest=root / "reports")
    dt = time.perf_counter() - t0
    hwm = next(
        int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM")
    )
    print(
        json.dumps(
            {
                "seconds": dt,
                "peak_rss_mb": hwm / 1024,
                "n_clips": res["facts"]["totals"]["n_clips"],
                "bytes": {f["name"]: f["bytes"] for f in res["files"]},
            }
        )
    )


def baseline(root: Path) -> float:
    import duckdb

    t0 = time.perf_counter()
    duckdb.connect().execute(
        "SELECT count(*), sum(duration_ms) FROM read_parquet(?)",
        [str(root / "builds/bench/v1/index.parquet")],
    ).fetchall()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_build(root, a.clips)
        print(f"synthetic build of {a.clips} clips made in {time.perf_counter() - t0:.1f} s", flush=True)
        runs, base = [], []
        for _ in range(a.runs):
            base.append(baseline(root))
            p = subprocess.run(
                [sys.executable, __file__, "--child", str(root)], capture_output=True, text=True, check=True
            )
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        secs = [r["seconds"] for r in runs]
        peak = max(r["peak_rss_mb"] for r in runs)
        print(
            f"report: median {statistics.median(secs):.2f} s of {len(secs)} runs ({', '.join(f'{x:.2f}' for x in secs)}), "
            f"peak RSS {peak:.0f} MB; documents {runs[-1]['bytes']}"
        )
        print(
            f"baseline (one DuckDB scan of the index): median {statistics.median(base):.3f} s; "
            f"ratio report / scan {statistics.median(secs) / statistics.median(base):.0f}"
        )


if __name__ == "__main__":
    main()
