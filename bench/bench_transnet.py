"""Benchmark TransNetV2 shots and text on screen against the native pass, side by side in one process.

Parts (all by default; ``--part`` picks some):

* ``model``: TransNetV2's throughput on the same 48x27 frames, as shipped (the package's constructor leaves
  ``torch.use_deterministic_algorithms(True)`` on; its own ``predict_frames``), with the constructor's
  determinism and seeds undone (the package's forward, windows batched four at a time, torch's default
  threads), and ours (determinism undone, the CPU plan of ``clipfactory.media.transnet``: one window a pass in
  worker threads of one intra-op thread). Target: ours >= 60 frames/s on CPU, against about 10 as shipped.
  Runs are interleaved; the predictions are compared with the shipped ones.
* ``f1``: shot-boundary F1 of ``detector = native | transnetv2 | both`` on the shared media with the ground
  truth of ``bench/bench_analyse.py`` (``bikes.mp4``, the clip joined from real segments, ``trailer_bbb.mp4``
  before frame 1200, ``Megamind_bugy.avi``; hard cuts within 1 frame, gradual transitions within 2), and on
  the held-out generated scenes of ``tests/media/heldout_scenes.py``; with each pass's speed.
* ``film``: the Big Buck Bunny film (``../shared/data/get-bbb.sh``), once each: the native pass with text on
  screen off and on (interleaved, ``--repeat`` times: OCR's share of the pass; target <= 15% with the other
  thumbnail signals) and the TransNetV2 pass. The film has no annotated boundaries: the two detectors are
  scored against each other (each boundary of one matched within the tolerances to the other's).

    python bench/bench_transnet.py [--part model,f1,film] [--video PATH] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "media"))

import bench_analyse as ba  # noqa: E402

from clipfactory.media.analyse import AnalyseConfig, _small_rgb, analyse  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, *a, **kw):
    c, t = _cpu(), time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, _cpu() - c, out


def small_frames(path: str, limit: int) -> np.ndarray:
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        out = []
        for f in c.decode(s):
            out.append(_small_rgb(f))
            if len(out) >= limit:
                break
    return np.stack(out)


# -- model ---------------------------------------------------------------------------------------------


def part_model(video: str, n_frames: int, repeat: int) -> dict:
    import torch

    from clipfactory.media import transnet

    frames = small_frames(video, n_frames)
    n = len(frames)
    ours = transnet.build_model("cpu")
    with transnet.preserved_global_state():
        shipped = transnet.build_model("cpu", keep_global_state=False)
    rows = {"as_shipped": [], "determinism_undone": [], "ours": []}
    p_ours = p_shipped = p_undone = None
    for r in range(repeat):
        with transnet.preserved_global_state():
            torch.use_deterministic_algorithms(True, warn_only=True)  # what the constructor leaves on
            wall, cpu, (single, _) = timed(shipped.predict_frames, torch.from_numpy(frames), quiet=True)
        rows["as_shipped"].append((wall, cpu))
        p_shipped = single.numpy()
        wall, cpu, p_undone = timed(transnet.predict_frames, ours, frames, plan=False)
        rows["determinism_undone"].append((wall, cpu))
        wall, cpu, p_ours = timed(transnet.predict_frames, ours, frames)
        rows["ours"].append((wall, cpu))
        print(
            f"run {r + 1}: "
            + ", ".join(f"{k} {n / v[-1][0]:.1f} frames/s ({n / v[-1][1]:.1f} a CPU-s)" for k, v in rows.items()),
            flush=True,
        )
    out = {"frames": n, "torch_threads": torch.get_num_threads()}
    for k, v in rows.items():
        w = statistics.median(x[0] for x in v)
        c = statistics.median(x[1] for x in v)
        out[k] = {"wall_s": round(w, 2), "fps": round(n / w, 1), "cpu_s": round(c, 2), "frames_per_cpu_s": round(n / c, 1)}
    out["workers_threads"] = list(transnet.cpu_workers())
    for k in ("as_shipped", "determinism_undone"):
        out[f"ours_over_{k}_fps"] = round(out["ours"]["fps"] / out[k]["fps"], 2)
        out[f"ours_over_{k}_per_cpu_s"] = round(out["ours"]["frames_per_cpu_s"] / out[k]["frames_per_cpu_s"], 2)
    out["max_abs_diff"] = float(np.abs(p_ours - p_shipped).max())
    out["max_abs_diff_undone"] = float(np.abs(p_undone - p_shipped).max())
    out["same_boundaries"] = [b.frame for b in transnet.boundaries(p_ours, 0.5)] == [
        b.frame for b in transnet.boundaries(p_shipped, 0.5)
    ]
    return out


# -- F1 ------------------------------------------------------------------------------------------------

MODES = ("native", "transnetv2", "both")


def score(found: list[int], hard: list[int], grad: list[int]) -> tuple[int, int, int]:
    left = list(found)
    tp = 0
    for truth, tol in [(t, 1) for t in hard] + [(t, 2) for t in grad]:
        near = [b for b in left if abs(b - truth) <= tol]
        if near:
            left.remove(min(near, key=lambda b: abs(b - truth)))
            tp += 1
    return tp, len(left), len(hard) + len(grad) - tp


def f1_of(tp: int, fp: int, fn: int) -> float:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return round(2 * p * r / (p + r), 3) if p + r else 0.0


def part_f1(heldout_seeds: int) -> dict:
    from heldout_scenes import build_heldout

    media = ba.MEDIA
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "joined.mp4"
        hard, grad = ba.build_joined(joined)
        cases += [
            ("bikes.mp4", str(media / "bikes.mp4"), ba.BIKES_CUTS, [], None),
            ("joined clips", str(joined), hard, grad, None),
            ("trailer_bbb", str(media / "trailer_bbb.mp4"), ba.TRAILER_CUTS, ba.TRAILER_GRADUAL, ba.TRAILER_SCORED),
            ("Megamind_bugy", str(media / "Megamind_bugy.avi"), ba.MEGAMIND_CUTS, [], None),
        ]
        for seed in range(heldout_seeds):
            path = Path(tmp) / f"heldout_{seed}.mp4"
            truth = build_heldout(path, seed=seed, n_scenes=ba.HELDOUT_SCENES, size=ba.HELDOUT_SIZE)
            cases.append((f"held-out {seed}", str(path), truth.cuts, truth.gradual, None))
        totals = {m: {"tp": 0, "fp": 0, "fn": 0, "frames": 0, "wall_s": 0.0, "cpu_s": 0.0} for m in MODES}
        sets = {m: {"tuning": [0, 0, 0], "held-out": [0, 0, 0]} for m in MODES}
        for label, path, hard, grad, upto in cases:
            line = f"{label:14s}"
            for mode in MODES:
                wall, cpu, r = timed(analyse, path, AnalyseConfig(detector=mode, detect_text=False))
                found = [b for b in r.boundaries if upto is None or b < upto]
                tp, fp, fn = score(found, hard, grad)
                t = totals[mode]
                t["tp"] += tp
                t["fp"] += fp
                t["fn"] += fn
                t["frames"] += r.n_frames
                t["wall_s"] += wall
                t["cpu_s"] += cpu
                key = "held-out" if label.startswith("held-out") else "tuning"
                sets[mode][key] = [a + b for a, b in zip(sets[mode][key], (tp, fp, fn), strict=True)]
                line += f"  {mode} F1 {f1_of(tp, fp, fn):.3f} (fp {fp}, fn {fn})"
            print(line, flush=True)
    out = {}
    for mode in MODES:
        t = totals[mode]
        out[mode] = {
            "f1_tuning_set": f1_of(*sets[mode]["tuning"]),
            "f1_held_out": f1_of(*sets[mode]["held-out"]) if heldout_seeds else None,
            "f1_all": f1_of(t["tp"], t["fp"], t["fn"]),
            "tp_fp_fn": [t["tp"], t["fp"], t["fn"]],
            "pass_fps": round(t["frames"] / t["wall_s"], 1),
            "frames_per_cpu_s": round(t["frames"] / t["cpu_s"], 1),
        }
    return out


# -- film ----------------------------------------------------------------------------------------------


def agreement(a, b) -> dict:
    """Boundaries of result ``a`` matched in result ``b`` (cuts within 1 frame, others within 2)."""
    bs = list(b.boundaries)
    kinds = {s.end_frame: s.transition_out for s in a.shots[:-1]}
    matched = 0
    for x in a.boundaries:
        tol = 1 if kinds.get(x) == "cut" else 2
        near = [y for y in bs if abs(y - x) <= tol]
        if near:
            bs.remove(min(near, key=lambda y: abs(y - x)))
            matched += 1
    return {"boundaries": len(a.boundaries), "other": len(b.boundaries), "matched": matched}


def part_film(video: str, repeat: int) -> dict:
    native_cfg = AnalyseConfig(detect_text=False)
    text_cfg = AnalyseConfig(detect_text=True)
    runs = {"native": [], "native_text": []}
    res = {}
    for r in range(repeat):
        for key, cfg in (("native", native_cfg), ("native_text", text_cfg)):
            wall, cpu, res[key] = timed(analyse, video, cfg)
            runs[key].append((wall, cpu))
        print(
            f"run {r + 1}: native {runs['native'][-1][0]:.1f}s, with text on screen {runs['native_text'][-1][0]:.1f}s",
            flush=True,
        )
    wall, cpu, res["transnetv2"] = timed(analyse, video, AnalyseConfig(detector="transnetv2", detect_text=False))
    runs["transnetv2"] = [(wall, cpu)]
    n = res["native"].n_frames
    out: dict = {"frames": n}
    for key, v in runs.items():
        w = statistics.median(x[0] for x in v)
        c = statistics.median(x[1] for x in v)
        out[key] = {"wall_s": round(w, 2), "fps": round(n / w, 1), "cpu_s": round(c, 2), "shots": len(res[key].shots)}
    ratios = [t[0] / nat[0] for t, nat in zip(runs["native_text"], runs["native"], strict=True)]
    out["text_over_native_wall"] = round(statistics.median(ratios), 3)
    out["text_over_native_cpu"] = round(out["native_text"]["cpu_s"] / out["native"]["cpu_s"], 3)
    sig = res["native_text"].signals
    out["text_frames_read"] = int(sig.text_ms.size) if sig is not None and sig.text_ms is not None else 0
    out["text_shots"] = sum(1 for s in res["native_text"].shots if s.text_fraction)
    out["transnet_over_native_wall"] = round(out["transnetv2"]["wall_s"] / out["native"]["wall_s"], 2)
    out["native_found_by_transnetv2"] = agreement(res["native"], res["transnetv2"])
    out["transnetv2_found_by_native"] = agreement(res["transnetv2"], res["native"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="model,f1,film")
    ap.add_argument("--video", help="the film (default: the Big Buck Bunny film via get-bbb.sh)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model-frames", type=int, default=1200, help="frames of the film for the model part")
    ap.add_argument("--heldout-seeds", type=int, default=2)
    args = ap.parse_args()
    parts = set(args.part.split(","))
    video = args.video or ba.find_bbb()
    summary = {}
    if "model" in parts:
        print("== model: as shipped against ours, same frames ==", flush=True)
        summary["model"] = part_model(video, args.model_frames, args.repeat)
        print(json.dumps(summary["model"], indent=2), flush=True)
    if "f1" in parts:
        print("== F1 on the shared media and held-out scenes ==", flush=True)
        summary["f1"] = part_f1(args.heldout_seeds)
        print(json.dumps(summary["f1"], indent=2), flush=True)
    if "film" in parts:
        print(f"== film: {video} ==", flush=True)
        summary["film"] = part_film(video, args.repeat)
        print(json.dumps(summary["film"], indent=2), flush=True)


if __name__ == "__main__":
    main()
