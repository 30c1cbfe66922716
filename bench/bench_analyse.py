"""Benchmark the analysis pass against its physical limit and its peer.

Baselines, run interleaved in one process on the same file:

* PyAV decode-only loop (same threading settings): the physical limit; also with the decoder option the
  pass uses by default (``skip_loop_filter``), and of the reference frames only (``skip_frame=NONREF``, the
  two-level pass's floor).
* PySceneDetect ``detect(path, ContentDetector())`` with its default backend: the peer.

Both ways of our pass are timed: the default two-level pass (``skip_nonref = "auto"``: on H.264/HEVC with
B-frames, reference frames and the frames PDQ hashes, then every frame of short spans), and the pass over
every frame (``skip_nonref = false``). Targets: the default pass / decode-only with the same decoder options
<= 0.9 on the film; at 640x360 (``--small 45``) <= 1.2 of a plain decode-only pass; PySceneDetect / analysis
>= 2 on the film.

Also reports the peak RSS of one analysis pass (in a fresh subprocess), and shot-boundary F1 of ours
and of PySceneDetect, in two parts:

* the tuning set, the files the detector's thresholds were tuned on: ``bikes.mp4`` (5 known hard cuts),
  a clip joined from real segments at recorded frames (hard joins and cross-fades), the annotated
  ``trailer_bbb.mp4`` and ``Megamind_bugy.avi``;
* the held-out set, which the tuning never saw: generated scenes joined at known frames
  (``tests/media/heldout_scenes.py``: pans, zooms, shake, fast objects, flashes, changing light,
  low-key pictures; hard cuts, jump cuts, cross-fades of 6-24 frames, fades through black), and, when
  the Big Buck Bunny film is at hand, segments of the film joined at known frames.

    python bench/bench_analyse.py [--video PATH] [--repeat 3] [--skip-peer] [--timing-only]
    python bench/bench_analyse.py --small 45 --timing-only   # the film's first 45 s at 640x360
    python bench/bench_analyse.py --f1-only        # both F1 parts, no timing
    python bench/bench_analyse.py --heldout-only   # the held-out part only
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MEDIA = SHARED / "media"
sys.path.insert(0, str(ROOT / "tests" / "media"))

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


# Text on screen in the timed passes: off unless --text (OCR's share of the pass is measured in
# bench_transnet.py); the F1 parts never read text, which does not move a boundary.
TEXT: list[bool | str] = [False]


def ours(path: str, skip_nonref: bool | str = False, detect_text: bool | str | None = None):
    """Our pass with its default settings except ``skip_nonref`` (false: every frame; auto, the default:
    the two-level pass on H.264/HEVC with B-frames)."""
    from clipfactory.media.analyse import AnalyseConfig, analyse

    text = TEXT[0] if detect_text is None else detect_text
    return analyse(path, AnalyseConfig(skip_nonref=skip_nonref, detect_text=text))


def ours_two_level(path: str):
    return ours(path, "auto")


def decode_only_nonref(path: str) -> int:
    """Decode-only of the reference frames (``skip_frame=NONREF``, ``skip_loop_filter``): the two-level
    pass's floor."""
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.codec_context.options = {"skip_loop_filter": "all"}
        s.codec_context.skip_frame = "NONREF"
        for _ in c.decode(s):
            n += 1
    return n


# Our detector in its two ways beside the peer, in F1 tables: every frame, and the default (two-level) pass.
F1_MODES = {"ours every frame": False, "ours default": "auto"}


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
    from heldout_scenes import encode

    encode(dest, frames, JOIN_FPS)
    return hard, grad


def peer_boundaries(path: str) -> list[int]:
    return [s[0].frame_num for s in peer(path)[1:]]


def score_both(path: str, hard: list[int], grad: list[int], upto: int | None = None) -> dict:
    founds = [(name, ours(path, mode, False).boundaries) for name, mode in F1_MODES.items()]
    founds.append(("pyscenedetect", peer_boundaries(path)))
    if upto is not None:
        founds = [(name, [b for b in found if b < upto]) for name, found in founds]
    res = {}
    for name, found in founds:
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
    ap.add_argument("--heldout-only", action="store_true", help="only measure F1 on the held-out set")
    ap.add_argument("--heldout-seeds", type=int, default=HELDOUT_SEEDS, help="generated held-out videos")
    ap.add_argument("--timing-only", action="store_true", help="no F1 part")
    ap.add_argument(
        "--text", action="store_true", help="read text on screen in the timed passes (detect_text=auto)"
    )
    ap.add_argument(
        "--small",
        type=float,
        metavar="SECONDS",
        help="time the first SECONDS of the video re-encoded at 640x360 instead (no F1 part)",
    )
    args = ap.parse_args()
    if args.text:
        TEXT[0] = "auto"
    if args.heldout_only:
        report_heldout(args.heldout_seeds)
        return
    if args.f1_only:
        report_f1()
        report_heldout(args.heldout_seeds)
        return
    video = args.video or find_bbb()
    with tempfile.TemporaryDirectory() as tmp:
        if args.small:
            small = Path(tmp) / "small.mp4"
            make_small(video, small, args.small)
            video = str(small)
        time_video(video, args.repeat, args.skip_peer)
    if not args.small and not args.timing_only:
        report_f1()
        report_heldout(args.heldout_seeds)


SMALL_W, SMALL_H = 640, 360


def make_small(src: str, dest: Path, seconds: float) -> None:
    """The first ``seconds`` of ``src`` at 640x360 (H.264 with B-frames, x264's veryfast preset, crf 23)."""
    with av.open(src) as c, av.open(str(dest), "w") as out:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        rate = s.average_rate
        o = out.add_stream("libx264", rate=rate)
        o.width, o.height, o.pix_fmt = SMALL_W, SMALL_H, "yuv420p"
        o.options = {"crf": "23", "preset": "veryfast"}
        o.thread_type = "AUTO"
        n_max = int(seconds * float(rate))
        for i, f in enumerate(c.decode(s)):
            if i >= n_max:
                break
            g = f.reformat(width=SMALL_W, height=SMALL_H, format="yuv420p")
            g.pts = i
            g.time_base = 1 / rate
            for pkt in o.encode(g):
                out.mux(pkt)
        for pkt in o.encode():
            out.mux(pkt)


def agreement(found: list[int], full: list[int]) -> str:
    """How the two-level pass's boundaries match the full pass's (within 2 frames)."""
    left = list(full)
    same = near = 0
    for b in found:
        if b in left:
            left.remove(b)
            same += 1
            continue
        close = [t for t in left if abs(t - b) <= 2]
        if close:
            left.remove(min(close, key=lambda t: abs(t - b)))
            near += 1
    extra = len(found) - same - near
    return (
        f"{same} on the same frame, {near} within 2 frames, {len(left)} only in the full pass, "
        f"{extra} only in the two-level pass (F1 against the full pass "
        f"{2 * (same + near) / (len(found) + len(full)) if found or full else 1.0:.3f})"
    )


def time_video(video: str, repeat: int, skip_peer: bool) -> None:
    """Decode-only baselines, both ways of our pass and the peer, interleaved, ``repeat`` times."""
    print(f"video: {video}")
    with av.open(video) as c:
        s = c.streams.video[0]
        print(
            f"  {s.codec_context.name} {s.width}x{s.height}, {float(s.average_rate):.3f} fps, {s.frames} frames"
        )
    runs = [
        ("decode-only", decode_only, ()),
        ("decode-only skip_loop_filter", decode_only, (True,)),
        ("decode-only reference frames", decode_only_nonref, ()),
        ("analysis, every frame", ours, ()),
        ("analysis, two-level (default)", ours_two_level, ()),
    ]
    if not skip_peer:
        runs.append(("pyscenedetect", peer, ()))
    wall: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    out: dict[str, object] = {}
    CPU.clear()
    keys = {}
    for r in range(repeat):
        parts = []
        for name, fn, extra in runs:
            t, res = timed(fn, video, *extra)
            wall[name].append(t)
            out[name] = res
            keys[name] = fn.__name__ + ("_skip_loop_filter" if extra == (True,) else "")
            parts.append(f"{name} {t:.2f}s")
        print(f"run {r + 1}: " + "  ".join(parts), flush=True)
    cpu = {name: statistics.median(CPU[keys[name]]) for name in wall}
    med = {name: statistics.median(v) for name, v in wall.items()}

    def ratio(a: str, b: str) -> tuple[float, float]:
        w = statistics.median([x / y for x, y in zip(wall[a], wall[b], strict=True)])
        return round(w, 3), round(cpu[a] / cpu[b], 3)

    print("| measure | wall, median (s) | CPU, median (s) |")
    print("|---|---|---|")
    for name in wall:
        print(f"| {name} | {med[name]:.2f} | {cpu[name]:.2f} |")
    print("| ratio | wall | CPU |")
    print("|---|---|---|")
    pairs = [
        ("analysis, every frame", "decode-only"),
        ("analysis, two-level (default)", "decode-only"),
        ("analysis, every frame", "decode-only skip_loop_filter"),
        ("analysis, two-level (default)", "decode-only skip_loop_filter"),
        ("decode-only reference frames", "decode-only skip_loop_filter"),
    ]
    if not skip_peer:
        pairs += [
            ("pyscenedetect", "analysis, every frame"),
            ("pyscenedetect", "analysis, two-level (default)"),
        ]
    for a, b in pairs:
        w, c = ratio(a, b)
        print(f"| {a} / {b} | {w:.3f} | {c:.3f} |")
    full, two = out["analysis, every frame"], out["analysis, two-level (default)"]
    print(
        f"shots: every frame {len(full.shots)}, two-level {len(two.shots)}; PDQ hashes {len(full.pdq)}, {len(two.pdq)}"
    )
    print("two-level against every frame: " + agreement(two.boundaries, full.boundaries))
    print(f"peak RSS of one default pass: {peak_rss_mb(video):.1f} MB")


def report_f1() -> None:
    print("== tuning set (the files the thresholds were tuned on) ==")
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
                    f"F1 {label:13s} {name:16s} {r['f1']:.3f}  tp={r['tp']} fp={r['fp']} fn={r['fn']}  {r['found']}"
                )


# -- held-out set -------------------------------------------------------------------------------------

HELDOUT_SEEDS = 10
HELDOUT_SCENES = 12
HELDOUT_SIZE = (320, 180)


# Segments (first frame, frames) of the Big Buck Bunny film: the middle 60 frames of each shot of at least
# 130 frames between frame 300 and frame 11765 by PySceneDetect's ContentDetector (defaults), so at least
# 35 frames from any boundary it finds; the opening titles and the end are left out. None of the tuning
# files' joins is here; the trailer was cut from the same film, so some of this footage is in it.
FILM_SEGMENTS = [
    (435, 60), (819, 60), (1215, 60), (1568, 60), (2006, 60), (2264, 60), (2569, 60), (3249, 60),
    (3631, 60), (4118, 60), (4367, 60), (5181, 60), (5664, 60), (5901, 60), (6525, 60), (6893, 60),
    (7831, 60), (8501, 60), (9233, 60), (9617, 60), (10728, 60), (10903, 60), (11125, 60), (11406, 60),
]  # fmt: skip
# Joined in this order, so that neighbours come from distant parts of the film.
FILM_ORDER = [0, 12, 6, 18, 3, 15, 9, 21, 1, 13, 7, 19, 4, 16, 10, 22, 2, 14, 8, 20, 5, 17, 11, 23]
FILM_FPS = 24
FILM_DRAWS = 3  # joined videos: the segments in rotated orders, each with its own draw of transitions


def film_segments(path: str, size: tuple[int, int] = HELDOUT_SIZE) -> list[list[np.ndarray]]:
    """The frames of :data:`FILM_SEGMENTS` in ``path``, as RGB at ``size``, each segment read after a seek."""
    out = []
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        tb, rate = float(s.time_base), float(s.average_rate)
        t0 = s.start_time or 0
        for start, count in FILM_SEGMENTS:
            c.seek(int(max(0.0, start / rate - 2.0) / tb) + t0, stream=s, backward=True)
            seg = []
            for f in c.decode(s):
                idx = int(round((f.pts - t0) * tb * rate))
                if idx < start:
                    continue
                seg.append(f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
                if len(seg) == count:
                    break
            out.append(seg)
    return out


def report_heldout(n_seeds: int = HELDOUT_SEEDS) -> None:
    """F1 on the held-out set, per detector, with the share found per kind of join and the false alarms per
    kind of scene (or film segment) they fall in."""
    from heldout_scenes import build_heldout, encode, join_segments

    print("== held-out set (never used for tuning) ==")
    tally = _Tally()
    n_frames = n_joins = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n_seeds):
            path = Path(tmp) / f"heldout_{seed}.mp4"
            truth = build_heldout(path, seed=seed, n_scenes=HELDOUT_SCENES, size=HELDOUT_SIZE)
            n_frames += truth.n_frames
            n_joins += len(truth.labels)
            tally.add(truth, str(path))
    print(
        f"generated: {n_seeds} videos, {n_frames} frames, {n_joins} joins "
        f"({HELDOUT_SIZE[0]}x{HELDOUT_SIZE[1]}, 25 fps, H.264 crf 20)"
    )
    tally.report("held-out generated")

    try:
        film = find_bbb()
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"held-out film joins skipped: the Big Buck Bunny film is not at hand ({exc})")
        return
    segments = film_segments(film)
    tally = _Tally()
    n_frames = n_joins = 0
    with tempfile.TemporaryDirectory() as tmp:
        for draw in range(FILM_DRAWS):
            order = FILM_ORDER[8 * draw :] + FILM_ORDER[: 8 * draw]
            labels = [f"film@{FILM_SEGMENTS[i][0]}" for i in order]
            frames, truth = join_segments([segments[i] for i in order], seed=draw, labels=labels)
            path = Path(tmp) / f"film_{draw}.mp4"
            encode(path, frames, FILM_FPS)
            del frames
            n_frames += truth.n_frames
            n_joins += len(truth.labels)
            tally.add(truth, str(path))
    print(
        f"film joins: {FILM_DRAWS} videos of the {len(FILM_SEGMENTS)} film segments, {n_frames} frames, "
        f"{n_joins} joins ({HELDOUT_SIZE[0]}x{HELDOUT_SIZE[1]}, {FILM_FPS} fps, H.264 crf 20)"
    )
    tally.report("held-out film joins")


class _Tally:
    """Hits, false alarms and misses of each detector over several held-out videos."""

    def __init__(self) -> None:
        self.totals: dict[str, list[int]] = {}
        self.by_join: dict[str, dict[str, list[int]]] = {}
        self.false_in: dict[str, dict[str, int]] = {}

    def add(self, truth, path: str) -> None:
        from heldout_scenes import match

        founds = [(name, ours(path, mode, False).boundaries) for name, mode in F1_MODES.items()]
        for name, found in founds + [("pyscenedetect", peer_boundaries(path))]:
            hits, misses, extra = match(found, truth)
            t = self.totals.setdefault(name, [0, 0, 0])
            t[0] += len(hits)
            t[1] += len(extra)
            t[2] += len(misses)
            for frame, ok in [(h, 1) for h in hits] + [(m, 0) for m in misses]:
                c = self.by_join.setdefault(name, {}).setdefault(truth.labels[frame], [0, 0])
                c[0] += ok
                c[1] += 1
            for b in extra:
                where = self.false_in.setdefault(name, {})
                where[truth.scene_at(b)] = where.get(truth.scene_at(b), 0) + 1

    def report(self, label: str) -> None:
        from heldout_scenes import f1

        for name, (tp, fp, fn) in self.totals.items():
            found = {k: f"{v[0]}/{v[1]}" for k, v in sorted(self.by_join[name].items())}
            print(
                f"F1 {label:20s} {name:16s} {f1(tp, fp, fn):.3f}  tp={tp} fp={fp} fn={fn}  "
                f"found per join kind {found}  false alarms in {dict(sorted(self.false_in.get(name, {}).items()))}"
            )


if __name__ == "__main__":
    main()
