"""Benchmark manifest ingest with cross-dataset dedup against a plain pandas baseline.

Input: 10 million manifest rows in five Kinetics-style CSVs ("datasets"), re-mixed from the real
Kinetics-400 and Kinetics-600 validation lists. Each dataset takes 41 deterministic variants of every
base row (the id's last two characters encode the variant, the span shifts a little); neighbouring
datasets share half their variants, so there are duplicates inside a dataset (K400 and K600 share ids)
and across datasets, as in the real pool of YouTube-derived datasets. The files are cached in
``bench/out/ingest/``.

Side by side, each in a fresh subprocess (peak RSS from ``getrusage`` of that process):

* ours: ``ingest_manifest`` of the five files into a new catalog: canonical ids, span parsing and
  validation, clip ids, sources deduplicated across datasets, memberships, spans, errors; committed.
* pandas: ``pd.read_csv`` of each file, then ``drop_duplicates`` on the id per dataset (memberships)
  and over all datasets (sources). It writes nothing and validates nothing.

Both must find the same number of distinct sources and memberships. Prints medians of ``--repeat``
runs: rows/s, ratio ours/pandas, peak RSS. Targets: >= 1,000,000 rows/s, peak RSS <= 2 GB.

    python bench/bench_ingest.py [--rows 10000000] [--datasets 5] [--repeat 3] [--threads 2] [--memory-limit 1GB]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "ingest"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
VARIANTS = 41  # variants of each base row per dataset
STRIDE = 20  # dataset d takes variants d*STRIDE .. d*STRIDE+VARIANTS-1: neighbours share about half


def build(rows: int, n_datasets: int) -> list[Path]:
    """Write (or reuse) the benchmark CSVs; returns their paths."""
    import duckdb

    OUT.mkdir(parents=True, exist_ok=True)
    per = rows // n_datasets
    spec = {"rows": rows, "datasets": n_datasets, "variants": VARIANTS, "stride": STRIDE, "v": 2}
    marker = OUT / "spec.json"
    paths = [OUT / f"bench-{d}.csv" for d in range(n_datasets)]
    if marker.exists() and json.loads(marker.read_text()) == spec and all(p.exists() for p in paths):
        return paths
    k400 = SHARED / "manifests" / "kinetics-400_val.csv"
    k600 = SHARED / "manifests" / "kinetics-600_val.csv"
    if not (k400.exists() and k600.exists()):
        sys.exit(f"needs the Kinetics validation lists in {SHARED / 'manifests'}")
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE base AS
            SELECT row_number() OVER () AS b, label, youtube_id, CAST(time_start AS BIGINT) AS time_start,
                   CAST(time_end AS BIGINT) AS time_end
            FROM (SELECT label, youtube_id, time_start, time_end FROM read_csv('{k400}', all_varchar = true)
                  UNION ALL
                  SELECT label, youtube_id, time_start, time_end FROM read_csv('{k600}', all_varchar = true))"""
    )
    for d, path in enumerate(paths):
        lo = d * STRIDE
        con.execute(
            f"""COPY (
                SELECT label,
                       CASE WHEN k = 0 THEN youtube_id
                            ELSE substr(youtube_id, 1, 9) || substr('{ALPHABET}', (k // 64) % 64 + 1, 1)
                                 || substr('{ALPHABET}', k % 64 + 1, 1) END AS youtube_id,
                       time_start + k % 7 AS time_start, time_end + k % 7 AS time_end,
                       CASE WHEN k % 10 = 0 THEN 'val' ELSE 'train' END AS split
                FROM base, range({lo}, {lo + VARIANTS}) t(k)
                ORDER BY k, b
                LIMIT {per}
            ) TO '{path}' (HEADER, DELIMITER ',')"""
        )
    con.close()
    marker.write_text(json.dumps(spec))
    return paths


# -- workers (each runs in its own process) -----------------------------------------------------------
def worker_ours(paths: list[str], catalog: str, threads: int | None, memory_limit: str | None) -> dict:
    from clipfactory.catalog import Catalog
    from clipfactory.sources import ingest_manifest

    cat = Catalog(catalog)
    cat.scalar("SELECT 1")  # create the schema outside the timing
    t0 = time.perf_counter()
    rows = 0
    for i, p in enumerate(paths):
        s = ingest_manifest(
            cat, p, format="kinetics", dataset=f"bench-{i}", threads=threads, memory_limit=memory_limit
        )
        rows += s.rows_total
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows": rows,
        "sources": cat.scalar("SELECT count(*) FROM sources"),
        "memberships": cat.scalar("SELECT count(*) FROM memberships"),
    }


def worker_pandas(paths: list[str]) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    rows = 0
    members = []
    for i, p in enumerate(paths):
        df = pd.read_csv(p)
        rows += len(df)
        m = df[["youtube_id"]].drop_duplicates()
        m["dataset"] = i
        members.append(m)
        del df
    allm = pd.concat(members, ignore_index=True)
    sources = allm["youtube_id"].drop_duplicates()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": rows, "sources": len(sources), "memberships": len(allm)}


def run_worker(kind: str, paths: list[Path], args: argparse.Namespace, run: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, *map(str, paths)]
    if kind == "ours":
        catalog = OUT / f"catalog-{run}.duckdb"
        for suffix in ("", ".wal", ".lock"):
            Path(str(catalog) + suffix).unlink(missing_ok=True)
        cmd += ["--catalog", str(catalog), "--threads", str(args.threads or 0)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"{kind} worker failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--datasets", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=2, help="DuckDB threads for our ingest (0: DuckDB's default)"
    )
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit for our ingest")
    ap.add_argument("--worker", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        if args.worker == "ours":
            out = worker_ours(args.paths, args.catalog, args.threads or None, args.memory_limit)
        else:
            out = worker_pandas(args.paths)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["peak_rss_mb"] = ru.ru_maxrss / 1024
        out["cpu_s"] = ru.ru_utime + ru.ru_stime  # all threads, including imports and set-up
        print(json.dumps(out))
        return

    t0 = time.perf_counter()
    paths = build(args.rows, args.datasets)
    print(f"input: {len(paths)} CSVs, {args.rows:,} rows in {OUT} (ready in {time.perf_counter() - t0:.1f}s)")
    ours, theirs = [], []
    for run in range(args.repeat):
        # Alternate the order so that neither side always runs on a warmer page cache.
        order = ["ours", "pandas"] if run % 2 == 0 else ["pandas", "ours"]
        for kind in order:
            load = os.getloadavg()[0]
            r = run_worker(kind, paths, args, run)
            r["load"] = load
            (ours if kind == "ours" else theirs).append(r)
            print(
                f"  run {run + 1} {kind:6s}: {r['seconds']:6.2f}s  {r['rows'] / r['seconds']:>12,.0f} rows/s  "
                f"cpu {r['cpu_s']:6.1f}s  peak RSS {r['peak_rss_mb']:,.0f} MB  sources {r['sources']:,}  "
                f"memberships {r['memberships']:,}  (load average {load:.1f} on {os.cpu_count()} CPUs)"
            )
    for a, b in zip(ours, theirs, strict=True):
        if (a["sources"], a["memberships"]) != (b["sources"], b["memberships"]):
            sys.exit(
                f"dedup disagrees: ours {a['sources']}/{a['memberships']}, pandas {b['sources']}/{b['memberships']}"
            )
    med = statistics.median
    o_s, p_s = med(r["seconds"] for r in ours), med(r["seconds"] for r in theirs)
    rows = ours[0]["rows"]
    print(
        f"\nmedian of {args.repeat}: ours {rows / o_s:,.0f} rows/s ({o_s:.2f}s), "
        f"pandas {rows / p_s:,.0f} rows/s ({p_s:.2f}s), ratio ours/pandas {p_s / o_s:.2f}x"
    )
    o_c, p_c = med(r["cpu_s"] for r in ours), med(r["cpu_s"] for r in theirs)
    print(
        f"cpu time (less sensitive to other load): ours {o_c:.1f}s ({rows / o_c:,.0f} rows per cpu-second), "
        f"pandas {p_c:.1f}s ({rows / p_c:,.0f}), ratio {p_c / o_c:.2f}x"
    )
    print(
        f"peak RSS: ours {med(r['peak_rss_mb'] for r in ours):,.0f} MB, "
        f"pandas {med(r['peak_rss_mb'] for r in theirs):,.0f} MB"
    )
    print(
        f"distinct sources {ours[0]['sources']:,}, memberships {ours[0]['memberships']:,} "
        f"(duplicate rate {1 - ours[0]['sources'] / rows:.0%})"
    )
    print(
        f"targets: >= 1,000,000 rows/s: {'met' if rows / o_s >= 1e6 else 'NOT met'}; "
        f"peak RSS <= 2 GB: {'met' if med(r['peak_rss_mb'] for r in ours) <= 2048 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
