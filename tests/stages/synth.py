"""Media that the tests synthesise themselves: shots of known content joined by hard cuts.

Loaded by ``tests/stages/conftest.py`` and ``tests/build/conftest.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

KINDS = ("bars", "rings", "checker", "dark", "bright", "flat", "noise")


def _frame(kind: str, t: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "bars":
        cols = np.array(
            [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0]]
        )
        return cols[((xx + 5 * t) // (w / 6)).astype(int) % 6].astype(np.uint8)
    if kind == "rings":
        r = np.hypot(xx - w / 2, yy - h / 2)
        g = (127 + 120 * np.sin(r / 3.0 - t / 2.0)).astype(np.uint8)
        return np.stack([g, 255 - g, np.full_like(g, 90)], axis=2)
    if kind == "checker":
        c = (((xx + 3 * t) // 16 + (yy + 2 * t) // 16) % 2).astype(np.uint8)
        return np.stack([c * 200 + 30, c * 120 + 60, 220 - c * 160], axis=2)
    if kind == "dark":  # a faint moving pattern near black
        c = (((xx + 3 * t) // 16 + yy // 16) % 2).astype(np.uint8)
        return np.stack([c * 14 + 4] * 3, axis=2)
    if kind == "bright":
        c = (((xx + 3 * t) // 16 + yy // 16) % 2).astype(np.uint8)
        return np.stack([250 - c * 10] * 3, axis=2)
    if kind == "flat":  # uniform grey that never changes: blurry and static
        return np.full((h, w, 3), 128, np.uint8)
    if kind == "noise":
        return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    raise ValueError(kind)


def make_video(
    path: str | Path,
    shots: list[tuple[str, float]],
    *,
    fps: int = 25,
    size: tuple[int, int] = (320, 180),
    keyint: int | None = None,
    scenecut: bool = True,
    audio: str | None = "aac",
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
) -> Path:
    """Write shots ``[(kind, seconds), ...]`` joined by hard cuts.

    ``keyint`` fixes the GOP (with ``scenecut=False`` keyframes ignore the cuts); ``audio`` is an audio
    encoder name (``aac``, ``pcm_s16le``, ...) or ``None``. The container follows the file extension.
    """
    path = Path(path)
    w, h = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            params = []
            if keyint:
                params += [f"keyint={keyint}", f"min-keyint={keyint}"]
            if not scenecut:
                params.append("scenecut=0")
            v.options = {
                "preset": "ultrafast",
                "crf": "28",
                **({"x264-params": ":".join(params)} if params else {}),
            }
        a = None
        if audio:
            a = out.add_stream(audio, rate=44100)
            a.layout = "mono"
        i = 0
        for kind, seconds in shots:
            for t in range(int(round(seconds * fps))):
                img = _frame(kind, t, w, h, rng)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for p in v.encode(frame):
                    out.mux(p)
                i += 1
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            total = int(44100 * i / fps)
            fmt = a.codec_context.codec.audio_formats[0].name
            done = 0
            while done < total:
                k = min(1024, total - done)
                ts = (done + np.arange(k)) / 44100
                wave = 0.2 * np.sin(2 * math.pi * 440 * ts)
                if fmt.startswith("s16"):
                    data = (wave * 32767).astype(np.int16)[None, :]
                else:
                    data = wave.astype(np.float32)[None, :]
                f = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
                f.sample_rate, f.pts, f.time_base = 44100, done, Fraction(1, 44100)
                for p in a.encode(f):
                    out.mux(p)
                done += k
            for p in a.encode(None):
                out.mux(p)
    return path


def packets(path: str | Path, kind: str = "video") -> list:
    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, p.dts, p.is_keyframe, p.size) for p in c.demux(s) if p.size]


def decoded_frames(path: str | Path) -> tuple[int, str]:
    with av.open(str(path)) as c:
        n, fmt = 0, None
        for f in c.decode(video=0):
            n += 1
            fmt = f.format.name
        return n, fmt


def with_rotation_90(src: str | Path, dst: str | Path) -> Path:
    """Copy an MP4 and set its video track's display matrix to a 90° turn (as a phone writes it).

    FFmpeg's muxer no longer writes the ``rotate`` tag, so the ``tkhd`` matrix is patched directly:
    ``(a, b, c, d) = (0, 1, -1, 0)``, which players show turned 90° clockwise.
    """
    import struct

    data = bytearray(Path(src).read_bytes())
    i = data.find(b"tkhd")
    assert data[i + 4] == 0, "version-0 tkhd expected"
    m = i + 4 + 40  # type, version/flags, times, track id, duration, layer, group, volume
    data[m : m + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)
