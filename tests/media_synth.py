"""Video transforms and synthetic videos for robustness tests and benchmarks of the fingerprints.

The transforms are the edits a copy of someone's work typically went through: a re-encode with another
codec and bitrate, a resize, a crop, a letterbox, a sub-clip. :func:`transform` applies any mix of them
in one decode and one encode with PyAV. :func:`synth_video` writes textured moving footage that differs
per seed, :func:`flat_video` a black (or one-colour) video without usable frames.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


class _Encoder:
    """An encode of ``codec`` at ``fps`` into ``path`` that takes its frames one at a time (RGB arrays, or
    PyAV frames that the encoder scales and converts to its size and yuv420p in one step)."""

    def __init__(
        self, path: Path, *, fps: float, codec: str, bit_rate: int | None, width: int, height: int
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.out = av.open(str(path), "w")
        try:
            self.rate = Fraction(fps).limit_denominator(1001)
            st = self.st = self.out.add_stream(codec, rate=self.rate)
            st.width, st.height = width, height
            st.pix_fmt = "yuv420p"
            if bit_rate:
                st.bit_rate = int(bit_rate)
            if codec in ("libx264", "h264"):
                st.options = {"preset": "ultrafast", "tune": "fastdecode"}
        except BaseException:
            self.out.close()
            raise
        self.k = 0

    def add(self, img) -> None:
        if isinstance(img, av.VideoFrame):
            vf = img
            vf.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses, not the source
        else:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        vf.pts = self.k
        vf.time_base = Fraction(1, 1) / self.rate
        self.k += 1
        for pkt in self.st.encode(vf):
            self.out.mux(pkt)

    def close(self, *, flush: bool = True) -> None:
        try:
            if flush:
                for pkt in self.st.encode():
                    self.out.mux(pkt)
        finally:
            self.out.close()


def _encode(
    path: Path, frames, *, fps: float, codec: str, bit_rate: int | None, width: int, height: int
) -> None:
    """Encode ``frames`` (RGB arrays, or PyAV frames that the encoder scales and converts to its size and
    yuv420p in one step) as ``codec`` at ``fps``."""
    enc = _Encoder(path, fps=fps, codec=codec, bit_rate=bit_rate, width=width, height=height)
    try:
        for img in frames:
            enc.add(img)
    except BaseException:
        enc.close(flush=False)
        raise
    enc.close()


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return vf.reformat(width=width, height=height, format="rgb24").to_ndarray()


def frames_in_span(inp, vs, start_s: float | None, end_s: float | None):
    """The decoded frames of stream ``vs`` of ``inp`` whose time is in ``[start_s, end_s)``."""
    fps = float(vs.average_rate or 25)
    tb = float(vs.time_base)
    start_pts = vs.start_time or 0
    n = 0
    for f in inp.decode(vs):
        t = (f.pts - start_pts) * tb if f.pts is not None else n / fps
        n += 1
        if start_s is not None and t < start_s - 1e-6:
            continue
        if end_s is not None and t >= end_s - 1e-6:
            break
        yield f


def transform(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    codec: str = "libx264",
    bit_rate: int | None = None,
    scale: float = 1.0,
    crop: tuple[float, float, float, float] | None = None,
    letterbox: float = 0.0,
    start_s: float | None = None,
    end_s: float | None = None,
) -> Path:
    """Write a transformed copy of ``src`` to ``dst`` (frames stream through; memory stays small).

    ``crop`` is ``(left, right, top, bottom)`` as shares of the width/height removed; ``letterbox`` adds
    black bars above and below, each ``letterbox`` x the picture height; ``start_s``/``end_s`` cut a
    sub-clip; ``scale`` resizes; ``codec``/``bit_rate`` choose the encode.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        fps = float(vs.average_rate or 25)

        def frames():
            for f in frames_in_span(inp, vs, start_s, end_s):
                yield _edit(f, crop, scale, letterbox)

        it = frames()
        first = next(it, None)
        if first is None:
            raise ValueError(f"no frames in the requested span of {src}")
        width, height = first[1]

        def chain():
            yield first[0]
            yield from (frame for frame, _ in it)

        _encode(dst, chain(), fps=fps, codec=codec, bit_rate=bit_rate, width=width, height=height)
    return dst


def transform_many(src: str | os.PathLike, edits: dict[str | os.PathLike, dict]) -> list[Path]:
    """:func:`transform` of ``src`` to each ``dst`` of ``edits`` with its keyword arguments, from one decode
    of ``src``: the same files as one :func:`transform` each, for one decode instead of one per copy."""
    outs = [dict(dst=Path(dst), enc=None, done=False, **kw) for dst, kw in edits.items()]
    for o in outs:
        bad = set(o) - {"dst", "enc", "done", "codec", "bit_rate", "scale", "crop", "letterbox", "start_s", "end_s"}
        if bad:
            raise TypeError(f"transform_many: unknown edit arguments {sorted(bad)}")
    try:
        with av.open(str(src)) as inp:
            vs = inp.streams.video[0]
            vs.thread_type = "AUTO"
            fps = float(vs.average_rate or 25)
            tb = float(vs.time_base)
            start_pts = vs.start_time or 0
            n = 0
            for f in inp.decode(vs):  # each copy takes the frames frames_in_span gives it
                if all(o["done"] for o in outs):
                    break
                t = (f.pts - start_pts) * tb if f.pts is not None else n / fps
                n += 1
                for o in outs:
                    start_s, end_s = o.get("start_s"), o.get("end_s")
                    if o["done"] or (start_s is not None and t < start_s - 1e-6):
                        continue
                    if end_s is not None and t >= end_s - 1e-6:
                        o["done"] = True
                        continue
                    frame, (width, height) = _edit(f, o.get("crop"), o.get("scale", 1.0), o.get("letterbox", 0.0))
                    if o["enc"] is None:
                        o["enc"] = _Encoder(
                            o["dst"], fps=fps, codec=o.get("codec", "libx264"), bit_rate=o.get("bit_rate"),
                            width=width, height=height,
                        )
                    o["enc"].add(frame)
        for o in outs:
            if o["enc"] is None:
                raise ValueError(f"no frames in the requested span of {src} for {o['dst']}")
    except BaseException:
        for o in outs:
            if o["enc"] is not None:
                o["enc"].close(flush=False)
                o["enc"] = None
        raise
    for o in outs:
        o["enc"].close()
    return [o["dst"] for o in outs]


def _edit(f: av.VideoFrame, crop, scale: float, letterbox: float):
    """``(frame, (width, height))``: the edited frame (a PyAV frame that the encoder scales to that size,
    or an RGB array where pixels had to be cut out or added) and the size of the encoded picture."""
    w, h = f.width, f.height
    rgb = None
    if crop:
        left, right, top, bottom = crop
        x0, x1 = int(round(w * left)), w - int(round(w * right))
        y0, y1 = int(round(h * top)), h - int(round(h * bottom))
        rgb = f.to_ndarray(format="rgb24")[y0:y1, x0:x1]
        h, w = y1 - y0, x1 - x0
    ow, oh = _even(w * scale), _even(h * scale)
    if not letterbox:
        if rgb is None:
            return f, (ow, oh)  # the encoder scales and converts it
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"), (ow, oh)
    rgb = _resize(rgb, ow, oh) if rgb is not None else f.reformat(width=ow, height=oh, format="rgb24").to_ndarray()
    bar = _even(oh * letterbox)
    canvas = np.zeros((oh + 2 * bar, ow, 3), np.uint8)
    canvas[bar : bar + oh] = rgb
    return canvas, (ow, oh + 2 * bar)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells * w // h + 1, 3)) * 255
    ys = np.linspace(0, small.shape[0] - 1, h)
    xs = np.linspace(0, small.shape[1] - 1, w)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, small.shape[0] - 1)
    x1 = np.minimum(x0 + 1, small.shape[1] - 1)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = small[y0][:, x0] * (1 - fx) + small[y0][:, x1] * fx
    bot = small[y1][:, x0] * (1 - fx) + small[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def synth_frames(seconds: float, *, fps: float = 25.0, size: tuple[int, int] = (320, 240), seed: int = 0):
    """Textured footage: a smooth random background panning slowly, moving shapes, a scene change every
    few seconds. Different seeds give unrelated footage."""
    w, h = size
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    scene_len = int(fps * rng.uniform(2.5, 4.5))
    bg = None
    yy_all, xx_all = np.mgrid[0:h, 0:w]
    for k in range(n):
        if k % scene_len == 0:
            bg = 0.6 * _smooth_noise(rng, h, w * 2, int(rng.integers(4, 9))) + 0.4 * _smooth_noise(
                rng, h, w * 2, int(rng.integers(14, 24))
            )
            shapes = [
                (
                    rng.uniform(0, w),
                    rng.uniform(0, h),
                    rng.uniform(-3, 3),
                    rng.uniform(-2, 2),
                    rng.uniform(10, 40),
                    rng.integers(0, 255, 3),
                )
                for _ in range(int(rng.integers(2, 6)))
            ]
            shift0 = k
        shift = int((k - shift0) * 1.5) % w
        frame = bg[:, shift : shift + w].copy()
        for x, y, vx, vy, r, col in shapes:
            cx, cy = x + vx * (k - shift0), y + vy * (k - shift0)
            # the disc, computed over its bounding box only (the pixels outside it are farther than r)
            y0, y1 = max(0, int(np.floor(cy - r)) - 1), min(h, int(np.ceil(cy + r)) + 2)
            x0, x1 = max(0, int(np.floor(cx - r)) - 1), min(w, int(np.ceil(cx + r)) + 2)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = yy_all[y0:y1, x0:x1], xx_all[y0:y1, x0:x1]
            frame[y0:y1, x0:x1][(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = col
        yield frame.clip(0, 255).astype(np.uint8)


def synth_video(
    path: str | os.PathLike,
    seconds: float = 8.0,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    codec: str = "libx264",
) -> Path:
    path = Path(path)
    _encode(
        path,
        synth_frames(seconds, fps=fps, size=size, seed=seed),
        fps=fps,
        codec=codec,
        bit_rate=None,
        width=size[0],
        height=size[1],
    )
    return path


def flat_video(
    path: str | os.PathLike,
    seconds: float = 3.0,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    value: int = 0,
) -> Path:
    """A video whose frames are one flat colour (black by default): no PDQ quality anywhere."""
    path = Path(path)
    w, h = size
    frame = np.full((h, w, 3), value, np.uint8)
    _encode(
        path,
        (frame for _ in range(int(seconds * fps))),
        fps=fps,
        codec="libx264",
        bit_rate=None,
        width=w,
        height=h,
    )
    return path


def encode_h264(
    path: str | os.PathLike,
    frames,
    *,
    fps: int = 25,
    crf: int | None = None,
    preset: str | None = None,
    x264_params: str | None = None,
    rotation: int = 0,
) -> Path:
    """Write RGB ``frames`` (uint8 arrays of one size) as H.264 in yuv420p at ``fps``, frame ``k`` at time
    ``k / fps``. ``crf``, ``preset`` and ``x264_params`` are libx264's (its defaults when ``None``: the
    medium preset, with B-frames); ``rotation`` sets the display rotation, in degrees counterclockwise."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    options = {}
    if crf is not None:
        options["crf"] = str(crf)
    if preset is not None:
        options["preset"] = preset
    if x264_params:
        options["x264-params"] = x264_params
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = options
        s.time_base = Fraction(1, fps)
        if rotation:
            s.set_display_rotation(rotation)
        for k, img in enumerate(_chain(first, frames)):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = k
            for pkt in s.encode(vf):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


def _chain(first, rest):
    yield first
    yield from rest
