"""Benchmark the analysis pass against its physical limit and its peer.

Baselines, run interleaved in one process on the same file:

* PyAV decode-only loop (same threading settings): the physical limit. Target: analysis / decode <= 1.3.
  Also timed with the decoder option the pass uses by default (``skip_loop_filter``), so that the
  pass's own overhead is visible.
* PySceneDetect ``detect(path, ContentDetector())`` with its default backend: the peer.
  Target: scenedetect / analysis >= 1.5.

Also reports the peak RSS of one analysis pass (in a fresh subprocess), and shot-boundary F1 of ours
and of PySceneDetect on ``bikes.mp4`` (5 known hard cuts) and on a clip joined from real segments at
recorded frames (hard joins and cross-fades).

    python bench/bench_analyse.py [--video PATH] [--repeat 3] [--skip-peer]
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
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MEDIA = SHARED / "media"

BIKES_CUTS = [30, 76, 137, 187, 242]
# trailer_bbb.mp4, annotated by eye from the frames: hard cuts, and the darkest frame of each fade
# or dip to a dark title card. Only frames before TRAILER_SCORED are scored: after it the last
# shot fades to a black end card, where any frame of the fade is a defensible boundary.
TRAILER_CUTS = [593, 864, 900, 988, 1049]
TRAILER_GRADUAL = [240, 336, 768, 1134]
TRAILER_SCORED = 1200
# Megamind_bugy.avi: three hard cuts; frames 40, 75, 95 and 100 are one-frame glitches (an overlaid
# rectangle, a mirrored frame), which are not boundaries.
MEGAMIND_CUTS = [98, 154, 200]


def find_bbb() -> str:
    out = subprocess.run(
        ["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return out.strip().splitlines()[-1]


def decode_only(path: str, skip_loop_filter: bool = False) -> int:
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        if skip_loop_filter:
            s.codec_context.options = {"skip_loop_filter": "all"}
        for _ in c.decode(s):
            n += 1
    return n


def ours(path: str):
    from clipfactory.media.analyse import analyse

    return analyse(path)


def peer(path: str):
    from scenedetect import ContentDetector, detect

    return detect(path, ContentDetector())


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CPU: dict[str, list[float]] = {}


def timed(fn, *a):
    """Wall time of ``fn(*a)``; its CPU time (all threads of this process) goes to ``CPU[fn name]``."""
    c = _cpu()
    t = time.perf_counter()
    out = fn(*a)
    wall = time.perf_counter() - t
    key = fn.__name__ + ("_skip_loop_filter" if a[1:] == (True,) else "")
    CPU.setdefault(key, []).append(_cpu() - c)
    return wall, out


def peak_rss_mb(path: str) -> float:
    code = (
        "import resource,sys;from clipfactory.media.analyse import analyse;analyse(sys.argv[1]);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def f1(found: list[int], truth: list[int], tol: int) -> tuple[float, int, int, int]:
    truth_left = list(truth)
    tp = 0
    for b in sorted(found):
        near = [t for t in truth_left if abs(t - b) <= tol]
        if near:
            truth_left.remove(min(near, key=lambda t: abs(t - b)))
            tp += 1
    fp, fn = len(found) - tp, len(truth) - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return (2 * p * r / (p + r) if p + r else 0.0), tp, fp, fn


# -- joined clip with known boundaries --------------------------------------------------------------

JOIN_W, JOIN_H, JOIN_FPS = 640, 360, 25


def _frames(path: Path, skip: int, count: int):
    """``count`` RGB frames of ``path`` after skipping ``skip``, resized to the join size."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i < skip:
                continue
            out.append(f.reformat(width=JOIN_W, height=JOIN_H, format="rgb24").to_ndarray())
            if len(out) >= count:
                break
    return out


def build_joined(dest: Path) -> tuple[list[int], list[int]]:
    """Write a clip of real segments joined by hard cuts and cross-fades.

    Returns (hard cut frames, gradual transition centre frames): the first frame of each new shot.
    """
    plan = [
        ("bbb_5s.mp4", 0, 60, None),
        ("box.mp4", 40, 70, "cut"),
        ("cup.mp4", 10, 60, "dissolve"),
        ("carphone_pristine.mp4", 0, 60, "cut"),
        ("vtest.avi", 100, 50, "cut"),
        ("bikes.mp4", 80, 50, "dissolve"),
        ("bbb_5s.mp4", 70, 60, "cut"),
        ("box.mp4", 200, 60, "fade"),
        ("cup.mp4", 120, 60, "cut"),
    ]
    xfade = 12
    frames: list[np.ndarray] = []
    hard: list[int] = []
    grad: list[int] = []
    for name, skip, count, how in plan:
        seg = _frames(MEDIA / name, skip, count)
        if how == "cut":
            hard.append(len(frames))
            frames.extend(seg)
        elif how == "dissolve":
            start = len(frames) - xfade
            for k in range(xfade):
                a = (k + 1) / (xfade + 1)
                frames[start + k] = (frames[start + k] * (1 - a) + seg[k] * a).astype(np.uint8)
            grad.append(start + xfade // 2)
            frames.extend(seg[xfade:])
        elif how == "fade":
            # fade out to black over xfade frames, then fade in over xfade frames
            start = len(frames) - xfade
            for k in range(xfade):
                a = 1 - (k + 1) / (xfade + 1)
                frames[start + k] = (frames[start + k] * a).astype(np.uint8)
            for k in range(xfade):
                a = (k + 1) / (xfade + 1)
                seg[k] = (seg[k] * a).astype(np.uint8)
            grad.append(len(frames))
            frames.extend(seg)
        else:
            frames.extend(seg)
    with av.open(str(dest), "w") as out:
        s = out.add_stream("libx264", rate=JOIN_FPS)
        s.width, s.height, s.pix_fmt = JOIN_W, JOIN_H, "yuv420p"
        s.options = {"crf": "20", "preset": "veryfast"}
        s.time_base = Fraction(1, JOIN_FPS)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return hard, grad


def peer_boundaries(path: str) -> list[int]:
    return [s[0].frame_num for s in peer(path)[1:]]


def score_both(path: str, hard: list[int], grad: list[int], upto: int | None = None) -> dict:
    ours_b = ours(path).boundaries
    peer_b = peer_boundaries(path)
    if upto is not None:
        ours_b = [b for b in ours_b if b < upto]
        peer_b = [b for b in peer_b if b < upto]
    res = {}
    for name, found in (("ours", ours_b), ("pyscenedetect", peer_b)):
        # Hard cuts must land within 1 frame, gradual transitions within 2 frames of their centre
        # (for a 12-frame cross-fade, any frame of the blend's middle third is accepted).
        left = list(found)
        tp = 0
        for truth, tol in [(t, 1) for t in hard] + [(t, 2) for t in grad]:
            near = [b for b in left if abs(b - truth) <= tol]
            if near:
                left.remove(min(near, key=lambda b: abs(b - truth)))
                tp += 1
        fp, fn = len(left), len(hard) + len(grad) - tp
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        res[name] = {
            "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "found": found,
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", help="video to time (default: the Big Buck Bunny film via get-bbb.sh)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-peer", action="store_true", help="do not time PySceneDetect")
    ap.add_argument("--f1-only", action="store_true", help="only measure shot-boundary F1")
    args = ap.parse_args()
    if args.f1_only:
        report_f1()
        return
    video = args.video or find_bbb()
    print(f"video: {video}")

    dec, declf, ana, pee = [], [], [], []
    result = None
    for r in range(args.repeat):
        t_dec, n = timed(decode_only, video)
        t_declf, _ = timed(decode_only, video, True)
        t_ana, result = timed(ours, video)
        dec.append(t_dec)
        declf.append(t_declf)
        ana.append(t_ana)
        line = (
            f"run {r + 1}: decode-only {t_dec:.2f}s ({n} frames)  decode-only skip_loop_filter "
            f"{t_declf:.2f}s  analysis {t_ana:.2f}s"
        )
        if not args.skip_peer:
            t_peer, _ = timed(peer, video)
            pee.append(t_peer)
            line += f"  pyscenedetect {t_peer:.2f}s"
        line += f"  ratio analysis/decode {t_ana / t_dec:.3f}"
        print(line, flush=True)
    md, ma = statistics.median(dec), statistics.median(ana)
    ratios = [a / d for a, d in zip(ana, dec, strict=True)]
    summary = {
        "decode_s": round(md, 2),
        "analysis_s": round(ma, 2),
        "analysis_over_decode_median": round(statistics.median(ratios), 3),
        "decode_skip_loop_filter_s": round(statistics.median(declf), 2),
        "analysis_over_same_options_decode_median": round(
            statistics.median([a / d for a, d in zip(ana, declf, strict=True)]), 3
        ),
        "shots": len(result.shots),
        "pdq_hashes": len(result.pdq),
    }
    if pee:
        mp = statistics.median(pee)
        summary["pyscenedetect_s"] = round(mp, 2)
        summary["pyscenedetect_over_analysis_median"] = round(
            statistics.median([p / a for p, a in zip(pee, ana, strict=True)]), 3
        )
    # CPU seconds (all threads) are steadier than wall time when other processes share the machine.
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    summary["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    summary["cpu_analysis_over_decode"] = round(cpu["ours"] / cpu["decode_only"], 3)
    summary["cpu_analysis_over_same_options_decode"] = round(
        cpu["ours"] / cpu["decode_only_skip_loop_filter"], 3
    )
    if "peer" in cpu:
        summary["cpu_pyscenedetect_over_analysis"] = round(cpu["peer"] / cpu["ours"], 3)
    summary["peak_rss_mb"] = round(peak_rss_mb(video), 1)
    print(json.dumps(summary, indent=2))

    report_f1()


def report_f1() -> None:
    if MEDIA.exists():
        bikes = score_both(str(MEDIA / "bikes.mp4"), BIKES_CUTS, [])
        with tempfile.TemporaryDirectory() as tmp:
            joined = Path(tmp) / "joined.mp4"
            hard, grad = build_joined(joined)
            print(f"joined clip: hard cuts {hard}, gradual {grad}")
            jres = score_both(str(joined), hard, grad)
        trailer = score_both(
            str(MEDIA / "trailer_bbb.mp4"), TRAILER_CUTS, TRAILER_GRADUAL, upto=TRAILER_SCORED
        )
        mega = score_both(str(MEDIA / "Megamind_bugy.avi"), MEGAMIND_CUTS, [])
        sets = (
            ("bikes.mp4", bikes),
            ("joined clips", jres),
            ("trailer_bbb", trailer),
            ("Megamind_bugy", mega),
        )
        for label, res in sets:
            for name, r in res.items():
                print(
                    f"F1 {label:13s} {name:14s} {r['f1']:.3f}  tp={r['tp']} fp={r['fp']} fn={r['fn']}  {r['found']}"
                )


if __name__ == "__main__":
    main()
