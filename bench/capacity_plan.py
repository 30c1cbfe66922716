"""A capacity plan computed from figures measured on this machine: ``docs/capacity.md``.

One command measures and writes the plan:

    python bench/capacity_plan.py                 # measure (about 2 minutes), write bench/results/capacity.json and docs/capacity.md
    python bench/capacity_plan.py --from bench/results/capacity.json   # the plan again from saved figures

**Measured here** (the whole factory, ``bench/bench_factory.py``'s ``run_once``: a web manifest served from
127.0.0.1, then ``run --dataset``: gate, fetch, probe, analyse, filter, near-duplicate check, cut, export):

* CPU seconds per video-hour of each stage: the process's CPU time over the run, shared out by the time
  spent inside each stage's ``process_batch``;
* bytes per video-hour: of the source media, of the clips and shards written, of the fingerprints;
* catalog rows and catalog bytes per clip;
* the catalog's single-writer rate for stage results: Parquet parts of analysis-shaped results loaded by
  the executor's own loader (``bench/bench_parts_load.py``, rows/s, parts beside the catalog);
* the fingerprint index's search cost per candidate (1 M random hashes), for a lookup's time as the index
  grows.

**Assumed** (stated in the document, change them with the flags): node size, prices, the share of
sources' hours that become clips, and the duty cycle.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "capacity.json"
DOC = ROOT / "docs" / "capacity.md"

HOURS_80Y_PER_DAY = 80 * 365 * 24  # 80 years of video every day: 700,800 video-hours a day
ONE_OFF_HOURS = 20_000_000
ONE_OFF_DAYS = 30
#: hash (32 B), source number and time (8 B), 16 chunk tables (4 B each) in the fingerprint index
INDEX_BYTES_PER_HASH = 104
#: hashes a lookup's first stage probes the index with for a 5-minute query: the re-encoded excerpt of the
#: Big Buck Bunny film in ``bench/bench_fingerprints.py`` (BENCHMARKS.md "Fingerprints", plain and mirrored)
LOOKUP_PROBES_5MIN = 9_367


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _tree_bytes(p: Path, pattern: str = "*") -> int:
    return sum(f.stat().st_size for f in p.rglob(pattern) if f.is_file()) if p.exists() else 0


def _index_candidate_cost(n: int = 1_000_000, queries: int = 2_000) -> dict:
    """The fingerprint index's cost per candidate in a lookup's first stage (``HashIndex.search`` without
    exact probes: each query hash reads its 16 chunk buckets, every row there a candidate to compare), on
    an index of ``n`` random hashes. Random hashes fill the 65,536 buckets of a chunk evenly, so
    ``16 * n / 65,536`` candidates a query hash is a floor: real frames crowd some buckets."""
    import numpy as np

    from clipfactory.fingerprints.index import CHUNK_VALUES, N_CHUNKS, HashIndex

    rng = np.random.default_rng(0)
    index = HashIndex(rng.integers(0, 256, (n, 32), dtype=np.uint8), np.zeros(n, np.int32), np.zeros(n), ["s"])
    q = rng.integers(0, 256, (queries, 32), dtype=np.uint8)
    index.search(q[:100], exact=False)  # warm
    t = time.perf_counter()
    index.search(q, exact=False)
    seconds = time.perf_counter() - t
    candidates = queries * N_CHUNKS * n / CHUNK_VALUES
    return {"index_hashes": n, "query_hashes": queries, "seconds": round(seconds, 4),
            "s_per_candidate": seconds / candidates}


def measure(n_short: int) -> dict:
    import av
    import bench_factory as bf

    from clipfactory.catalog import Catalog

    files = bf.short_corpus(n_short)
    seconds_of_video = 0.0
    source_bytes = 0
    for p in files:
        with av.open(str(p)) as c:
            seconds_of_video += c.duration / 1e6
        source_bytes += p.stat().st_size
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "acquire" / "server.py"), "--fast",
         *sum((["--media", str(m)] for m in files), [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    origin = json.loads(server.stdout.readline())["origin"]
    clock = bf.StageClock()
    try:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            cpu0 = _cpu()
            r = bf.run_once(origin, files, work, clock)
            cpu = _cpu() - cpu0
            cat = Catalog(work / "cat.duckdb")
            with cat.read() as con:
                tables = [t[0] for t in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
                ).fetchall()]
                rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
                clips_in_catalog = rows.get("clips", 0)
            # A small DuckDB file is mostly fixed overhead: count the tables' bytes as compressed Parquet,
            # what DuckDB's own columnar storage comes to at scale.
            pq_dir = work / "catalog-parquet"
            pq_dir.mkdir()
            with cat.read() as con:
                for t in tables:
                    con.execute(f"COPY \"{t}\" TO '{pq_dir / (t + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)")
            catalog_bytes = _tree_bytes(pq_dir)
            store = work / "store"
            fingerprint_bytes = 0
            with cat.read() as con:
                uris = [u[0] for u in con.execute(
                    "SELECT fingerprint_uri FROM sources WHERE fingerprint_uri IS NOT NULL UNION ALL "
                    "SELECT fingerprint_uri FROM clips WHERE fingerprint_uri IS NOT NULL"
                ).fetchall()]
            from clipfactory.storage import BlobStore

            bs = BlobStore(store)
            for u in set(uris):
                p = bs.path_of(u)
                if p.exists():
                    fingerprint_bytes += p.stat().st_size
            shard_bytes = _tree_bytes(work / "builds", "*.tar")
    finally:
        server.stdin.close()
        server.wait(10)
    hours = seconds_of_video / 3600
    inside = sum(r["stage_seconds"].values()) or 1.0
    per_stage = {k: cpu * v / inside / hours for k, v in r["stage_seconds"].items()}
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": __import__("os").cpu_count()},
        "corpus": {"sources": len(files), "video_hours": round(hours, 4), "source_bytes": source_bytes},
        "run": {"wall_s": round(r["seconds"], 2), "cpu_s": round(cpu, 2), "clips": r["clips"],
                "clips_in_catalog": clips_in_catalog, "stage_seconds": r["stage_seconds"]},
        "per_video_hour": {
            "cpu_core_s": round(cpu / hours, 1),
            "cpu_core_s_by_stage": {k: round(v, 1) for k, v in sorted(per_stage.items())},
            "source_bytes": round(source_bytes / hours),
            "shard_bytes": round(shard_bytes / hours),
            "fingerprint_bytes": round(fingerprint_bytes / hours),
            "clips": round(r["clips"] / hours, 1),
            "frame_hashes": round(rows.get("frame_hashes", 0) / hours),
        },
        "catalog": {
            "rows": rows,
            "rows_per_clip": round(sum(rows.values()) / max(1, clips_in_catalog), 1),
            "bytes_per_clip": round(catalog_bytes / max(1, clips_in_catalog)),
        },
        "writer_rows_per_s": _parts_load_rate(),
        "index_search": _index_candidate_cost(),
    }


def _parts_load_rate() -> float:
    """The catalog writer's rate for stage results, measured here: 20,000 analysis-shaped results (one
    outcome row and three clip records each) in parts of 16, loaded 200 batches at a time by the executor's
    loader (``bench/bench_parts_load.py``), as rows per CPU-second of the loading process: the writer of a
    cluster is one process on a core of its own, and the CPU figure does not move with this machine's
    load, as its wall time does (17 to 54 thousand rows/s of wall time on the same code). Manifest ingest
    (``bench/bench_ingest.py``) is a different path: one large file in one transaction."""
    import bench_parts_load as bpl

    with tempfile.TemporaryDirectory() as d:
        m = bpl.measure(20_000, 16, 3, 200, None, Path(d))
    return float(m["rows_per_cpu_s"])


def plan(m: dict, a: argparse.Namespace) -> dict:
    pv = m["per_video_hour"]
    core_s = pv["cpu_core_s"]
    out = {}
    for label, hours_per_hour in (
        ("80 years of video a day", HOURS_80Y_PER_DAY / 24),
        (f"{ONE_OFF_HOURS / 1e6:.0f} M hours once, in {ONE_OFF_DAYS} days", ONE_OFF_HOURS / (ONE_OFF_DAYS * 24)),
    ):
        cores = hours_per_hour * core_s / 3600 / a.utilisation
        nodes = math.ceil(cores / a.node_cores)
        in_gbit = hours_per_hour * pv["source_bytes"] * 8 / 3600 / 1e9
        out_gbit = hours_per_hour * pv["shard_bytes"] * 8 / 3600 / 1e9
        clips_per_s = hours_per_hour * pv["clips"] / 3600
        rows_per_s = clips_per_s * m["catalog"]["rows_per_clip"]
        day_tb = 24 * hours_per_hour * (pv["shard_bytes"] + pv["fingerprint_bytes"]) / 1e12
        src_day_tb = 24 * hours_per_hour * pv["source_bytes"] / 1e12
        catalog_gb_day = 24 * hours_per_hour * pv["clips"] * m["catalog"]["bytes_per_clip"] / 1e9
        cost_compute_h = nodes * a.node_cores * a.core_hour_usd
        cost_storage_h = (day_tb / 24) * 1000 * a.gb_month_usd  # one month of what an hour writes
        out[label] = {
            "video_hours_per_hour": round(hours_per_hour),
            "cpu_cores": math.ceil(cores),
            "nodes": nodes,
            "ingress_gbit_s": round(in_gbit, 2),
            "egress_to_storage_gbit_s": round(out_gbit, 2),
            "clips_per_s": round(clips_per_s),
            "catalog_rows_per_s": round(rows_per_s),
            "writer_load": round(rows_per_s / m["writer_rows_per_s"], 4),
            "clips_and_fingerprints_tb_per_day": round(day_tb, 1),
            "source_media_tb_per_day_if_kept": round(src_day_tb, 1),
            "catalog_gb_per_day": round(catalog_gb_day, 1),
            "usd_per_video_hour": round((cost_compute_h + cost_storage_h) / hours_per_hour, 5),
        }
    return out


def render(m: dict, p: dict, a: argparse.Namespace) -> str:
    pv = m["per_video_hour"]
    stages = "\n".join(f"| `{k}` | {v:,.0f} |" for k, v in sorted(pv["cpu_core_s_by_stage"].items(), key=lambda x: -x[1]))
    rows = ["| | " + " | ".join(p) + " |", "| --- |" + " --- |" * len(p)]
    keys = [
        ("video-hours per hour", "video_hours_per_hour", "{:,}"),
        (f"CPU cores (at {a.utilisation:.0%} busy)", "cpu_cores", "{:,}"),
        (f"nodes of {a.node_cores} cores", "nodes", "{:,}"),
        ("network in, source media (Gbit/s)", "ingress_gbit_s", "{:,}"),
        ("network out, shards to storage (Gbit/s)", "egress_to_storage_gbit_s", "{:,}"),
        ("clips per second", "clips_per_s", "{:,}"),
        ("catalog rows per second", "catalog_rows_per_s", "{:,}"),
        ("share of one catalog writer", "writer_load", "{:.2%}"),
        ("clips + fingerprints stored per day (TB)", "clips_and_fingerprints_tb_per_day", "{:,}"),
        ("source media per day, if kept (TB)", "source_media_tb_per_day_if_kept", "{:,}"),
        ("catalog growth per day (GB)", "catalog_gb_per_day", "{:,}"),
        ("cost per video-hour (USD)", "usd_per_video_hour", "{:.4f}"),
    ]
    for label, k, fmt in keys:
        rows.append(f"| {label} | " + " | ".join(fmt.format(v[k]) for v in p.values()) + " |")
    daily = next(iter(p.values()))
    hashes_day = 24 * daily["video_hours_per_hour"] * pv["frame_hashes"]
    index_gb_day = hashes_day * INDEX_BYTES_PER_HASH / 1e9
    index_days = a.index_machine_gb / index_gb_day if index_gb_day else float("inf")
    writer_break = 1 / daily["writer_load"] if daily["writer_load"] else float("inf")
    search = m.get("index_search")  # figures saved before it was measured have none
    if search:
        from clipfactory.fingerprints.index import CHUNK_VALUES, N_CHUNKS

        per_hash_s = N_CHUNKS * search["s_per_candidate"] / CHUNK_VALUES  # seconds per probe and index hash
        lookup_s = lambda n: LOOKUP_PROBES_5MIN * n * per_hash_s  # noqa: E731
        one_s_hashes = 1 / (LOOKUP_PROBES_5MIN * per_hash_s)
        hour_hashes = pv["frame_hashes"] or 1
        index_search = f"""
- **The fingerprint index's search time, at once.** A lookup's first stage (candidate sources) reads, for
  each hash it probes, the 16 buckets of that hash's 16-bit chunks; each bucket holds about 1/65,536 of
  the index, so the work grows with the index. Measured here: {search['s_per_candidate'] * 1e9:,.0f} ns a candidate
  ({search['query_hashes']:,} query hashes against {search['index_hashes'] / 1e6:,.0f} M random hashes in
  {search['seconds']:.2f} s). A 5-minute query ({LOOKUP_PROBES_5MIN:,} probe hashes, plain and mirrored) then
  takes at least {lookup_s(1e6):,.1f} s of first stage per million index hashes: the lookup target of 1 s holds to
  about {one_s_hashes / 1e6:,.1f} M hashes ({one_s_hashes / hour_hashes:,.0f} video-hours at {hour_hashes:,} hashes a
  video-hour), which "80 years a day" adds in {one_s_hashes / (hashes_day / 86400):,.0f} s; after one day the
  first stage would take about {lookup_s(hashes_day) / 3600:,.1f} hours. Partitions over K lookup processes
  divide that time by K at K times the machines (each query searches all of them). The remedy, not built yet: a first stage on longer
  keys (two chunks, 32 bits: buckets of n / 4.3 G rows, probed only at their exact value, which a copy's
  many frames still hit), with the 16-bit tables kept for the exact searches of crops, tombstones and
  near-duplicates, which run on small indexes."""
    else:
        index_search = ""
    return f"""# Capacity plan

Generated by `python bench/capacity_plan.py` on {m['date']} from figures measured on this machine
({m['machine']['cores']} cores, CPU only); `python bench/capacity_plan.py --from bench/results/capacity.json`
computes it again from the saved figures. Change the assumptions with the script's flags.

## Measured

The whole factory over {m['corpus']['sources']} short web sources ({m['corpus']['video_hours'] * 60:.1f} minutes of
video, served from 127.0.0.1), one process: {m['run']['wall_s']} s wall, {m['run']['cpu_s']} s of CPU,
{m['run']['clips']} clips built.

| figure | per video-hour |
| --- | --- |
| CPU core-seconds, whole factory | {pv['cpu_core_s']:,.0f} |
| source media bytes | {pv['source_bytes'] / 1e9:.2f} GB |
| clip shards bytes | {pv['shard_bytes'] / 1e9:.2f} GB |
| fingerprint bytes | {pv['fingerprint_bytes'] / 1e6:.1f} MB |
| clips | {pv['clips']:,.0f} |

Catalog: {m['catalog']['rows_per_clip']} rows and {m['catalog']['bytes_per_clip']:,} bytes per clip. The catalog
writer loads stage results at {m['writer_rows_per_s']:,.0f} rows per CPU-second (Parquet parts of 16 results, 200
batches a load, on this machine: `bench/bench_parts_load.py`; a writer with a core of its own).

CPU core-seconds per video-hour by stage (the run's CPU time shared out by time inside each stage):

| stage | core-s per video-hour |
| --- | --- |
{stages}

The corpus is short sources (5-20 s, up to 720p) from `../shared/data/media`; long films cost less per hour
(fewer sources, fewer clips; see BENCHMARKS.md "The factory"). Fetch ran against a loopback server: real
origins add latency, which the per-host limits and many concurrent sources hide, not CPU.

## Assumed

Nodes of {a.node_cores} cores, {a.utilisation:.0%} busy on average; a {a.index_machine_gb} GB fingerprint lookup machine; ${a.core_hour_usd} per core-hour (spot CPU);
${a.gb_month_usd} per GB-month of object storage, counted for one month of what each hour writes;
source media is deleted after a build (kept only where the licence allows it, then add the row below to the
storage). No GPU: every figure is for the CPU path.

## The plan

{chr(10).join(rows)}

## What breaks first

- **The fingerprint index, already at 1×.** It is one in-memory multi-index-hashing structure in one
  lookup process (`clipfactory/fingerprints/index.py`, about {INDEX_BYTES_PER_HASH} bytes per frame hash, one PDQ hash
  every `pdq_interval_s` of video). "80 years a day" adds {hashes_day / 1e9:,.2f} G frame hashes, {index_gb_day:,.0f} GB
  of index, a day: a {a.index_machine_gb} GB machine is full after {index_days:,.1f} days (at 10×:
  {index_days / 10:,.2f} days). The remedy, not built yet: partition the index by source-id hash over several
  lookup processes (the search is exact within each partition, so answers merge by union), and hash fewer
  frames per hour of long static footage.{index_search}
- **The single catalog writer at about {writer_break:,.1f}×.** Workers never open the catalog; they append
  Parquet parts and one writer loads them in batches (`docs/architecture.md`). It needs
  {daily['writer_load']:.1%} of its measured rate at 1×, {daily['writer_load'] * 10:.0%} at 10× and
  {daily['writer_load'] * 100:.0%} at 100×. Its cost is per part more than per row (DuckDB opens each small
  part, on one thread, and each is deleted after the load), so larger parts (several batches per part, at the price of
  more results in flight) raise the rate; beyond that, one catalog per corpus partition (sources by id
  hash), each with its own writer, and builds that read every partition's catalog.
- **The catalog's size.** {daily['catalog_gb_per_day']:,.0f} GB a day at 1× ({m['catalog']['rows_per_clip']} rows per clip, most of them
  one outcome row per stage): a year is {daily['catalog_gb_per_day'] * 365 / 1000:,.0f} TB. Outcome rows of finished runs can
  be compacted to one per item; the partitioned catalogs above split the rest.
- **Network** at 100× ({daily['ingress_gbit_s'] * 100:,.0f} Gbit/s in) needs fetch nodes spread over regions, each
  region with its shared per-host limiter.
- **GPUs** pay off where a model runs per frame (TransNetV2, visual embeddings, VLM captions); the CPU path
  decodes once and computes cheap signals, so no GPU node is in the plan above. NVDEC decode would cut the
  analysis stage's share; it was not measured here (no GPU on this machine).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", help="saved figures (bench/results/capacity.json) instead of measuring")
    ap.add_argument("--short", type=int, default=40, help="short sources to measure over")
    ap.add_argument("--node-cores", type=int, default=64)
    ap.add_argument("--utilisation", type=float, default=0.7)
    ap.add_argument("--core-hour-usd", type=float, default=0.01)
    ap.add_argument("--gb-month-usd", type=float, default=0.02)
    ap.add_argument("--index-machine-gb", type=int, default=512, help="memory of the fingerprint lookup machine")
    ap.add_argument(
        "--print", action="store_true",
        help="print the document and write nothing (neither docs/capacity.md nor bench/results/capacity.json)",
    )
    a = ap.parse_args(argv)
    if not 0 < a.utilisation <= 1:
        ap.error(f"--utilisation is a share of the time busy, above 0 and at most 1 (0.7 is 70%), not {a.utilisation}")
    if a.src:
        try:
            m = json.loads(Path(a.src).read_text())
        except (OSError, ValueError) as exc:
            ap.error(f"--from {a.src}: cannot read saved figures ({exc}); run without --from to measure them")
        missing = [k for k in ("per_video_hour", "catalog", "writer_rows_per_s", "corpus", "run") if k not in m]
        if missing:
            ap.error(f"--from {a.src}: not the figures capacity_plan.py saves (no {', '.join(missing)}); "
                     "run without --from to measure them")
    else:
        m = measure(a.short)
        if a.print:  # the saved figures stay those docs/capacity.md was made from
            print(f"measured figures (not saved, --print): {json.dumps(m)}", file=sys.stderr)
        else:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(m, indent=2) + "\n")
    p = plan(m, a)
    doc = render(m, p, a)
    if a.print:
        print(doc)
    else:
        DOC.write_text(doc)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    print(json.dumps(p, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
