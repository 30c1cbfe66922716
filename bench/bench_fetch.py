"""Benchmark the HTTP fetcher on loopback against a plain httpx streaming loop.

A test server (tests/acquire/server.py) runs in a subprocess on 127.0.0.1 and serves synthetic MP4 files
(small ones from memory, large ones with sendfile(2) from /dev/shm, as a production file server would), so
the fetcher's CPU time is its own and the server takes little of the CPU the client runs on. Both sides use 64 concurrent connections, one
``httpx.AsyncClient`` with HTTP/1.1, and stream every body:

* **baseline**: ``async with client.stream(...)``, ``aiter_raw()``, bytes discarded; no checks at all.
* **baseline+disk**: the same, writing each body to a file and hashing it (what any downloader does).
* **fetcher**: :class:`clipfactory.acquire.http.Fetcher` with every consent check (platform terms,
  robots.txt, tdmrep.json, X-Robots-Tag, TDM headers, Content-Usage, C2PA when installed), content
  sniffing, sha256, writes into the blob store with fsync, and adoption under the hash.

After an untimed warm-up of each, and an untimed ``sync`` before every run, runs are interleaved (baseline, baseline+disk, fetcher) and repeated; medians and ratios are printed, with
CPU time / wall time of this process during each run (about 1.0 = one core busy), and how often the
server saw robots.txt and tdmrep.json requested.

Then, on ONE connection, CPU milliseconds per small fetch: of the event-loop thread and of the whole process.

    python bench/bench_fetch.py [--small 2000:32768] [--large 16:67108864] [--repeat 3] [--pin] [--json]

``--pin`` puts this process (the client, with all its threads) on one CPU and the server on the others: what
the fetcher does with one core.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "acquire" / "server.py"
CONCURRENCY = 64


SERVER_CPUS: set[int] | None = None  # --pin: the server's CPUs (the client keeps the others)


class Server:
    def __init__(self, specs: list[str], fast: bool = True):
        args = [sys.executable, str(SERVER)] + (["--fast"] if fast else [])
        for s in specs:
            args += ["--files", s]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if SERVER_CPUS:
            os.sched_setaffinity(self.proc.pid, SERVER_CPUS)
        line = self.proc.stdout.readline()
        self.origin = json.loads(line)["origin"]
        assert self.origin.startswith("http://127.0.0.1:"), self.origin

    def hits(self) -> dict[str, int]:
        self.proc.stdin.write("hits\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _timed(fn):
    # Untimed: flush what the previous run left to the disk (dirty pages, deleted files), so that no run
    # pays for another's writes.
    os.sync()
    c0, w0 = time.process_time(), time.perf_counter()
    n_bytes, n_ok = fn()
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "cpu_per_wall": cpu / wall, "bytes": n_bytes, "ok": n_ok}


def run_baseline(urls: list[str], to_disk: bool, tmp: Path):
    import httpx

    async def main():
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        sem = asyncio.Semaphore(CONCURRENCY)
        total = ok = 0
        async with httpx.AsyncClient(http1=True, limits=limits, trust_env=False, timeout=60) as client:

            async def one(i: int, url: str):
                nonlocal total, ok
                async with sem, client.stream("GET", url) as r:
                    if to_disk:
                        h = hashlib.sha256()
                        with open(tmp / f"b{i}", "wb") as fh:
                            async for chunk in r.aiter_raw():
                                h.update(chunk)
                                fh.write(chunk)
                                total += len(chunk)
                    else:
                        async for chunk in r.aiter_raw():
                            total += len(chunk)
                    ok += r.status_code == 200

            await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
        return total, ok

    return asyncio.run(main())


FETCH_OPTIONS: dict = {}


def run_fetcher(urls: list[str], store_root: Path, stats_out: dict):
    from clipfactory.acquire.http import Fetcher, FetchOptions, default_platform_check
    from clipfactory.records import SourceRecord
    from clipfactory.storage import BlobStore

    opts = FetchOptions(
        **{
            "max_connections": CONCURRENCY,
            "per_host_connections": CONCURRENCY,
            "per_host_rate": 0,
            "allow_private_addresses": True,  # the server is on 127.0.0.1
            **FETCH_OPTIONS,
        }
    )
    sources = [SourceRecord(source_id=f"url:{i}", platform="web", url=u) for i, u in enumerate(urls)]
    check = default_platform_check()

    async def main():
        async with Fetcher(opts, BlobStore(store_root), platform_check=check) as f:
            outs = await f.fetch_many(sources)
            stats_out.update(f.stats)
        return sum(o.size_bytes or 0 for o in outs), sum(o.status == "kept" for o in outs)

    return asyncio.run(main())


def bench(urls: list[str], repeat: int, label: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-fetch-"))
    runs: dict[str, list[dict]] = {"baseline": [], "baseline_disk": [], "fetcher": []}
    stats: dict = {}
    try:
        # Warm-up, not timed: imports, the server's first connections, the page cache.
        run_baseline(urls[:4], False, tmp)
        run_fetcher(urls[:4], tmp / "warm", {})
        shutil.rmtree(tmp / "warm", ignore_errors=True)
        for _ in range(repeat):
            runs["baseline"].append(_timed(lambda: run_baseline(urls, False, tmp)))
            d = tmp / "disk"
            d.mkdir()
            runs["baseline_disk"].append(_timed(lambda d=d: run_baseline(urls, True, d)))
            shutil.rmtree(d)
            store = tmp / "store"
            stats = {}
            runs["fetcher"].append(_timed(lambda store=store, stats=stats: run_fetcher(urls, store, stats)))
            shutil.rmtree(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict = {"label": label, "files": len(urls), "runs": repeat}
    for name, rs in runs.items():
        assert all(r["ok"] == len(urls) for r in rs), (name, [r["ok"] for r in rs])
        wall = statistics.median(r["wall_s"] for r in rs)
        out[name] = {
            "median_wall_s": round(wall, 3),
            "files_per_s": round(len(urls) / wall, 1),
            "MB_per_s": round(rs[0]["bytes"] / wall / 1e6, 1),
            "cpu_per_wall": round(statistics.median(r["cpu_per_wall"] for r in rs), 2),
        }
    out["fetcher_vs_baseline"] = round(out["fetcher"]["files_per_s"] / out["baseline"]["files_per_s"], 3)
    # Paired: each round's fetcher run against the baseline run just before it, then the median, so that
    # drift of the machine between rounds (a noisy neighbour, the disk) cancels out.
    paired = [b["wall_s"] / f["wall_s"] for b, f in zip(runs["baseline"], runs["fetcher"], strict=True)]
    out["fetcher_vs_baseline_paired"] = {
        "median": round(statistics.median(paired), 3),
        "runs": [round(x, 3) for x in paired],
    }
    out["fetcher_vs_baseline_disk"] = round(
        out["fetcher"]["files_per_s"] / out["baseline_disk"]["files_per_s"], 3
    )
    out["fetcher_stats"] = {
        k: v for k, v in stats.items() if k.startswith(("host_doc", "requests", "retries"))
    }
    return out


def cpu_per_fetch(n: int, repeat: int, fast: bool) -> dict:
    """CPU milliseconds per fetch on ONE connection: the event-loop thread, and the whole process."""
    global CONCURRENCY
    saved, CONCURRENCY = CONCURRENCY, 1
    srv = Server([f"{n}:32768"], fast=fast)
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-cpu-"))
    out: dict[str, list] = {
        "baseline_loop_ms": [],
        "baseline_process_ms": [],
        "fetcher_loop_ms": [],
        "fetcher_process_ms": [],
    }
    try:
        urls = [f"{srv.origin}/f/32768/{i}.mp4" for i in range(n)]
        run_fetcher(urls[:10], tmp / "warm", {})
        for _ in range(repeat):
            for name, fn in (
                ("baseline", lambda: run_baseline(urls, False, tmp)),
                ("fetcher", lambda: run_fetcher(urls, tmp / "store", {})),
            ):
                t, p = time.thread_time(), time.process_time()
                fn()
                out[f"{name}_loop_ms"].append(round((time.thread_time() - t) / n * 1000, 2))
                out[f"{name}_process_ms"].append(round((time.process_time() - p) / n * 1000, 2))
                shutil.rmtree(tmp / "store", ignore_errors=True)
    finally:
        CONCURRENCY = saved
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {k: {"median": statistics.median(v), "runs": v} for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", default="2000:32768", help="COUNT:SIZE of the small files")
    ap.add_argument("--large", default="16:67108864", help="COUNT:SIZE of the large files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--threaded-server", action="store_true", help="the tests' thread-per-connection server")
    ap.add_argument(
        "--cpu-files", type=int, default=300, help="small files for the CPU-per-fetch run (0: skip)"
    )
    ap.add_argument("--set", action="append", default=[], help="fetcher option KEY=VALUE (e.g. fsync=false)")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="run the client (this process, all its threads) on ONE CPU and the server on the others, "
        "to measure what the fetcher does with one core",
    )
    args = ap.parse_args(argv)
    global SERVER_CPUS
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            ap.error("--pin needs at least 2 CPUs")
        os.sched_setaffinity(0, {cpus[0]})
        SERVER_CPUS = set(cpus[1:])
    for item in args.set:
        key, _, value = item.partition("=")
        FETCH_OPTIONS[key] = json.loads(value) if value[:1] in '0123456789tfn[{"' else value
    os.environ.pop("CLIPFACTORY_SPAWNING_API_KEY", None)
    try:
        import c2pa  # noqa: F401

        c2pa_state = "installed (checked on every file)"
    except ImportError:
        c2pa_state = "not installed (recorded as not checked)"
    results = {
        "c2pa": c2pa_state,
        "concurrency": CONCURRENCY,
        "cpus": len(os.sched_getaffinity(0)),
        "client_pinned_to_one_cpu": bool(args.pin),
        "fetch_options": FETCH_OPTIONS,
        "server": "threaded" if args.threaded_server else "asyncio",
    }
    for label, spec in (("small", args.small), ("large", args.large)):
        count, size = (int(x) for x in spec.split(":"))
        srv = Server([spec], fast=not args.threaded_server)
        try:
            urls = [f"{srv.origin}/f/{size}/{i}.mp4" for i in range(count)]
            r = bench(urls, args.repeat, label)
            r["size_bytes"] = size
            hits = srv.hits()
            r["server_hits"] = {
                "robots.txt": hits.get("/robots.txt", 0),
                "tdmrep.json": hits.get("/.well-known/tdmrep.json", 0),
                "fetcher_runs": args.repeat + 1,  # with the warm-up run
            }
            results[label] = r
        finally:
            srv.close()
    if args.cpu_files:
        results["cpu_per_fetch_one_connection"] = cpu_per_fetch(
            args.cpu_files, args.repeat, not args.threaded_server
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"c2pa: {results['c2pa']}; {CONCURRENCY} connections; client on {results['cpus']} CPU(s)"
        + ("; server on the others" if args.pin else ", shared with the server")
    )
    for label in ("small", "large"):
        r = results[label]
        print(f"\n{label}: {r['files']} files x {r['size_bytes']} bytes, median of {r['runs']} runs")
        for name in ("baseline", "baseline_disk", "fetcher"):
            x = r[name]
            print(
                f"  {name:14s} {x['files_per_s']:9.1f} files/s {x['MB_per_s']:8.1f} MB/s  "
                f"cpu/wall {x['cpu_per_wall']:.2f}  wall {x['median_wall_s']:.2f}s"
            )
        print(
            f"  fetcher / baseline = {r['fetcher_vs_baseline']:.3f}; "
            f"fetcher / baseline+disk = {r['fetcher_vs_baseline_disk']:.3f}"
        )
        pr = r["fetcher_vs_baseline_paired"]
        print(f"  fetcher / baseline, round by round: median {pr['median']:.3f} of {pr['runs']}")
        print(f"  robots.txt and tdmrep.json requests seen by the server: {r['server_hits']}")
    if "cpu_per_fetch_one_connection" in results:
        c = results["cpu_per_fetch_one_connection"]
        print("\nCPU ms per fetch, one connection (median; event-loop thread / whole process):")
        print(f"  baseline {c['baseline_loop_ms']['median']} / {c['baseline_process_ms']['median']}")
        print(f"  fetcher  {c['fetcher_loop_ms']['median']} / {c['fetcher_process_ms']['median']}")


if __name__ == "__main__":
    main()
