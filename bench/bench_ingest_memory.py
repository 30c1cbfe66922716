"""Peak memory of ingesting MSR-VTT caption files of growing size.

Input: MSR-VTT's real test caption file (``../shared/data/manifests/msrvtt_test_captions.json``: one
JSON array of 2,990 videos with 59,800 captions), and files of the same shape with ``k`` times as many
videos (each real video repeated under new ids, with its captions), cached in ``bench/out/ingest_memory/``.

Each ingest runs in a fresh subprocess (``ingest_manifest`` into a new catalog, ``threads=2``) under each
DuckDB ``--memory-limit``; peak RSS is that process's own high-water mark (``VmHWM``). An ingest that DuckDB cannot fit
prints its error instead. Target: the real file under 1 GB, and a peak that does not grow with the
number of captions.

    python bench/bench_ingest_memory.py [--scales 1,10,30] [--limits 1GB,150MB]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "manifests" / "msrvtt_test_captions.json"
OUT = ROOT / "bench" / "out" / "ingest_memory"

_RUN = """
import json, resource, sys
from clipfactory.catalog import Catalog
from clipfactory.errors import ClipfactoryError
from clipfactory.sources.ingest import ingest_manifest
catalog, manifest, limit = sys.argv[1:4]
try:
    s = ingest_manifest(Catalog(catalog), manifest, memory_limit=limit, threads=2)
    out = {"rows": s.rows_total, "spans": s.spans, "captions": s.captions}
except ClipfactoryError as exc:
    out = {"error": str(exc)}
# VmHWM: this program's own peak (ru_maxrss would carry the parent's peak over exec)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
out["peak_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def scaled(k: int) -> Path:
    if k == 1:
        return REAL
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"msrvtt_x{k}.json"
    if not path.exists():
        videos = json.loads(REAL.read_text())
        tmp = path.with_suffix(".part")
        with tmp.open("w") as fh:
            fh.write("[")
            n = 0
            for _ in range(k):
                for v in videos:
                    item = {"video": f"video{100000 + n}.mp4", "caption": v["caption"]}
                    fh.write((", " if n else "") + json.dumps(item))
                    n += 1
            fh.write("]")
        tmp.rename(path)
    return path


def run(manifest: Path, limit: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-c", _RUN, str(Path(d) / "catalog.duckdb"), str(manifest), limit],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1], "wall_s": wall}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1,10,30")
    ap.add_argument("--limits", default="1GB,150MB")
    a = ap.parse_args()
    print(f"{'limit':>6} {'scale':>5} {'MB':>6} {'captions':>9} {'peak RSS MB':>11} {'wall s':>6}")
    for limit in a.limits.split(","):
        for k in (int(x) for x in a.scales.split(",")):
            path = scaled(k)
            got = run(path, limit)
            size = path.stat().st_size / 1e6
            if "error" in got:
                print(
                    f"{limit:>6} {k:>5} {size:6.0f} {'':>9} {'':>11} {got['wall_s']:6.1f}  {got['error'][:120]}"
                )
            else:
                print(
                    f"{limit:>6} {k:>5} {size:6.0f} {got['captions']:>9,} {got['peak_mb']:11.0f} {got['wall_s']:6.1f}"
                )


if __name__ == "__main__":
    main()
