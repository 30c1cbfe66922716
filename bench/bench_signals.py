"""What the visual signals add to the analysis pass, side by side in one process.

Baseline: the plain analysis pass (``clipfactory.media.analyse.analyse`` with the default options and
``detect_text = false``) on the same file. Measured, interleaved, ``--repeat`` times:

* the plain pass (its shot thumbnails are what the signals read);
* the pass with OCR on sampled frames (``detect_text = true``), when rapidocr-onnxruntime is installed, with
  PP-OCR's graphs as rewritten by ``clipfactory.onnxgraph`` (what runs) and, with ``--packaged``, as
  packaged; the OCR worker thread's own CPU seconds are reported beside the difference of passes;
* ``signals.visual`` (NSFW score and faces; no aesthetic head) over one clip per shot, from the thumbnails
  of the plain pass put in a blob store, in the stage's own batches: JPEG decode, the Open-NSFW graph on
  ONNX Runtime (``int8``: the default 8-bit graph; ``float32``: ``nsfw_int8 = false``, the rewritten float
  graph; with ``--packaged`` also the float graph as packaged), and the faces of the default detector
  (BlazeFace); beside them the Haar cascade (``face_detector = "haar"``, NSFW off) on the same thumbnails,
  so that ``faces_haar`` and ``faces_<variant>`` compare the two detectors' CPU and ``clips_with_faces``
  their counts (bench/bench_faces.py compares what they find).

The film's thumbnails are held out from the int8 calibration (``bench/calibrate_nsfw.py``): the int8 scores
are compared with float32's on them (largest difference, rank correlation, decisions at 0.2, 0.5, 0.8).

Target (issue 14): OCR, NSFW and faces add at most 15% to the analysis pass on the Big Buck Bunny film.
Wall and CPU seconds (all threads of the process) are both reported; on a shared machine CPU is steadier.

    python bench/bench_signals.py [--video PATH] [--repeat 2] [--threads 1] [--packaged]
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
    ap.add_argument("--packaged", action="store_true",
                    help="also run the graphs as packaged (no rewrite, float32)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "bench"))
    import numpy as np

    import clipfactory.media.analyse as analyse_mod
    from clipfactory import onnxgraph, registry
    from clipfactory.media.analyse import AnalyseConfig, analyse
    from clipfactory.records import ClipRecord
    from clipfactory.signals import nsfw as nsfw_mod
    from clipfactory.stage import StageContext
    from clipfactory.storage import BlobStore

    video = args.video or find_bbb()
    has_ocr = importlib.util.find_spec("rapidocr_onnxruntime") is not None
    tmp = Path(tempfile.mkdtemp(prefix="bench-signals-"))
    store = BlobStore(tmp / "store")
    ctx = StageContext(store_root=str(store.root))

    # Models are loaded once per worker: kept out of the timings. "packaged": the graphs as the packages
    # ship them (clipfactory.onnxgraph's rewrite replaced by the identity).
    rewrite = onnxgraph.optimized_model
    stages, engines = {}, {}
    variants = ["int8", "float32", "packaged"] if args.packaged else ["int8", "float32"]
    for variant in variants:
        onnxgraph.optimized_model = Path if variant == "packaged" else rewrite
        nsfw_mod._SCORERS.clear()
        analyse_mod._OCR.clear()
        stages[variant] = registry.get("signals.visual")({"threads": args.threads, "nsfw_int8": variant == "int8"}, ctx)
        stages[variant].check()
        if variant == "int8":
            assert stages[variant]._nsfw.int8, stages[variant]._nsfw.int8_skipped
        if has_ocr and variant != "float32":  # OCR has no int8 graph: "int8" runs the rewritten one
            engines["packaged" if variant == "packaged" else "rewritten"] = analyse_mod.ocr_engine()
    onnxgraph.optimized_model = rewrite
    haar = registry.get("signals.visual")({"nsfw": False, "face_detector": "haar"}, ctx)
    haar.check()

    worker = {"cpu": 0.0, "n": 0}
    read_shot = analyse_mod._TextSampler._read_shot

    def timed_read_shot(self, *a):
        t = time.thread_time()
        try:
            out = read_shot(self, *a)
            worker["n"] += len(out)
            return out
        finally:
            worker["cpu"] += time.thread_time() - t

    analyse_mod._TextSampler._read_shot = timed_read_shot

    runs: dict[str, list[tuple[float, float]]] = {"plain": []}
    info: dict = {}
    for _ in range(args.repeat):
        result, w, c = timed(lambda: analyse(video, AnalyseConfig(detect_text=False)))
        runs["plain"].append((w, c))
        for variant in engines:
            analyse_mod._OCR[(1,)] = engines[variant]
            worker["cpu"], worker["n"] = 0.0, 0
            _, w, c = timed(lambda: analyse(video, AnalyseConfig(detect_text=True)))
            worker["reads"] = worker["n"]
            runs.setdefault(f"ocr_{variant}", []).append((w, c))
            runs.setdefault(f"ocr_{variant}_worker", []).append((0.0, worker["cpu"]))
        clips = [
            ClipRecord(f"{s.index:020d}", "bench", s.start_ms, s.end_ms, shot_index=s.index,
                       thumb_uri=store.put_bytes(s.thumbnail))
            for s in result.shots
            if s.thumbnail
        ]
        for variant, stage in stages.items():
            parts = {"nsfw_s": 0.0, "faces_s": 0.0, "nsfw_cpu_s": 0.0, "faces_cpu_s": 0.0}

            def score(clips=clips, parts=parts, stage=stage):
                out = []
                for i in range(0, len(clips), stage.batch_size):
                    out += stage.process_batch(clips[i : i + stage.batch_size])
                    for k in parts:
                        parts[k] += stage._timing[k]
                return out

            results, w, c = timed(score)
            runs.setdefault(f"signals_{variant}", []).append((w, c))
            runs.setdefault(f"nsfw_{variant}", []).append((parts["nsfw_s"], parts["nsfw_cpu_s"]))
            runs.setdefault(f"faces_{variant}", []).append((parts["faces_s"], parts["faces_cpu_s"]))
            recs = [r.records[0] for r in results]
            info[f"nsfw_{variant}"] = [r.nsfw for r in recs]
            info[f"faces_{variant}"] = [r.face_count for r in recs]
        haar_cpu = {"faces_s": 0.0, "faces_cpu_s": 0.0}
        haar_recs = []
        for i in range(0, len(clips), haar.batch_size):
            haar_recs += [r.records[0] for r in haar.process_batch(clips[i : i + haar.batch_size])]
            for k in haar_cpu:
                haar_cpu[k] += haar._timing[k]
        runs.setdefault("faces_haar", []).append((haar_cpu["faces_s"], haar_cpu["faces_cpu_s"]))
        info["faces_haar"] = [r.face_count for r in haar_recs]
        info.update({
            "frames": result.n_frames,
            "shots": len(result.shots),
            "thumbnails": len(clips),
            "thumbnail_size": _size(store, clips[0].thumb_uri) if clips else None,
            "clips_with_faces": sum(1 for f in info["faces_int8"] if f),
            "clips_with_faces_haar": sum(1 for f in info["faces_haar"] if f),
            "face_detector": stages["int8"]._faces.name,
            "nsfw_max_float32": round(max((x for x in info["nsfw_float32"] if x is not None), default=0.0), 4),
            "nsfw_above_0.8_float32": sum(1 for x in info["nsfw_float32"] if (x or 0) > 0.8),
            "ocr_reads": worker.get("reads"),
        })
    from calibrate_nsfw import agreement

    info["nsfw_int8_vs_float32"] = agreement(np.array(info["nsfw_float32"]), np.array(info["nsfw_int8"]))
    if "nsfw_packaged" in info:
        info["nsfw_max_abs_diff_float32_rewritten_vs_packaged"] = max(
            (abs(a - b) for a, b in zip(info["nsfw_float32"], info["nsfw_packaged"], strict=True)), default=0.0
        )
    info["same_faces"] = all(info[f"faces_{v}"] == info["faces_int8"] for v in variants)
    for k in [k for k in info if k.startswith(tuple(f"{p}_{v}" for p in ("nsfw", "faces") for v in [*variants, "haar"]))
              and not k.startswith("nsfw_int8_vs")]:
        del info[k]

    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items() if v}
    plain_w, plain_c = med["plain"]
    rows = []
    for k, (w, c) in med.items():
        rows.append({"measure": k, "wall_s": round(w, 2), "cpu_s": round(c, 2)})
    ratios = {"haar: faces / analysis (cpu)": round(med["faces_haar"][1] / plain_c, 4),
              "faces: default detector / haar (cpu)": round(med["faces_int8"][1] / med["faces_haar"][1], 4)}
    for variant in variants:
        sig_w, sig_c = med[f"signals_{variant}"]
        ratios[f"{variant}: signals / analysis (wall)"] = round(sig_w / plain_w, 4)
        ratios[f"{variant}: signals / analysis (cpu)"] = round(sig_c / plain_c, 4)
        ratios[f"{variant}: nsfw / analysis (cpu)"] = round(med[f"nsfw_{variant}"][1] / plain_c, 4)
        ratios[f"{variant}: faces / analysis (cpu)"] = round(med[f"faces_{variant}"][1] / plain_c, 4)
        ocr = "packaged" if variant == "packaged" else "rewritten"
        ocr_w = ocr_c = 0.0
        if f"ocr_{ocr}" in med:
            ocr_w, ocr_c = med[f"ocr_{ocr}"][0] - plain_w, med[f"ocr_{ocr}"][1] - plain_c
            ratios[f"{variant}: ocr ({ocr}) added / analysis (wall)"] = round(ocr_w / plain_w, 4)
            ratios[f"{variant}: ocr ({ocr}) added / analysis (cpu)"] = round(ocr_c / plain_c, 4)
            ratios[f"{variant}: ocr ({ocr}) worker cpu / analysis cpu"] = round(med[f"ocr_{ocr}_worker"][1] / plain_c, 4)
        ratios[f"{variant}: ocr + signals added / analysis (wall), target <= 0.15"] = round((ocr_w + sig_w) / plain_w, 4)
        ratios[f"{variant}: ocr + signals added / analysis (cpu), target <= 0.15"] = round((ocr_c + sig_c) / plain_c, 4)
    print(json.dumps({"video": Path(video).name, "repeat": args.repeat, "ocr_installed": has_ocr, **info,
                      "medians": rows, "ratios": ratios}, indent=2))


def _size(store, uri: str):
    from PIL import Image

    with Image.open(store.path_of(uri)) as im:
        return list(im.size)


if __name__ == "__main__":
    main()
