"""Faces on thumbnails: MediaPipe's BlazeFace (ONNX Runtime) against OpenCV's Haar cascade, side by side.

Pictures, all as the analysis pass keeps them (320 pixels wide, JPEG quality 80):

* tune set (the score threshold and the input width were chosen on it): 16 scikit-image sample pictures,
  and frames one a second of two shared videos (``vtest.avi``: pedestrians, small faces;
  ``carphone_pristine.mp4`` and its distorted copy ``carphone_distorted.mp4``: one face, close);
* held-out set: frames one a second of the other shared videos and of ``examples/media``, and the shot
  thumbnails of the Big Buck Bunny film (the analysis pass's own, ``get-bbb.sh``).

For each set: faces found by each detector, how many the two agree on (boxes that overlap by IoU >= 0.3 or
hold each other's centre), and the faces only one of them finds; ``--crops DIR`` writes each disagreement as a
PNG (the picture with the box drawn) to look at. ``--sweep`` prints the tune set's counts over score
thresholds and input widths. The astronaut's face pasted onto a 320x180 picture at several sizes gives the
smallest face each detector finds (the cascade at the stage's ``face_min_px = 24`` and at 8; BlazeFace with
its 24-pixel floor and without it). ``letterbox_192``: the same counts with MediaPipe's own layout, the
thumbnail shrunk by 0.6 into 192 pixels. CPU per thumbnail of each detector on the film's thumbnails (one thread;
CPU seconds of the process, steadier than wall time on a shared machine), and per detection of
``privacy.blur_faces`` (video frames analysed 480 pixels wide).

    python bench/bench_faces.py [--crops DIR] [--sweep] [--no-film]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TUNE_VIDEOS = ("vtest.avi", "carphone_pristine.mp4", "carphone_distorted.mp4")
SKIMAGE = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
           "colorwheel", "retina", "page", "text", "brick", "grass", "gravel", "horse", "moon")
# The astronaut's face in skimage.data.astronaut() (512x512), read from the picture: x0, y0, x1, y1.
ASTRO_FACE = (180, 75, 275, 170)


def thumb(rgb: np.ndarray, width: int = 320, quality: int = 80) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(rgb[:, :, :3])
    h = max(1, round(im.height * width / im.width))
    buf = io.BytesIO()
    im.resize((width, h), Image.BILINEAR).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def video_frames(path: Path, every_s: float = 1.0) -> list[np.ndarray]:
    import av

    out, next_t = [], 0.0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            t = float(f.time or 0.0)
            if t + 1e-6 >= next_t:
                out.append(thumb(f.to_ndarray(format="rgb24")))
                next_t += every_s
    return out


def skimage_pictures() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    out = []
    for name in SKIMAGE:
        rgb = getattr(data, name)()
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.dtype != np.uint8:
            rgb = (255 * (rgb.astype(np.float64) / max(1e-9, float(rgb.max())))).astype(np.uint8)
        out.append((name, thumb(rgb)))
    return out


def film_thumbnails(cache: Path) -> list[np.ndarray]:
    from PIL import Image

    from clipfactory.media.analyse import AnalyseConfig, analyse

    cache.mkdir(parents=True, exist_ok=True)
    files = sorted(cache.glob("*.jpg"))
    if not files:
        bbb = subprocess.run(["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True)
        result = analyse(bbb.stdout.strip().splitlines()[-1], AnalyseConfig(detect_text=False))
        for s in result.shots:
            if s.thumbnail:
                (cache / f"{s.index:04d}.jpg").write_bytes(s.thumbnail)
        files = sorted(cache.glob("*.jpg"))
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def sets(film: bool, cache: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    tune = list(skimage_pictures())
    held = []
    media = sorted((SHARED / "media").iterdir()) + sorted((ROOT / "examples" / "media").glob("*.mp4"))
    for path in media:
        frames = video_frames(path)
        (tune if path.name in TUNE_VIDEOS else held).extend((f"{path.name}@{i}s", f) for i, f in enumerate(frames))
    out = {"tune": tune, "held_out_videos": held}
    if film:
        out["held_out_film"] = [(f"bbb-shot{i:03d}", t) for i, t in enumerate(film_thumbnails(cache))]
    return out


def same_face(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    iou = inter / float(aw * ah + bw * bh - inter or 1)
    acx, acy, bcx, bcy = ax + aw / 2, ay + ah / 2, bx + bw / 2, by + bh / 2
    return iou >= 0.3 or (bx <= acx <= bx + bw and by <= acy <= by + bh and ax <= bcx <= ax + aw
                          and ay <= bcy <= ay + bh)


def compare(haar: list, blaze: list) -> tuple[int, list, list]:
    """(faces both find, cascade only, BlazeFace only)."""
    left = list(blaze)
    both, only_h = 0, []
    for h in haar:
        m = next((b for b in left if same_face(h, b)), None)
        if m is None:
            only_h.append(h)
        else:
            both += 1
            left.remove(m)
    return both, only_h, left


def detectors(min_score: float = 0.5, input_width: int = 320, blaze_floor: int = 24, haar_floor: int = 24):
    from clipfactory.signals.blazeface import BlazeFaceDetector, BlazeFaceOptions
    from clipfactory.signals.faces import FaceDetector, FaceOptions

    return (FaceDetector(FaceOptions(min_face_px=haar_floor)),
            BlazeFaceDetector(BlazeFaceOptions(min_score=min_score, input_width=input_width, min_face_px=blaze_floor)))


def evaluate(pictures, haar, blaze, crops: Path | None = None, tag: str = "") -> dict:
    n = {"pictures": len(pictures), "haar_faces": 0, "blazeface_faces": 0, "both": 0, "haar_only": 0,
         "blazeface_only": 0, "pictures_with_faces_haar": 0, "pictures_with_faces_blazeface": 0}
    listed = []
    for name, rgb in pictures:
        h, b = haar.detect_rgb(rgb), blaze.detect_scored(rgb)
        both, only_h, only_b = compare(h, [x for x, _ in b])
        n["haar_faces"] += len(h)
        n["blazeface_faces"] += len(b)
        n["both"] += both
        n["haar_only"] += len(only_h)
        n["blazeface_only"] += len(only_b)
        n["pictures_with_faces_haar"] += bool(h)
        n["pictures_with_faces_blazeface"] += bool(b)
        scores = {x: s for x, s in b}
        for who, boxes in (("haar", only_h), ("blazeface", only_b)):
            for box in boxes:
                listed.append({"picture": name, "only": who, "box": list(box),
                               **({"score": round(scores[box], 3)} if who == "blazeface" else {})})
                if crops is not None:
                    _crop(crops / f"{tag}-{who}-{len(listed):03d}.png", rgb, box)
    n["disagreements"] = listed
    return n


def _crop(path: Path, rgb: np.ndarray, box) -> None:
    import cv2
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb.copy()
    x, y, w, h = box
    cv2.rectangle(img, (x, y), (x + w, y + h), (255, 0, 0), 1)
    big = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    Image.fromarray(big).save(path)


def astronaut_sizes(haar, haar_low, blaze, blaze_low) -> dict:
    """The astronaut's face at ``side`` pixels on a 320x180 picture (the rest of her photo around it)."""
    import cv2
    from skimage import data

    a = data.astronaut()
    fx0, fy0, fx1, fy1 = ASTRO_FACE
    side0 = fx1 - fx0
    rows = []
    for side in (16, 18, 20, 22, 24, 26, 28, 30, 32, 36, 40, 48, 64, 80, 100, 120):
        s = side / side0
        big = cv2.resize(a, (max(1, round(512 * s)), max(1, round(512 * s))),
                         interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        canvas = np.full((180, 320, 3), 110, np.uint8)
        # the face's centre at the picture's (200, 80)
        cx, cy = (fx0 + fx1) / 2 * s, (fy0 + fy1) / 2 * s
        ox, oy = int(round(200 - cx)), int(round(80 - cy))
        ys0, xs0 = max(0, -oy), max(0, -ox)
        yd0, xd0 = max(0, oy), max(0, ox)
        hh = min(big.shape[0] - ys0, 180 - yd0)
        ww = min(big.shape[1] - xs0, 320 - xd0)
        if hh > 0 and ww > 0:
            canvas[yd0:yd0 + hh, xd0:xd0 + ww] = big[ys0:ys0 + hh, xs0:xs0 + ww]
        pic = thumb(canvas)
        truth = (int(200 - side / 2), int(80 - side / 2), side, side)
        row = {"face_px": side}
        for key, det in (("haar_min24", haar), ("haar_min8", haar_low), ("blazeface_min24", blaze),
                         ("blazeface_no_floor", blaze_low)):
            boxes = det.detect_rgb(pic)
            hit = [b for b in boxes if same_face(b, truth)]
            row[key] = "found" if hit else "missed"
            if len(boxes) > len(hit):
                row[key] += f" (+{len(boxes) - len(hit)} elsewhere)"
        rows.append(row)
    smallest = {}
    for key in ("haar_min24", "haar_min8", "blazeface_min24", "blazeface_no_floor"):
        found = [r["face_px"] for r in rows if r[key].startswith("found")]
        smallest[key] = min(found) if found else None
    return {"sizes": rows, "smallest_found": smallest}


def cpu_per_picture(det, pictures, repeat: int = 3) -> float:
    det.detect_rgb(pictures[0][1])  # warm
    best = []
    for _ in range(repeat):
        c0 = time.process_time()
        for _, rgb in pictures:
            det.detect_rgb(rgb)
        best.append((time.process_time() - c0) / len(pictures))
    return round(sorted(best)[len(best) // 2] * 1000, 2)


def blur_cpu(min_score: float, repeat: int = 3) -> dict:
    """CPU per detection of ``privacy.blur_faces`` (frames at their own size, analysed 480 pixels wide):
    every tenth frame of ``Megamind_bugy.avi`` (720x528), at most 40."""
    import av

    from clipfactory.signals.faces import make_detector

    frames = []
    with av.open(str(SHARED / "media" / "Megamind_bugy.avi")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 10 == 0:
                frames.append((str(i), f.to_ndarray(format="rgb24")))
            if len(frames) >= 40:
                break
    out = {"frames": len(frames), "frame_size": list(frames[0][1].shape[1::-1])}
    for kind in ("haar", "blazeface"):
        det = make_detector(kind, min_score=min_score, width=480)
        out[f"{kind}_ms"] = cpu_per_picture(det, frames, repeat)
        out[f"{kind}_faces"] = sum(len(det.detect_rgb(f)) for _, f in frames)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=Path, help="write each disagreement as a PNG here")
    ap.add_argument("--sweep", action="store_true", help="tune set over score thresholds and input widths")
    ap.add_argument("--no-film", action="store_true", help="leave out the film's thumbnails")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "clipfactory" / "bench-faces-bbb",
                    help="where the film's thumbnails are kept between runs")
    ap.add_argument("--min-score", type=float, default=None, help="default: the stage's")
    ap.add_argument("--input-width", type=int, default=None, help="default: the stage's")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import cv2

    from clipfactory.signals.blazeface import BlazeFaceOptions

    cv2.setNumThreads(1)
    d = BlazeFaceOptions()
    min_score = d.min_score if args.min_score is None else args.min_score
    width = d.input_width if args.input_width is None else args.input_width
    data = sets(not args.no_film, args.cache)
    report: dict = {"blazeface": {"min_score": min_score, "input_width": width},
                    "pictures": {k: len(v) for k, v in data.items()}}
    if args.sweep:
        sweep = []
        for w in (256, 320):
            for s in (0.3, 0.4, 0.5, 0.6, 0.7):
                haar, blaze = detectors(s, w)
                r = evaluate(data["tune"], haar, blaze)
                sweep.append({"input_width": w, "min_score": s,
                              **{k: v for k, v in r.items() if k != "disagreements"}})
        report["tune_sweep"] = sweep
    haar, blaze = detectors(min_score, width)
    for name, pictures in data.items():
        report[name] = evaluate(pictures, haar, blaze, args.crops, name)
    # MediaPipe's own layout: the thumbnail letterboxed into 192x192, faces shrunk by 0.6 (its floor scaled
    # with it, so that it is still 24 pixels of the thumbnail).
    lb_haar, lb = detectors(min_score, 192, blaze_floor=round(24 * 192 / 320))
    _, lb0 = detectors(min_score, 192, blaze_floor=0)
    report["letterbox_192"] = {
        name: {k: v for k, v in evaluate(pictures, lb_haar, lb).items() if k != "disagreements"}
        for name, pictures in data.items() if name != "tune"
    }
    report["letterbox_192"]["astronaut_smallest_found"] = astronaut_sizes(lb_haar, lb_haar, lb, lb0)["smallest_found"]
    haar8, blaze0 = detectors(min_score, width, blaze_floor=0, haar_floor=8)
    report["astronaut_on_320x180"] = astronaut_sizes(haar, haar8, blaze, blaze0)
    timing = data.get("held_out_film") or data["held_out_videos"]
    report["cpu_ms_per_thumbnail"] = {"pictures": len(timing), "haar": cpu_per_picture(haar, timing),
                                      "blazeface": cpu_per_picture(blaze, timing)}
    for w in (256, 320):
        if w != width:
            _, other = detectors(min_score, w)
            report["cpu_ms_per_thumbnail"][f"blazeface_input_width_{w}"] = cpu_per_picture(other, timing)
    report["blur_faces_cpu_per_detection"] = blur_cpu(min_score)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
