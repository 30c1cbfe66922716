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

``--cli`` measures instead one large file through the command line: a 3,000,000-row Kinetics-style CSV
in which 90% of the rows name a distinct video (``--cli-rows``, ``--distinct``), ingested by
``clipfactory ingest`` in a subprocess and, side by side and interleaved, by ``ingest_manifest`` in a
fresh Python process. Each side: wall time, CPU time of the process (all threads: on a shared machine
rows per CPU-second move less than wall time), peak RSS, and, for the library side, the CPU of each
ingest step.

    python bench/bench_ingest.py --cli [--cli-rows 3000000] [--distinct 0.9] [--repeat 3] [--against DIR]

``--against DIR`` adds the CLI over another checkout's ``src/`` (for example ``git worktree add DIR REV``),
interleaved with the others, and prints the ratio of the two revisions.

``--parts`` adds, interleaved, what the same ingest would cost if the three large tables were Parquet
parts instead of catalog tables: the ingest's own read, SQL pass and per-source aggregate (the library's
functions), then the rows of ``sources`` (every column), ``memberships`` and ``clip_spans`` (every
column but the clip id, which would be computed when read) written with ``COPY ... (FORMAT parquet)``
(``--parts-compression``, default zstd), with the CPU of each step and the size of each file. It writes
no catalog: it measures the design, it is not an ingest.
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


def build_cli(rows: int, distinct: float) -> Path:
    """Write (or reuse) one Kinetics-style CSV of ``rows`` rows, ``distinct`` of them naming a new video.

    Ids are the first nine characters of a real Kinetics-400/600 validation id followed by two
    characters that encode a variant; the remaining rows repeat earlier videos (with another span).
    """
    import duckdb

    OUT.mkdir(parents=True, exist_ok=True)
    n_distinct = int(rows * distinct)
    path = OUT / f"cli-{rows}-{n_distinct}.csv"
    if path.exists():
        return path
    k400 = SHARED / "manifests" / "kinetics-400_val.csv"
    k600 = SHARED / "manifests" / "kinetics-600_val.csv"
    if not (k400.exists() and k600.exists()):
        sys.exit(f"needs the Kinetics validation lists in {SHARED / 'manifests'}")
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE base AS
            SELECT row_number() OVER (ORDER BY p) AS b, * FROM (
                SELECT substr(youtube_id, 1, 9) AS p, min(label) AS label,
                       min(CAST(time_start AS BIGINT)) AS ts, min(CAST(time_end AS BIGINT)) AS te
                FROM (SELECT label, youtube_id, time_start, time_end FROM read_csv('{k400}', all_varchar = true)
                      UNION ALL
                      SELECT label, youtube_id, time_start, time_end FROM read_csv('{k600}', all_varchar = true))
                GROUP BY p)"""
    )
    n = con.execute("SELECT count(*) FROM base").fetchall()[0][0]
    if n_distinct > n * 64 * 64:
        sys.exit(f"at most {n * 4096:,} distinct videos")
    tmp = path.with_suffix(".tmp")
    con.execute(
        f"""COPY (
            WITH g AS (SELECT i, CASE WHEN i < {n_distinct} THEN i ELSE (i * 7919) % {n_distinct} END AS v
                       FROM range({rows}) t(i))
            SELECT label,
                   p || substr('{ALPHABET}', ((v // {n}) // 64) % 64 + 1, 1)
                     || substr('{ALPHABET}', (v // {n}) % 64 + 1, 1) AS youtube_id,
                   ts + i % 7 AS time_start, te + i % 7 AS time_end, 'train' AS split
            FROM g JOIN base ON base.b = v % {n} + 1
            ORDER BY i
        ) TO '{tmp}' (HEADER, DELIMITER ',', FORMAT csv)"""
    )
    con.close()
    tmp.rename(path)
    return path


def _child(cmd: list[str], env: dict | None = None) -> tuple[str, dict]:
    """Run ``cmd``; its stdout and wall time (CPU time and peak RSS come from :func:`worker_rusage`)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    out, err = p.communicate()
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{err}")
    return out, {"seconds": seconds}


def run_cli_side(kind: str, path: Path, args: argparse.Namespace, run: int) -> dict:
    env = None
    if kind == "cli-against":
        # The same command over another revision's sources (an A/B in one run): its src/ goes first.
        env = {**os.environ, "PYTHONPATH": str(Path(args.against).resolve() / "src")}
        kind = "cli"
    catalog = OUT / f"cli-catalog-{run}.duckdb"
    for suffix in ("", ".wal", ".lock"):
        Path(str(catalog) + suffix).unlink(missing_ok=True)
    if kind == "cli":
        exe = Path(sys.executable).with_name("clipfactory")
        inner = [
            str(exe),
            "ingest",
            str(path),
            "--format",
            "kinetics",
            "--dataset",
            "cli-bench",
            "--catalog",
            str(catalog),
            "--json",
        ]
        if args.threads:
            inner += ["--threads", str(args.threads)]
        if args.memory_limit:
            inner += ["--memory-limit", args.memory_limit]
    elif kind == "parts":
        inner = [
            sys.executable,
            __file__,
            "--worker",
            "parts",
            str(path),
            "--catalog",
            str(catalog),
            "--threads",
            str(args.threads or 0),
            "--parts-compression",
            args.parts_compression,
        ]
        if args.memory_limit:
            inner += ["--memory-limit", args.memory_limit]
    else:
        inner = [
            sys.executable,
            __file__,
            "--worker",
            "lib",
            str(path),
            "--catalog",
            str(catalog),
            "--threads",
            str(args.threads or 0),
        ]
        if args.memory_limit:
            inner += ["--memory-limit", args.memory_limit]
    out, r = _child([sys.executable, __file__, "--worker", "rusage", "--", *inner], env)
    lines = out.strip().splitlines()
    usage = json.loads(lines[-1])
    r.update(usage)
    if kind == "cli":
        summary = json.loads("\n".join(lines[:-1]))["manifests"][0]
        r["rows"], r["sources"], r["spans"] = summary["rows_total"], summary["new_sources"], summary["spans"]
    else:
        r.update(json.loads(lines[-2]))
    return r


def worker_rusage(cmd: list[str]) -> None:
    """Run ``cmd`` as a child, pass its stdout on, and print its own CPU time and peak RSS."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate()
    if p.returncode != 0:
        sys.exit(p.returncode)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # this process's only child
    sys.stdout.write(out)
    print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))


def worker_lib(path: str, catalog: str, threads: int | None, memory_limit: str | None) -> dict:
    """The library path, with the CPU time of each ingest step (from the ingest's DEBUG log)."""
    import logging

    from clipfactory.catalog import Catalog
    from clipfactory.sources import ingest_manifest

    steps: dict[str, float] = {}

    class Steps(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if msg.startswith("ingest step "):
                name, rest = msg[len("ingest step ") :].split(": ", 1)
                steps[name] = steps.get(name, 0.0) + float(rest.split("cpu ")[1].rstrip("s)"))

    log = logging.getLogger("clipfactory.sources.ingest")
    log.setLevel(logging.DEBUG)
    log.addHandler(Steps())
    cat = Catalog(catalog)
    t0 = time.perf_counter()
    s = ingest_manifest(
        cat, path, format="kinetics", dataset="cli-bench", threads=threads, memory_limit=memory_limit
    )
    return {
        "seconds_inside": time.perf_counter() - t0,
        "rows": s.rows_total,
        "sources": s.new_sources,
        "spans": s.spans,
        "steps": steps,
        "catalog_mb": os.path.getsize(catalog) / 1e6,
    }


def worker_parts(
    path: str, scratch: str, threads: int | None, memory_limit: str | None, compression: str
) -> dict:
    """The ingest's read, SQL pass and per-source aggregate, then the three large tables' rows written as
    Parquet files instead of inserted (the design measured by ``--parts``; nothing is committed)."""
    import duckdb

    from clipfactory.catalog.db import _ARROW_TO_DUCK
    from clipfactory.records import SourceRecord
    from clipfactory.sources import ingest as ing
    from clipfactory.sources.adapters import Context
    from clipfactory.sources.detect import choose
    from clipfactory.sources.readers import FileFacts, Staged
    from clipfactory.sources.sql import install_macros

    steps: dict[str, float] = {}

    def step(name: str, fn):
        c = time.process_time()
        out = fn()
        steps[name] = steps.get(name, 0.0) + time.process_time() - c
        return out

    t0 = time.perf_counter()
    facts = step("hash", lambda: FileFacts.of(path))
    adapter, det, _ = choose(facts, "kinetics", {})
    con = duckdb.connect(scratch)  # temporary tables spill beside it, as the catalog's do
    ing._configure(con, ing.IngestOptions(memory_limit=memory_limit, threads=threads))
    install_macros(con)
    ctx = Context(path=path, facts=facts, staged=Staged(list(det.columns), 0, kind=det.kind))
    ctx.staged = step("read", lambda: ing._stage(con, facts, det.kind, adapter))
    pre = adapter.build(ctx, con)
    cols = ing._Cols(ctx.given)
    step("rows", lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE _cf_rows AS {ing._finish_sql(pre, cols)}"))
    con.execute("SET preserve_insertion_order = false")
    step("aggregate per source", lambda: ing.aggregate_per_source(con, cols))
    a = ing._Cols(cols.given - {"pointer", "caption", "extra"})
    src_cols = []
    for f in SourceRecord.arrow_schema():
        if f.name in ("source_id", "platform", "platform_id"):
            src_cols.append(f"a.{f.name}")
        elif f.name == "url":
            src_cols.append(
                "CASE WHEN a.platform = 'youtube' THEN 'https://www.youtube.com/watch?v=' || a.platform_id "
                f"ELSE {a('url', 'a.')} END AS url"
            )
        elif f.name in a.given:
            src_cols.append(f"a.{f.name}")
        else:
            src_cols.append(f"NULL::{_ARROW_TO_DUCK[f.type]} AS {f.name}")
    mid, ds = facts.sha256, "cli-bench"
    r = cols
    selects = {
        "sources": f"SELECT {', '.join(src_cols)} FROM _cf_agg a",
        "memberships": f"""SELECT '{ds}' AS dataset, a.source_id, '{mid}' AS manifest_id, a.first_line,
                                  {a("split", "a.")} AS split, {a("label", "a.")} AS label, a.n_spans FROM _cf_agg a""",
        "clip_spans": f"""SELECT '{ds}' AS dataset, r.source_id, r.start_ms, r.end_ms, {r("caption", "r.")} AS caption,
                                 {r("label", "r.")} AS label, {r("split", "r.")} AS split, '{mid}' AS manifest_id,
                                 r.line, {r("extra", "r.")} AS extra
                          FROM _cf_rows r WHERE r.error IS NULL""",
    }
    sizes = {}
    for table, sql in selects.items():
        out = f"{scratch}.{table}.parquet"
        step(
            f"write {table}",
            lambda sql=sql, out=out: con.execute(
                f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION {compression})"
            ),
        )
        sizes[table] = os.path.getsize(out) / 1e6
        os.unlink(out)
    n_sources = con.execute("SELECT count(*) FROM _cf_agg").fetchall()[0][0]
    n_spans = con.execute("SELECT coalesce(sum(n_spans), 0) FROM _cf_agg").fetchall()[0][0]
    rows = con.execute("SELECT count(*) FROM _cf_rows").fetchall()[0][0]
    con.close()
    return {
        "seconds_inside": time.perf_counter() - t0,
        "rows": rows,
        "sources": n_sources,
        "spans": n_spans,
        "steps": steps,
        "parquet_mb": sizes,
    }


def main_cli(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    path = build_cli(args.cli_rows, args.distinct)
    print(
        f"input: {path.name}, {args.cli_rows:,} rows, {args.distinct:.0%} distinct videos "
        f"(ready in {time.perf_counter() - t0:.1f}s)"
    )
    sides: dict[str, list[dict]] = {"cli": [], "lib": []}
    if args.against:
        sides["cli-against"] = []
    if args.parts:
        sides["parts"] = []
    for run in range(args.repeat):
        order = list(sides) if run % 2 == 0 else list(reversed(sides))
        for kind in order:
            load = os.getloadavg()[0]
            r = run_cli_side(kind, path, args, run)
            sides[kind].append(r)
            print(
                f"  run {run + 1} {kind:4s}: {r['seconds']:6.2f}s  {r['rows'] / r['seconds']:>10,.0f} rows/s  "
                f"cpu {r['cpu_s']:6.1f}s ({r['rows'] / r['cpu_s']:>9,.0f} rows per cpu-s)  "
                f"peak RSS {r['peak_rss_mb']:,.0f} MB  sources {r['sources']:,}  spans {r['spans']:,}  "
                f"(load average {load:.1f} on {os.cpu_count()} CPUs)"
            )
    med = statistics.median
    rows = sides["cli"][0]["rows"]
    labels = {
        "cli": "clipfactory ingest (subprocess)",
        "lib": "ingest_manifest (fresh process)",
        "cli-against": f"clipfactory ingest of {args.against}",
        "parts": f"the same ingest writing Parquet parts ({args.parts_compression}; design measure, no catalog)",
    }
    for kind, label in labels.items():
        if kind not in sides:
            continue
        w, c = med(r["seconds"] for r in sides[kind]), med(r["cpu_s"] for r in sides[kind])
        print(
            f"median {label}: {rows / w:,.0f} rows/s ({w:.2f}s wall), cpu {c:.1f}s "
            f"({rows / c:,.0f} rows per cpu-s), peak RSS {med(r['peak_rss_mb'] for r in sides[kind]):,.0f} MB"
        )
    names = list(sides["lib"][0]["steps"])
    print(
        "library CPU per step (median, s): "
        + ", ".join(
            f"{n} {med(r['steps'].get(n, 0.0) for r in sides['lib']):.2f}"
            for n in names
            if med(r["steps"].get(n, 0.0) for r in sides["lib"]) >= 0.05
        )
    )
    if args.parts:
        parts = sides["parts"]
        print(
            "parts CPU per step (median, s): "
            + ", ".join(f"{n} {med(r['steps'][n] for r in parts):.2f}" for n in parts[0]["steps"])
        )
        print(
            "parts files (MB): "
            + ", ".join(f"{t} {mb:.0f}" for t, mb in parts[0]["parquet_mb"].items())
            + f"; catalog tables side: {sides['lib'][0].get('catalog_mb', 0):.0f} MB"
        )
        lib_c, parts_c = med(r["cpu_s"] for r in sides["lib"]), med(r["cpu_s"] for r in parts)
        print(f"parts / ingest_manifest: {lib_c / parts_c:.2f}x rows per cpu-s")
    w = med(r["seconds"] for r in sides["cli"])
    if args.against:
        ow = med(r["seconds"] for r in sides["cli-against"])
        oc = med(r["cpu_s"] for r in sides["cli-against"])
        c = med(r["cpu_s"] for r in sides["cli"])
        print(f"this revision / {args.against}: {ow / w:.2f}x rows/s (wall), {oc / c:.2f}x rows per cpu-s")
    print(
        f"baselines: 0.16 M rows/s (CLI, this input, 2026-12-03 issue figure) -> {rows / w / 160_000:.2f}x; "
        f"target >= 1,000,000 rows/s: {'met' if rows / w >= 1e6 else 'NOT met'}"
    )


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
    ap.add_argument("--cli", action="store_true", help="one large file through `clipfactory ingest`")
    ap.add_argument("--cli-rows", type=int, default=3_000_000)
    ap.add_argument("--distinct", type=float, default=0.9, help="share of rows naming a new video (--cli)")
    ap.add_argument("--against", help="with --cli: also run the CLI over the checkout in this folder (A/B)")
    ap.add_argument("--parts", action="store_true", help="with --cli: also measure the Parquet-parts design")
    ap.add_argument("--parts-compression", default="zstd", help="Parquet compression for --parts")
    ap.add_argument("--worker", choices=["ours", "pandas", "lib", "parts", "rusage"], help=argparse.SUPPRESS)
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "rusage":
        worker_rusage(args.paths)
        return
    if args.worker:
        if args.worker == "lib":
            print(
                json.dumps(worker_lib(args.paths[0], args.catalog, args.threads or None, args.memory_limit))
            )
            return
        if args.worker == "parts":
            out = worker_parts(
                args.paths[0], args.catalog, args.threads or None, args.memory_limit, args.parts_compression
            )
            print(json.dumps(out))
            return
        if args.worker == "ours":
            out = worker_ours(args.paths, args.catalog, args.threads or None, args.memory_limit)
        else:
            out = worker_pandas(args.paths)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["peak_rss_mb"] = ru.ru_maxrss / 1024
        out["cpu_s"] = ru.ru_utime + ru.ru_stime  # all threads, including imports and set-up
        print(json.dumps(out))
        return

    if args.cli:
        main_cli(args)
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
