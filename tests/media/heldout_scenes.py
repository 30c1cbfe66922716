"""A held-out shot set: generated scenes joined at known frames, for scoring the shot detector.

The detector's thresholds were tuned on the real files of ``bench/bench_analyse.py``; these scenes share
nothing with them. Each scene is a camera over a generated picture with natural-image statistics (a
1/f-like colour noise field) that moves the way footage does: pans, zooms, hand-held shake with jolts,
fast objects crossing the frame, one-frame flashes, lighting that swells and dims, low-key pictures.
Scenes are joined by hard cuts (some between two views of the same picture, as a jump cut), cross-fades
of 6 to 24 frames and fades through black; the ground truth is written as the video is built.

    truth = build_heldout(path, seed=3, n_scenes=12)
    f, tp, fp, fn = score(found_boundaries, truth)

A boundary is the first frame of the next shot. For a cross-fade of ``L`` frames (blend weights
``(k + 1) / (L + 1)``) it is the first frame weighted past one half; for a fade through a black hold it
is the middle of the hold (the first fade-in frame when there is no hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

KINDS = ("pan", "zoom", "objects", "shake", "flash", "light", "dark")
# Tolerances of the match: hard cuts within 1 frame, gradual transitions within 2 frames of the truth.
CUT_TOL, GRADUAL_TOL = 1, 2


@dataclass
class Truth:
    cuts: list[int] = field(default_factory=list)
    gradual: list[int] = field(default_factory=list)
    n_frames: int = 0
    # What the scenes hold: (first frame, kind) of each scene, and the frames of one-frame flashes.
    scenes: list[tuple[int, str]] = field(default_factory=list)
    flashes: list[int] = field(default_factory=list)
    # How each boundary was made: "cut", "jump" (a cut within one picture), "dissolve" or "fade".
    labels: dict[int, str] = field(default_factory=dict)

    def scene_at(self, frame: int) -> str:
        """The kind of scene that frame ``frame`` belongs to."""
        return [k for f, k in self.scenes if f <= frame][-1] if self.scenes else ""


def _noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth noise whose spectrum falls off as in natural images: octaves of upsampled random grids,
    the amplitude shrinking by about half an octave. Zero mean, unit deviation."""
    out = np.zeros((h, w), np.float32)
    amp, cells = 1.0, int(rng.integers(2, 5))
    while cells < max(h, w) // 2:
        small = rng.standard_normal((max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))))
        out += amp * np.asarray(
            Image.fromarray(small.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC)
        )
        amp *= 0.55
        cells *= 2
    return (out - out.mean()) / (out.std() + 1e-6)


def _field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An RGB picture with natural-image statistics: a "dead leaves" layer of overlapping discs and boxes
    of power-law sizes and random colours (hard edges, as objects have), shaded by 1/f noise."""
    palette = rng.uniform(20, 235, (6, 3)) * rng.uniform(0.5, 1.0) + rng.uniform(0, 40)
    img = np.empty((h, w, 3), np.float32)
    img[:] = palette[0]
    area = 0.0
    while area < 3.0 * h * w:
        r = min(max(h, w) / 3, 4.0 * (1 - rng.random()) ** -0.8)  # sizes from 4 px up, power-law
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        y0, y1 = int(max(0, cy - r)), int(min(h, cy + r + 1))
        x0, x1 = int(max(0, cx - r)), int(min(w, cx + r + 1))
        area += (2 * r) ** 2
        if y1 <= y0 or x1 <= x0:
            continue
        col = palette[rng.integers(0, 6)] + rng.normal(0, 20, 3)
        if rng.random() < 0.5:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[y0:y1, x0:x1][mask] = col
        else:
            img[y0:y1, x0:x1] = col
    shade = _noise(rng, h, w)
    return img * (1 + 0.25 * shade[:, :, None]) + 12 * _noise(rng, h, w)[:, :, None]


class _Scene:
    """One scene: a view of a generated picture, moving as its kind says. ``frame(k)`` is its k-th frame.
    Flashes and jolts fall in frames ``[lo, hi)``, away from the transitions."""

    def __init__(
        self,
        kind: str,
        rng: np.random.Generator,
        w: int,
        h: int,
        n: int,
        lo: int,
        hi: int,
        canvas: np.ndarray | None = None,
    ):
        self.kind, self.w, self.h, self.n = kind, w, h, n
        speed = 0.6 if kind == "zoom" else rng.uniform(0.3, 3.0)
        ang = rng.uniform(0, 2 * np.pi)
        self.v = (speed * np.cos(ang), speed * np.sin(ang))
        pad = int((abs(self.v[0]) + abs(self.v[1])) * n) + 40
        if canvas is None:
            canvas = _field(rng, h + 2 * pad, w + 2 * pad)
            if kind == "dark":  # low-key, not black: mean luma 30 to 45
                canvas = canvas * (rng.uniform(30, 45) / canvas.mean())
        self.canvas = canvas
        ch, cw = canvas.shape[:2]
        # Start where the whole motion stays on the picture.
        self.origin = (
            float(np.clip((ch - h) / 2 - self.v[1] * n / 2, 0, ch - h)),
            float(np.clip((cw - w) / 2 - self.v[0] * n / 2, 0, cw - w)),
        )
        self.zoom = rng.uniform(-0.004, 0.006) if kind == "zoom" else 0.0
        self.jitter = np.zeros((n, 2))
        if kind == "shake":  # a hand-held camera: a mean-reverting wobble, and a few jolts
            for k in range(1, n):
                self.jitter[k] = 0.85 * self.jitter[k - 1] + rng.normal(0, 1.8, 2)
            for j in rng.choice(np.arange(lo, max(lo + 1, hi)), size=max(1, n // 30)):
                self.jitter[j:] += rng.uniform(-9, 9, 2)
            self.jitter = np.clip(self.jitter, -30, 30)
        self.objects = []
        if kind == "objects":  # things crossing the frame fast
            for _ in range(int(rng.integers(2, 5))):
                r = rng.uniform(0.08, 0.2) * h
                self.objects.append(
                    (
                        rng.uniform(0, w),
                        rng.uniform(0, h),
                        rng.uniform(-8, 8),
                        rng.uniform(-4, 4),
                        r,
                        rng.uniform(20, 235, 3),
                    )
                )
        self.flashes: list[int] = []
        if kind == "flash" and hi - lo > 4:
            self.flashes = sorted(
                int(j) for j in rng.choice(np.arange(lo, hi), size=1 + n // 60, replace=False)
            )
        # Lighting that swells and dims (down to half), over 30 to 70 frames.
        self.light = (
            (rng.uniform(0.1, 0.25), rng.uniform(30, 70), rng.uniform(0, 6.3)) if kind == "light" else None
        )
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def position(self, k: int) -> tuple[float, float]:
        """Top-left corner (y, x) of the view in frame ``k``."""
        return (
            self.origin[0] + self.v[1] * k + self.jitter[min(k, self.n - 1), 1],
            self.origin[1] + self.v[0] * k + self.jitter[min(k, self.n - 1), 0],
        )

    def frame(self, k: int) -> np.ndarray:
        oy, ox = self.position(k)
        ch, cw = self.canvas.shape[:2]
        if self.zoom:
            s = 1.0 + self.zoom * k
            xs = np.clip((ox + self.w / 2 + (np.arange(self.w) - self.w / 2) / s).astype(int), 0, cw - 1)
            ys = np.clip((oy + self.h / 2 + (np.arange(self.h) - self.h / 2) / s).astype(int), 0, ch - 1)
            img = self.canvas[ys][:, xs]
        else:
            x0 = int(np.clip(round(ox), 0, cw - self.w))
            y0 = int(np.clip(round(oy), 0, ch - self.h))
            img = self.canvas[y0 : y0 + self.h, x0 : x0 + self.w].copy()
        for x, y, vx, vy, r, col in self.objects:
            cx, cy = (x + vx * k) % (self.w + 2 * r) - r, (y + vy * k) % (self.h + 2 * r) - r
            img[(self._xx - cx) ** 2 + ((self._yy - cy) * 1.3) ** 2 < r * r] = col
        if self.light is not None:
            depth, period, phase = self.light
            img = img * (1 - depth + depth * np.cos(2 * np.pi * k / period + phase))
        if k in self.flashes:
            img = img * 1.6 + 90
        return img


def _transition(rng: np.random.Generator) -> tuple[str, int, int]:
    """(kind, length, black hold) of a join: hard cuts most often, then cross-fades, then fades."""
    kind = rng.choice(["cut", "cut", "cut", "jump", "dissolve", "dissolve", "fade"])
    if kind == "dissolve":
        return "dissolve", int(rng.integers(6, 25)), 0
    if kind == "fade":
        return "fade", int(rng.integers(5, 16)), int(rng.choice([0, 0, 3, 6, 10]))
    return str(kind), 0, 0


def heldout_frames(seed: int, n_scenes: int, size: tuple[int, int]) -> tuple[list[np.ndarray], Truth]:
    """The frames of the held-out video ``seed`` and its ground truth."""
    rng = np.random.default_rng(10_000 + seed)
    w, h = size
    joins = [_transition(rng) for _ in range(n_scenes - 1)]
    truth = Truth()
    out: list[np.ndarray] = []
    prev: _Scene | None = None
    for i in range(n_scenes):
        t_in = joins[i - 1] if i else ("start", 0, 0)
        t_out = joins[i] if i < n_scenes - 1 else ("end", 0, 0)
        # Long enough that the shot between two transitions is at least 20 frames of its own.
        n = int(rng.integers(36, 90)) + t_in[1] + t_out[1]
        kind = str(rng.choice(KINDS))
        lo, hi = t_in[1] + 8, n - t_out[1] - 8
        if t_in[0] == "jump" and prev is not None and prev.kind not in ("zoom", "dark"):
            # The same picture seen from elsewhere: the view jumps by a quarter to 40% of the frame.
            scene = _Scene("pan", rng, w, h, n, lo, hi, canvas=prev.canvas)
            ch, cw = prev.canvas.shape[:2]
            py, px = prev.position(prev.n - 1)
            dy, dx = h * rng.uniform(0.25, 0.4), w * rng.uniform(0.25, 0.4)
            ny = py + dy if py + dy + scene.v[1] * n <= ch - h and py + dy + scene.v[1] * n >= 0 else py - dy
            nx = px + dx if px + dx + scene.v[0] * n <= cw - w and px + dx + scene.v[0] * n >= 0 else px - dx
            scene.origin = (float(np.clip(ny, 0, ch - h)), float(np.clip(nx, 0, cw - w)))
            kind = "pan"
        else:
            scene = _Scene(kind, rng, w, h, n, lo, hi)
        frames = [scene.frame(k) for k in range(n)]
        first = _append(out, truth, frames, t_in, kind)
        del frames
        truth.flashes += [first + j - (t_in[1] if t_in[0] == "dissolve" else 0) for j in scene.flashes]
        prev = scene
    truth.n_frames = len(out)
    return out, truth


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _append(out: list[np.ndarray], truth: Truth, frames: list[np.ndarray], t_in, kind: str) -> int:
    """Join the scene ``frames`` onto ``out`` (8-bit RGB frames) with transition ``t_in`` (kind, length,
    black hold) and write the boundary into ``truth``. Returns the index in ``out`` of the scene's first
    frame of its own."""
    how, length, hold = t_in
    if how in ("cut", "jump"):
        truth.cuts.append(len(out))
        truth.labels[len(out)] = how
    elif how == "dissolve":
        start = len(out) - length
        for k in range(length):
            a = (k + 1) / (length + 1)
            out[start + k] = _u8(out[start + k] * (1 - a) + np.asarray(frames[k], np.float32) * a)
        truth.gradual.append(start + length // 2)
        truth.labels[start + length // 2] = how
        frames = frames[length:]
    elif how == "fade":
        start = len(out) - length
        for k in range(length):
            out[start + k] = _u8(out[start + k] * (1 - (k + 1) / (length + 1)))
        b0 = len(out)
        out.extend(np.zeros(frames[0].shape, np.uint8) for _ in range(hold))
        frames = [f * ((k + 1) / (length + 1)) if k < length else f for k, f in enumerate(frames)]
        truth.gradual.append(b0 + hold // 2)
        truth.labels[b0 + hold // 2] = how
    first = len(out)
    truth.scenes.append((first, kind))
    out.extend(_u8(f) for f in frames)
    return first


def join_segments(
    segments: list[list[np.ndarray]], seed: int, labels: list[str] | None = None, min_own: int = 20
) -> tuple[list[np.ndarray], Truth]:
    """Join footage ``segments`` (each a list of RGB frames, all one size, each from inside one shot) with
    the same mix of transitions as the generated scenes (a jump cut here is a plain cut). Transitions are
    drawn so that every segment keeps at least ``min_own`` frames outside them, as the scenes do."""
    rng = np.random.default_rng(20_000 + seed)
    joins: list[tuple[str, int, int]] = [("start", 0, 0)]
    for i in range(1, len(segments)):
        t = _transition(rng)
        while len(segments[i - 1]) - joins[-1][1] - t[1] < min_own:
            t = _transition(rng)
        joins.append(("cut", 0, 0) if t[0] == "jump" else t)
    truth = Truth()
    out: list[np.ndarray] = []
    for i, (seg, t_in) in enumerate(zip(segments, joins, strict=True)):
        _append(out, truth, list(seg), t_in, labels[i] if labels else f"segment {i}")
    truth.n_frames = len(out)
    return out, truth


def encode(path: str | Path, frames: list[np.ndarray], fps: int = 25) -> None:
    """Write RGB ``frames`` as H.264 (crf 20) at ``fps``."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "20", "preset": "veryfast"}
        s.time_base = Fraction(1, fps)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def build_heldout(
    path: str | Path, *, seed: int = 0, n_scenes: int = 12, size: tuple[int, int] = (320, 180), fps: int = 25
) -> Truth:
    """Write held-out video ``seed`` (H.264, ``size``, ``fps``) to ``path`` and return its ground truth."""
    frames, truth = heldout_frames(seed, n_scenes, size)
    encode(path, frames, fps)
    return truth


def match(found: list[int], truth: Truth) -> tuple[list[int], list[int], list[int]]:
    """``(hits, misses, false alarms)``: each true boundary takes the nearest unclaimed found one within
    its tolerance; hits and misses are true frames, false alarms found ones."""
    left = sorted(found)
    hits, misses = [], []
    for t, tol in sorted([(c, CUT_TOL) for c in truth.cuts] + [(g, GRADUAL_TOL) for g in truth.gradual]):
        near = [b for b in left if abs(b - t) <= tol]
        if near:
            left.remove(min(near, key=lambda b: abs(b - t)))
            hits.append(t)
        else:
            misses.append(t)
    return hits, misses, left


def score(found: list[int], truth: Truth) -> tuple[float, int, int, int]:
    """F1 of ``found`` boundaries against ``truth``: ``(f1, true positives, false positives, misses)``."""
    hits, misses, extra = match(found, truth)
    return f1(len(hits), len(extra), len(misses)), len(hits), len(extra), len(misses)


def f1(tp: int, fp: int, fn: int) -> float:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return 2 * p * r / (p + r) if p + r else 0.0
