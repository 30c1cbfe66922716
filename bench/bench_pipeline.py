"""End-to-end ``clipfactory run`` against a PyAV decode-only loop on the same film.

Baseline and ours run interleaved in one process run, on the full Big Buck Bunny film
(``bash ../shared/data/get-bbb.sh`` fetches it; 596 s, 1280x720, 24 fps):

* **decode-only**: PyAV decodes every video frame (``thread_type = "AUTO"``) and does nothing else; the
  physical limit of any pass that looks at every frame.
* **run**: the main job on a fresh catalog and store each time: acquire into the blob store, policy
  gate, probe, analyse (one decode), cut (stream copy or re-encode), quality filter, WebDataset export.

Targets: run / decode-only <= 2.0; peak RSS of one run (a fresh subprocess) <= 1.5 GB.

    python bench/bench_pipeline.py [--video PATH] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def find_bbb() -> str:
    out = subprocess.run(
        ["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return out.strip().splitlines()[-1]


def decode_only(path: str) -> int:
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return n


class TimingProgress:
    """Records wall time per stage (progress protocol), for the breakdown."""

    def __init__(self) -> None:
        self.t0: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def start(self, task, total=None, unit="items"):
        self.t0[task] = time.perf_counter()

    def advance(self, task, n=1, **info):
        pass

    def finish(self, task):
        if task in self.t0:
            self.seconds[task] = self.seconds.get(task, 0.0) + time.perf_counter() - self.t0.pop(task)

    def close(self):
        pass


def run_once(video: str, workdir: Path, sets: list[str] | None = None) -> dict:
    from clipfactory import registry
    from clipfactory.catalog import Catalog
    from clipfactory.config import Settings, apply_sets
    from clipfactory.factory.pipeline import run_pipeline

    data = dict(
        catalog=str(workdir / "cat.duckdb"),
        store=str(workdir / "store"),
        inputs=[video],
        license="CC-BY-3.0",
        rights_holder="Blender Foundation",
        purpose="commercial",
        build={"name": "bbb", "out": str(workdir / "builds"), "shard_size": 100},
    )
    s = Settings(**apply_sets(data, sets or [], set(registry.load_all())))
    progress = TimingProgress()
    t, c = time.perf_counter(), time.process_time()
    summary = run_pipeline(s, progress=progress)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    methods = Catalog(s.catalog).query(
        "SELECT cut_method, count(*) AS n, sum(end_ms - start_ms) / 1000 AS seconds, sum(size_bytes) AS bytes "
        "FROM clips WHERE cut_method IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "stages": {k: round(v, 2) for k, v in progress.seconds.items()},
        "clips_planned": summary["clips_planned"],
        "clips_kept": summary["clips_kept"],
        "n_shards": summary["build"]["n_shards"],
        "cut_methods": {
            r["cut_method"]: {
                "clips": r["n"],
                "seconds": round(r["seconds"], 1),
                "mb": round(r["bytes"] / 1e6, 1),
            }
            for r in methods
        },
        "quality_reasons": summary["stages"]["quality.filter"]["reasons"],
    }


def peak_rss_mb(video: str) -> float:
    """Peak resident memory of one full run in a fresh process."""
    with tempfile.TemporaryDirectory() as d:
        code = (
            f"import sys, json, resource; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_pipeline as b; from pathlib import Path; b.run_once({video!r}, Path({d!r})); "
            "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="film to run on (default: the Big Buck Bunny film)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=K=V[,K=V]",
        help="also time the run with these --set overrides, e.g. fast=media.cut.preset=ultrafast",
    )
    args = ap.parse_args()
    video = args.video or find_bbb()
    variants: dict[str, list[str]] = {"default": []}
    for v in args.variant:
        name, _, sets = v.partition("=")
        variants[name] = [x for x in sets.split(",") if x]
    dec: list[float] = []
    dec_cpu: list[float] = []
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    frames = 0
    for i in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        frames = decode_only(video)
        dec.append(time.perf_counter() - t)
        dec_cpu.append(time.process_time() - c)
        line = f"repeat {i + 1}: decode-only {dec[-1]:.1f}s (cpu {dec_cpu[-1]:.1f}s)"
        for name, sets in variants.items():
            with tempfile.TemporaryDirectory() as d:
                r = run_once(video, Path(d), sets)
            runs[name].append(r)
            line += f", {name} {r['seconds']:.1f}s (cpu {r['cpu_seconds']:.1f}s) {r['stages']}"
        print(line, file=sys.stderr)
    med_dec = statistics.median(dec)
    result = {
        "video": video,
        "frames": frames,
        "repeat": args.repeat,
        "decode_only_s": [round(x, 2) for x in dec],
        "median_decode_only_s": round(med_dec, 2),
        "decode_only_cpu_s": [round(x, 2) for x in dec_cpu],
        "decode_only_fps": round(frames / med_dec, 1),
        "variants": {},
    }
    for name, rs in runs.items():
        times = [r["seconds"] for r in rs]
        med = statistics.median(times)
        ratios = [r["seconds"] / d for r, d in zip(rs, dec, strict=True)]
        cpu_ratios = [r["cpu_seconds"] / d for r, d in zip(rs, dec_cpu, strict=True)]
        result["variants"][name] = {
            "sets": variants[name],
            "run_s": [round(x, 2) for x in times],
            "median_run_s": round(med, 2),
            "ratio_of_medians": round(med / med_dec, 3),
            "median_paired_ratio": round(statistics.median(ratios), 3),
            "cpu_s": [round(r["cpu_seconds"], 2) for r in rs],
            "median_paired_cpu_ratio": round(statistics.median(cpu_ratios), 3),
            "run_fps": round(frames / med, 1),
            "stage_seconds_median": {
                k: round(statistics.median(r["stages"].get(k, 0.0) for r in rs), 2) for k in rs[-1]["stages"]
            },
            "last_run": rs[-1],
        }
    if not args.skip_memory:
        result["peak_rss_mb"] = round(peak_rss_mb(video), 1)
    result["self_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{frames} frames; decode-only median {med_dec:.1f}s")
        for name, v in result["variants"].items():
            print(
                f"{name}: run median {v['median_run_s']:.1f}s, run / decode-only = {v['ratio_of_medians']:.2f} "
                f"(paired median {v['median_paired_ratio']:.2f}; CPU time {v['median_paired_cpu_ratio']:.2f}; "
                "target <= 2.0)"
            )
            print("  median seconds per stage:", v["stage_seconds_median"])
            print("  cut methods:", v["last_run"]["cut_methods"])
        if "peak_rss_mb" in result:
            print(f"peak RSS of one default run: {result['peak_rss_mb']:.0f} MB (target <= 1536)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
