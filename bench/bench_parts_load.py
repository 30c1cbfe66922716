"""The catalog writer's rate for stage results: Parquet parts written by the executor, loaded into DuckDB.

This is the path every run's results take (``clipfactory.executors``): each batch's outcome rows and output
records become parts, and the single writer loads what is pending (every five seconds in a run) with one
``INSERT … SELECT FROM read_parquet(...)`` per table, in one transaction, then deletes the parts. Measured
here with the executor's own methods on synthetic results shaped like the analysis stage's (one source in,
``--fanout`` clip records out), in batches of ``--batch`` items, loaded ``--per-load`` batches at a time:

* **local**: parts beside the catalog;
* **s3** (``--s3``): parts on moto's S3 server on 127.0.0.1 (a loopback object store: each part is one PUT,
  one GET and one DELETE; a real bucket adds network round trips).

Prints rows per second of loading (outcome rows plus record rows; wall and CPU of this process) and of
writing the parts. The capacity plan (``bench/capacity_plan.py``) reads ``rows_per_s`` of the local side.

    python bench/bench_parts_load.py [--items 20000] [--batch 16] [--fanout 3] [--per-load 50] [--s3]
                                     [--against-threads] [--repeat 1] [--json]

A load reads its parts with one DuckDB thread (``LocalExecutor.load_threads``); ``--against-threads`` runs
the local side again with the catalog's own thread count, interleaved, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Stage:
    name, version, config_hash = "media.analyse", 1, "bench"


def measure(
    items: int, batch: int, fanout: int, per_load: int, parts: str | None, workdir: Path, load_threads: int = 1
) -> dict:
    from clipfactory.catalog import Catalog
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.records import ClipRecord, Result

    cat = Catalog(workdir / "cat.duckdb")
    ex = LocalExecutor(cat, parts=parts)
    ex.load_threads = load_threads
    ex.recover_parts()  # records the location, as a run does
    stage = _Stage()
    # A warm-up batch, untimed: a run's writer has its imports and its catalog connection already.
    warm = [Result("warm-up", Result.KEPT, (ClipRecord("w" * 20, "warm-up", 0, 900),))]
    ex._load_parts(ex._write_parts("20261207T000000-warmup", stage, 0, warm, {}))
    run_id = "20261208T000000-bench0"
    w_wall = w_cpu = l_wall = l_cpu = 0.0
    pending: list[str] = []
    seq = 0
    rows = 0
    for start in range(0, items, batch):
        results = []
        for i in range(start, min(items, start + batch)):
            sid = f"sha256:{i:064x}"
            recs = tuple(
                ClipRecord(f"{i:014x}{k:06x}", sid, 1000 * k, 1000 * k + 900, shot_index=k, motion=1.5,
                           sharpness=900.0, luma=120.0, black_fraction=0.0, static_fraction=0.2, span_origin="shots")
                for k in range(fanout)
            )
            results.append(Result(sid, Result.KEPT, recs))
            rows += 1 + fanout
        t, c = time.perf_counter(), cpu()
        pending += ex._write_parts(run_id, stage, seq, results, {})
        w_wall += time.perf_counter() - t
        w_cpu += cpu() - c
        seq += 1
        if seq % per_load == 0:
            t, c = time.perf_counter(), cpu()
            ex._load_parts(pending)
            l_wall += time.perf_counter() - t
            l_cpu += cpu() - c
            pending = []
    if pending:
        t, c = time.perf_counter(), cpu()
        ex._load_parts(pending)
        l_wall += time.perf_counter() - t
        l_cpu += cpu() - c
    assert cat.scalar("SELECT count(*) FROM clips") == items * fanout + 1
    assert cat.scalar("SELECT count(*) FROM stage_outcomes") == items + 1
    return {
        "rows": rows,
        "parts": 2 * seq,
        "write_wall_s": round(w_wall, 2),
        "write_cpu_s": round(w_cpu, 2),
        "load_wall_s": round(l_wall, 2),
        "load_cpu_s": round(l_cpu, 2),
        "rows_per_s": round(rows / l_wall) if l_wall else None,
        "rows_per_cpu_s": round(rows / l_cpu) if l_cpu else None,
        "write_rows_per_s": round(rows / w_wall) if w_wall else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fanout", type=int, default=3)
    ap.add_argument("--per-load", type=int, default=50, help="batches pending at each load")
    ap.add_argument("--s3", action="store_true", help="also with the parts on a local S3 API server (moto)")
    ap.add_argument("--against-threads", action="store_true",
                    help="also load with DuckDB's own thread count (what ran before one thread a load), interleaved")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side (medians)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "bench"))
    out = {"items": args.items, "batch": args.batch, "fanout": args.fanout, "per_load": args.per_load}
    with tempfile.TemporaryDirectory() as d:
        sides = {"local": 1, "local, DuckDB's threads": 0} if args.against_threads else {"local": 1}
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        for i in range(args.repeat):
            for side, threads in sides.items():
                runs[side].append(measure(args.items, args.batch, args.fanout, args.per_load, None,
                                          Path(d) / f"local-{threads}-{i}", load_threads=threads))
        for side, ms in runs.items():
            out[side] = {k: statistics.median(m[k] for m in ms) for k in ms[0]}
        if args.s3:
            from bench_ray import S3_BUCKET, start_s3

            srv = start_s3()
            try:
                out["s3"] = measure(args.items, args.batch, args.fanout, args.per_load, f"s3://{S3_BUCKET}/p",
                                    Path(d) / "s3")
            finally:
                srv.stop()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for side in ("local", "local, DuckDB's threads", "s3"):
            if side in out:
                m = out[side]
                print(f"{side}: {m['rows']:,} rows in {m['parts']:,} parts; load {m['rows_per_s']:,} rows/s "
                      f"({m['rows_per_cpu_s']:,} per CPU-s), write {m['write_rows_per_s']:,} rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
