"""PDQ hashing: the fast path (``clipfactory.fingerprints.pdq``) against ``pdqhash.compute``, side by side.

Both sides run the same work in fresh subprocesses, interleaved, ``--repeat`` times; one side sets
``CLIPFACTORY_PDQ_NATIVE=0`` (the package's own functions, what ran before), the other leaves the fast
path on. Measured per side, as CPU seconds of the process (all threads) and wall seconds:

* ``hash``: PDQ (and the mirror hash) of every frame's luma plane of the video at about 320 pixels wide,
  decoded once before the clock starts, so only hashing is timed;
* ``sample``: :func:`clipfactory.fingerprints.sample.sample_file` of the video at every frame with the
  mirror hashes (what a lookup, a takedown's tombstone and the tombstone guard run);
* ``analyse``: the analysis pass (``media.analyse`` defaults, ``detect_text = false``), whose PDQ runs
  once a second.

Each side also writes a digest of every hash it made; the digests must be equal (the fast path is bit for
bit the package's hash).

    python bench/bench_pdq.py [--video PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

_CHILD = r"""
import hashlib, json, resource, sys, time
import numpy as np
part, video = sys.argv[1], sys.argv[2]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
digest = hashlib.sha256()
if part == "hash":
    import av
    from clipfactory.fingerprints.sample import pdq_and_mirror_of_luma, pdq_of_luma
    lumas = []
    with av.open(video) as c:
        for f in c.decode(video=0):
            g = f.to_ndarray(format="gray")
            step = max(1, round(g.shape[1] / 320))
            lumas.append(np.ascontiguousarray(g[::step, ::step]))
    pdq_of_luma(lumas[0])
    w, c0 = time.perf_counter(), cpu()
    for y in lumas:
        h, q = pdq_of_luma(y)
        h2, m, q2 = pdq_and_mirror_of_luma(y)
        digest.update(h + m + bytes([q, q2]))
    n = len(lumas)
elif part == "sample":
    from clipfactory.fingerprints.sample import sample_file
    w, c0 = time.perf_counter(), cpu()
    q = sample_file(video, fps=0.0, mirror=True)
    digest.update(q.hashes.tobytes())
    n = q.n_sampled
else:
    from clipfactory.media.analyse import AnalyseConfig, analyse
    w, c0 = time.perf_counter(), cpu()
    res = analyse(video, AnalyseConfig(detect_text=False))
    for p in res.pdq:
        digest.update(bytes.fromhex(p.hash_hex))
    n = len(res.pdq)
print(json.dumps({"wall": time.perf_counter() - w, "cpu": cpu() - c0, "n": n, "digest": digest.hexdigest()}))
"""


def _side(part: str, video: str, native: bool) -> dict:
    env = {**os.environ, "CLIPFACTORY_PDQ_NATIVE": "1" if native else "0"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, part, video], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(SHARED / "media" / "trailer_bbb.mp4"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parts", default="hash,sample,analyse")
    args = ap.parse_args(argv)
    print(f"video: {Path(args.video).name}; medians of {args.repeat} interleaved runs per side")
    print(f"{'part':8} {'items':>6} {'package CPU s':>14} {'fast CPU s':>11} {'fast/package CPU':>17} "
          f"{'package wall':>13} {'fast wall':>10}  same hashes")  # fmt: skip
    for part in args.parts.split(","):
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(args.repeat):
            for native in (False, True):
                runs[native].append(_side(part, args.video, native))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "cpu")} for k, v in runs.items()}
        same = len({r["digest"] for v in runs.values() for r in v}) == 1
        n = runs[True][0]["n"]
        print(f"{part:8} {n:>6} {med[False]['cpu']:>14.3f} {med[True]['cpu']:>11.3f} "
              f"{med[True]['cpu'] / med[False]['cpu']:>17.2f} {med[False]['wall']:>13.3f} "
              f"{med[True]['wall']:>10.3f}  {same}")  # fmt: skip
        if not same:
            print("error: the two sides' hashes differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
