"""What the visual signals add to the analysis pass, side by side in one process.

Baseline: the plain analysis pass (``clipfactory.media.analyse.analyse`` with the default options and
``detect_text = false``) on the same file. Measured, interleaved, ``--repeat`` times:

* the plain pass (its shot thumbnails are what the signals read);
* the pass with OCR on sampled frames (``detect_text = true``), when rapidocr-onnxruntime is installed;
* ``signals.visual`` (NSFW score and faces; no aesthetic head) over one clip per shot, from the thumbnails
  of the plain pass put in a blob store, in the stage's own batches: JPEG decode, the Open-NSFW graph on
  ONNX Runtime, the Haar face cascade.

Target (issue 14): OCR, NSFW and faces add at most 15% to the analysis pass on the Big Buck Bunny film.
Wall and CPU seconds (all threads of the process) are both reported; on a shared machine CPU is steadier.

    python bench/bench_signals.py [--video PATH] [--repeat 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def find_bbb() -> str:
    out = subprocess.run(
        ["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return out.strip().splitlines()[-1]


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="default: the Big Buck Bunny film (get-bbb.sh)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the NSFW model")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from clipfactory import registry
    from clipfactory.media.analyse import AnalyseConfig, analyse
    from clipfactory.records import ClipRecord
    from clipfactory.stage import StageContext
    from clipfactory.storage import BlobStore

    video = args.video or find_bbb()
    has_ocr = importlib.util.find_spec("rapidocr_onnxruntime") is not None
    tmp = Path(tempfile.mkdtemp(prefix="bench-signals-"))
    store = BlobStore(tmp / "store")
    stage = registry.get("signals.visual")({"threads": args.threads}, StageContext(store_root=str(store.root)))
    stage.check()  # model loading is a once-per-worker cost, kept out of the timings

    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "ocr": [], "signals": [], "nsfw": [], "faces": []}
    info: dict = {}
    for _ in range(args.repeat):
        result, w, c = timed(lambda: analyse(video, AnalyseConfig(detect_text=False)))
        runs["plain"].append((w, c))
        if has_ocr:
            _, w, c = timed(lambda: analyse(video, AnalyseConfig(detect_text=True)))
            runs["ocr"].append((w, c))
        clips = [
            ClipRecord(f"{s.index:020d}", "bench", s.start_ms, s.end_ms, shot_index=s.index,
                       thumb_uri=store.put_bytes(s.thumbnail))
            for s in result.shots
            if s.thumbnail
        ]
        parts = {"nsfw_s": 0.0, "faces_s": 0.0, "nsfw_cpu_s": 0.0, "faces_cpu_s": 0.0}

        def score(clips=clips, parts=parts):
            out = []
            for i in range(0, len(clips), stage.batch_size):
                out += stage.process_batch(clips[i : i + stage.batch_size])
                for k in parts:
                    parts[k] += stage._timing[k]
            return out

        results, w, c = timed(score)
        runs["signals"].append((w, c))
        runs["nsfw"].append((parts["nsfw_s"], parts["nsfw_cpu_s"]))
        runs["faces"].append((parts["faces_s"], parts["faces_cpu_s"]))
        recs = [r.records[0] for r in results]
        info = {
            "frames": result.n_frames,
            "shots": len(result.shots),
            "thumbnails": len(clips),
            "thumbnail_size": _size(store, clips[0].thumb_uri) if clips else None,
            "clips_with_faces": sum(1 for r in recs if r.face_count),
            "nsfw_max": round(max((r.nsfw for r in recs if r.nsfw is not None), default=0.0), 4),
            "nsfw_above_0.8": sum(1 for r in recs if (r.nsfw or 0) > 0.8),
        }

    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items() if v}
    plain_w, plain_c = med["plain"]
    rows = []
    for k, (w, c) in med.items():
        rows.append({"measure": k, "wall_s": round(w, 2), "cpu_s": round(c, 2)})
    ocr_add = (med["ocr"][0] - plain_w, med["ocr"][1] - plain_c) if "ocr" in med else (0.0, 0.0)
    sig_w, sig_c = med["signals"]
    ratios = {
        "signals / analysis (wall)": round(sig_w / plain_w, 4),
        "signals / analysis (cpu)": round(sig_c / plain_c, 4),
        "ocr added / analysis (wall)": round(ocr_add[0] / plain_w, 4) if "ocr" in med else None,
        "ocr added / analysis (cpu)": round(ocr_add[1] / plain_c, 4) if "ocr" in med else None,
        "ocr + signals added / analysis (wall), target <= 0.15": round((ocr_add[0] + sig_w) / plain_w, 4),
        "ocr + signals added / analysis (cpu), target <= 0.15": round((ocr_add[1] + sig_c) / plain_c, 4),
    }
    print(json.dumps({"video": Path(video).name, "repeat": args.repeat, "ocr_installed": has_ocr, **info,
                      "medians": rows, "ratios": ratios}, indent=2))


def _size(store, uri: str):
    from PIL import Image

    with Image.open(store.path_of(uri)) as im:
        return list(im.size)


if __name__ == "__main__":
    main()
