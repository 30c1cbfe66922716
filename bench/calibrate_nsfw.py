"""Calibrate the int8 NSFW graph: write ``src/clipfactory/signals/nsfw_int8.json``, and check the scores.

Calibration set (the ranges are made from these only): scikit-image's bundled pictures (the ``dev`` extra)
and one frame a second (at most 12 a file) of the shared media that are not Big Buck Bunny:
``Megamind_bugy.avi``, ``carphone_pristine.mp4``, ``vtest.avi``, ``bikes.mp4``, ``box.mp4``, ``cup.mp4``.

Held out (scored with float32 and with the new int8 graph, never calibrated on): one frame a second of the
shared ``trailer_bbb.mp4`` and of ``examples/media/*.mp4``. ``bench/bench_signals.py`` compares the two on
the film's shot thumbnails too.

    python bench/calibrate_nsfw.py [--media DIR] [--check-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ["Megamind_bugy.avi", "carphone_pristine.mp4", "vtest.avi", "bikes.mp4", "box.mp4", "cup.mp4"]
SKIMAGE = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "hubble_deep_field",
           "retina", "cat", "colorwheel", "logo", "page", "text", "horse", "moon", "brick", "grass", "gravel"]


def frames(path: Path, per_file: int = 12) -> list:
    """One RGB PIL frame a second of ``path``, at most ``per_file``."""
    import av

    out, next_t = [], 0.0
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if f.time is None or f.time >= next_t:
                out.append(f.to_image())
                next_t = (f.time or 0.0) + 1.0
                if len(out) >= per_file:
                    break
    return out


def skimage_pictures() -> list:
    from PIL import Image
    from skimage import data

    out = []
    for name in SKIMAGE:
        a = getattr(data, name)()
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        if a.dtype != np.uint8:
            a = (255 * (a.astype(np.float64) / a.max())).astype(np.uint8)
        out.append(Image.fromarray(np.ascontiguousarray(a[..., :3])).convert("RGB"))
    return out


def agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    """How the int8 scores ``got`` agree with float32's ``ref``."""
    from scipy.stats import spearmanr

    diff = np.abs(got - ref)
    out = {"images": int(ref.size), "max_abs_diff": round(float(diff.max()), 4),
           "mean_abs_diff": round(float(diff.mean()), 4),
           "spearman": round(float(spearmanr(ref, got).statistic), 4) if ref.size > 2 else None}
    for t in (0.2, 0.5, 0.8):
        out[f"decisions_changed_at_{t}"] = int(((ref > t) != (got > t)).sum())
        out[f"above_{t}_float32"] = int((ref > t).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "data" / "media"))
    ap.add_argument("--check-only", action="store_true", help="score the held-out frames with the shipped ranges")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from clipfactory.signals import nsfw

    media = Path(args.media)
    if not args.check_only:
        cal = skimage_pictures()
        for name in CALIBRATION:
            cal += frames(media / name)
        ranges = nsfw.calibrate(cal)
        ranges["calibration"] = (f"{len(SKIMAGE)} scikit-image pictures and one frame a second (at most 12) of "
                                 + ", ".join(CALIBRATION))
        nsfw.INT8_RANGES.write_text(json.dumps(ranges, indent=1, sort_keys=True) + "\n")
        print(f"wrote {nsfw.INT8_RANGES.relative_to(ROOT)} from {len(cal)} pictures", file=sys.stderr)
    held = frames(media / "trailer_bbb.mp4", per_file=40)
    for p in sorted((ROOT / "examples" / "media").glob("*.mp4")):
        held += frames(p)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["CLIPFACTORY_CACHE_DIR"] = tmp  # the int8 graph made afresh from the ranges
        fp32 = nsfw.NsfwScorer(1, int8=False).score(held)
        q = nsfw.NsfwScorer(1, int8=True)
        assert q.int8, q.int8_skipped
        int8 = q.score(held)
    print(json.dumps({"held_out": "trailer_bbb.mp4 (40 frames) and examples/media/*.mp4, one frame a second",
                      **agreement(fp32, int8)}, indent=1))


if __name__ == "__main__":
    main()
