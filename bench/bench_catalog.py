"""The example job with the catalog's lingering connection against one DuckDB open per block, side by side.

Runs `clipfactory run --config examples/clipfactory.toml` on a fresh copy of the examples, in a child
process each time, alternating ``LINGER_S = 0.05`` (the default: a connection stays open 50 ms for the next
block of the process) and ``LINGER_S = 0`` (closed as soon as the closer thread sees it, as every block opened
DuckDB before), and prints each run's CPU seconds, wall time and how many times DuckDB was opened.

    python bench/bench_catalog.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from clipfactory.catalog import db
db.LINGER_S = float(sys.argv[1])
opens = [0]
real = db.Catalog._connect
def counting(self, read_only):
    opens[0] += 1
    return real(self, read_only)
db.Catalog._connect = counting
from clipfactory.cli.app import app
t = time.perf_counter()
try:
    app(["run", "--config", "examples/clipfactory.toml", "--json"], standalone_mode=False)
finally:
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": r.ru_utime + r.ru_stime, "opens": opens[0]}),
          file=sys.stderr)
"""


def one(linger: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(ROOT / "examples", Path(d) / "examples")
        p = subprocess.run([sys.executable, "-c", CHILD, str(linger)], cwd=d, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(p.stderr[-2000:])
        return json.loads(p.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"linger": [], "no_linger": []}
    for i in range(args.repeat):
        for key, linger in (("linger", 0.05), ("no_linger", 0.0)):
            r = one(linger)
            runs[key].append(r)
            print(f"run {i + 1} {key}: {r['cpu_s']:.2f} CPU-s, {r['wall_s']:.2f} s, {r['opens']} opens", flush=True)
    out = {k: {m: round(statistics.median(x[m] for x in v), 2) for m in ("cpu_s", "wall_s", "opens")}
           for k, v in runs.items()}
    out["no_linger_over_linger_cpu"] = round(out["no_linger"]["cpu_s"] / out["linger"]["cpu_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
