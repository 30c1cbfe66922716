"""The whole factory from a web manifest: ingest, then ``run --dataset`` (gate, fetch, probe, analyse, filter,
near-duplicate check, cut, export), against a plain PyAV decode-only pass over the same files.

The files are served by the benchmark server of ``bench/bench_fetch.py`` (``tests/acquire/server.py
--fast``) in a subprocess on 127.0.0.1. Two corpora run side by side in one process run, interleaved with
their baselines:

* **film**: the full Big Buck Bunny film (``bash ../shared/data/get-bbb.sh`` fetches it; 596 s, 720p);
* **short**: 200 short sources of 5 to 20 s, stream-copied out of the real videos in ``../shared/data/media``
  (vtest.avi, box.mp4, cup.mp4, bikes.mp4) at different offsets, so no two are the same file.

Each corpus is one CC-BY-4.0 manifest row per file with a caption and no spans (clips come from shots).
Figures:

* ``run / decode-only``: the run's wall time over the decode-only pass's. Target <= 2.0.
* ``overhead per source``: the run's wall time less the time spent inside the stages' ``process_batch``
  (decoding, hashing, fetching, cutting, writing shards), divided by the number of sources: catalog writes,
  stage hand-offs, resume look-ups and part files. Target <= 20 ms.

    python bench/bench_factory.py [--repeat 3] [--short 200] [--skip-film] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".bench-cache" / "factory"
SHORT_FROM = ["vtest.avi", "box.mp4", "cup.mp4", "bikes.mp4"]


def find_bbb() -> str:
    out = subprocess.run(
        ["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return out.strip().splitlines()[-1]


def remux(src: Path, dst: Path, start_s: float, length_s: float) -> None:
    """Stream-copy ``length_s`` seconds of the video stream from the keyframe at or before ``start_s``."""
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        tmp = dst.with_name(dst.name + ".tmp" + dst.suffix)
        with av.open(str(tmp), "w") as out:
            vout = out.add_stream_from_template(vin)
            inp.seek(int(start_s / vin.time_base), stream=vin, backward=True, any_frame=False)
            first = None
            for pkt in inp.demux(vin):
                if pkt.dts is None or pkt.pts is None:
                    continue
                t = float(pkt.pts * vin.time_base)
                if first is None:
                    if not pkt.is_keyframe:
                        continue
                    first = t
                if t - first >= length_s:
                    break
                pkt.stream = vout
                out.mux(pkt)
        tmp.rename(dst)


def short_corpus(n: int) -> list[Path]:
    d = CACHE / f"short-{n}"
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261202)
    files = []
    durations = {}
    for name in SHORT_FROM:
        with av.open(str(SHARED / "media" / name)) as c:
            durations[name] = c.duration / 1e6
    for i in range(n):
        name = SHORT_FROM[i % len(SHORT_FROM)]
        dur = durations[name]
        length = rng.uniform(5.0, min(20.0, dur - 0.5))
        start = rng.uniform(0.0, max(0.0, dur - length - 0.5))
        dst = d / f"s{i:03d}{Path(name).suffix}"
        if not dst.exists():
            remux(SHARED / "media" / name, dst, start, length)
        files.append(dst)
    return files


def decode_only(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for _ in c.decode(s):
                n += 1
    return n


class StageClock:
    """Time spent inside every stage's ``process_batch`` (wrapped on the registered classes)."""

    def __init__(self) -> None:
        from clipfactory import registry

        self.seconds: dict[str, float] = {}
        self._orig = {}
        for name, cls in registry.load_all().items():
            self._wrap(name, cls)

    def _wrap(self, name, cls) -> None:
        orig = cls.process_batch
        self._orig[cls] = orig
        clock = self

        def timed(self, items, _orig=orig, _name=name):
            t = time.perf_counter()
            try:
                return _orig(self, items)
            finally:
                clock.seconds[_name] = clock.seconds.get(_name, 0.0) + time.perf_counter() - t

        cls.process_batch = timed

    def reset(self) -> None:
        self.seconds = {}


def run_once(origin: str, files: list[Path], workdir: Path, clock: StageClock) -> dict:
    from clipfactory.catalog import Catalog
    from clipfactory.config import load_settings
    from clipfactory.factory.pipeline import run_pipeline
    from clipfactory.sources.ingest import ingest_manifest

    cfg = workdir / "clipfactory.toml"
    cfg.write_text(
        'catalog = "cat.duckdb"\nstore = "store"\npurpose = "commercial"\n'
        '[build]\nname = "bench"\nout = "builds"\nshard_size = 100\n'
        # One loopback origin serves every file: no per-origin politeness limit (a real list spans many hosts).
        "[acquire.http]\nallow_private_addresses = true\nper_host_rate = 0\n"
    )
    manifest = workdir / "manifest.csv"
    lines = ["url,license,rights_holder,title,caption"]
    for p in files:
        lines.append(f"{origin}/m/{p.name},CC-BY-4.0,Benchmark Owner,{p.stem},footage {p.stem}")
    manifest.write_text("\n".join(lines) + "\n")
    settings = load_settings(cfg)
    ingest_manifest(
        Catalog(settings.catalog), manifest, format="generic", dataset="bench",
        mapping="url=url,license=license,rights_holder=rights_holder,title=title,caption=caption",
    )
    clock.reset()
    t = time.perf_counter()
    summary = run_pipeline(settings, datasets=["bench"])
    seconds = time.perf_counter() - t
    inside = sum(clock.seconds.values())
    n = summary["sources"]
    return {
        "seconds": seconds,
        "inside_stages_s": inside,
        "stage_seconds": {k: round(v, 2) for k, v in sorted(clock.seconds.items())},
        "sources": n,
        "fetched": summary["fetched"],
        "clips": summary["build"]["n_clips"],
        "overhead_ms_per_source": 1000 * (seconds - inside) / max(1, n),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--short", type=int, default=200, help="number of short sources")
    ap.add_argument("--skip-film", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    corpora: dict[str, list[Path]] = {}
    if not args.skip_film:
        corpora["film"] = [Path(find_bbb())]
    corpora["short"] = short_corpus(args.short)
    media = [str(p) for files in corpora.values() for p in files]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "acquire" / "server.py"), "--fast", *sum((["--media", m] for m in media), [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    origin = json.loads(server.stdout.readline())["origin"]
    clock = StageClock()
    rows: dict[str, dict[str, list]] = {k: {"decode": [], "runs": []} for k in corpora}
    frames: dict[str, int] = {}
    try:
        for i in range(args.repeat):
            for name, files in corpora.items():
                t = time.perf_counter()
                frames[name] = decode_only(files)
                rows[name]["decode"].append(time.perf_counter() - t)
                with tempfile.TemporaryDirectory() as d:
                    r = run_once(origin, files, Path(d), clock)
                rows[name]["runs"].append(r)
                print(
                    f"repeat {i + 1} {name}: decode-only {rows[name]['decode'][-1]:.1f}s, run {r['seconds']:.1f}s, "
                    f"overhead {r['overhead_ms_per_source']:.1f} ms/source, {r['stage_seconds']}",
                    file=sys.stderr,
                )
    finally:
        server.stdin.close()
        server.wait(10)
    result = {"date": time.strftime("%Y-%m-%d"), "repeat": args.repeat, "corpora": {}}
    for name, r in rows.items():
        ratios = [x["seconds"] / d for x, d in zip(r["runs"], r["decode"], strict=True)]
        result["corpora"][name] = {
            "files": len(corpora[name]),
            "frames": frames[name],
            "decode_only_s": [round(x, 2) for x in r["decode"]],
            "run_s": [round(x["seconds"], 2) for x in r["runs"]],
            "median_paired_ratio": round(statistics.median(ratios), 3),
            "overhead_ms_per_source": round(statistics.median(x["overhead_ms_per_source"] for x in r["runs"]), 2),
            "clips": r["runs"][-1]["clips"],
            "fetched": r["runs"][-1]["fetched"],
            "stage_seconds_last": r["runs"][-1]["stage_seconds"],
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, v in result["corpora"].items():
            print(
                f"{name} ({v['files']} files, {v['frames']} frames, {v['clips']} clips): run / decode-only = "
                f"{v['median_paired_ratio']:.2f} (target <= 2.0); pipeline overhead "
                f"{v['overhead_ms_per_source']:.1f} ms per source (target <= 20)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
