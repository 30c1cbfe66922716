"""Exotic media that the tests make themselves with PyAV: codecs, containers and stream properties that
real collections hold and that the factory must handle (or refuse with a named ``media.*`` reason).

Every file is short (2 s) and small (at most 320x240), with footage of its own (a different seed
per kind, so no two files are near-duplicates of each other). :func:`make_exotic_set` writes them all and
says which kinds it skipped because this FFmpeg build lacks their encoder.

Kinds (see :data:`KINDS`):

* ``mpeg4_avi``: MPEG-4 part 2 with B-frames in AVI (packed B-frames, packets without pts), MP3 audio;
* ``mpeg4_mp4``: MPEG-4 part 2 in MP4, AAC audio;
* ``mjpeg_avi``: Motion JPEG in AVI with A-law PCM audio at 8 kHz, as IP cameras write (MP4 cannot carry
  A-law);
* ``vp8_webm`` / ``vp9_webm``: VP8 / VP9 in WebM, Opus audio;
* ``interlaced``: H.264 coded as interlaced fields (``+ildct+ilme``, top field first) in Matroska;
* ``mpeg2_ts``: interlaced MPEG-2 video with MP2 audio in MPEG-TS, whose first frame is 1 s in
  (as in a recording cut out of a broadcast);
* ``odd_420`` / ``odd_444``: 161x97 pictures, 4:2:0 MPEG-4 and 4:4:4 H.264;
* ``rotated``: H.264 in MP4 with a display matrix that turns the picture 90° (a phone's ``rotate=90``);
* ``h264_10bit`` / ``hevc_10bit``: ``yuv420p10le`` H.264 in MP4 and HEVC in Matroska;
* ``vfr``: H.264 in MP4 with irregular frame durations (20 to 80 ms);
* ``decode_times``: H.264 with B-frames in MP4 whose packets carry their decode time as presentation
  time (no composition offsets): the frames decode in order with their times permuted;
* ``annexb_h264``: a raw H.264 elementary stream (``.h264``): no container, no timestamps;
* ``mjpeg_raw``: a raw Motion JPEG elementary stream (``.mjpeg``);
* ``audio_only``: AAC in M4A without any video stream (a media file the factory must refuse by name).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from media_synth import synth_frames

SECONDS = 2.0
FPS = 25
SIZE = (256, 192)
FIELD_TT = 2  # FFmpeg's AV_FIELD_TT: interlaced, top field coded and shown first


@dataclass(frozen=True)
class Kind:
    """One exotic file: its name, the encoders it needs, whether it holds video, and how it is made."""

    name: str
    filename: str
    encoders: tuple[str, ...]
    video: bool
    make: Callable[[Path, int], None]


def _frames(seed: int, size: tuple[int, int], seconds: float = SECONDS, fps: float = FPS):
    return synth_frames(seconds, fps=fps, size=size, seed=seed)


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)


def _add_audio(out, codec: str, rate: int, layout: str = "mono"):
    a = out.add_stream(codec, rate=rate)
    a.layout = layout
    return a


def _write_audio(out, a, seconds: float) -> None:
    """A 440 Hz tone of ``seconds`` through audio stream ``a``, in frames of the encoder's size."""
    cc = a.codec_context
    rate, fmt, channels = cc.sample_rate, cc.codec.audio_formats[0], a.layout.nb_channels
    wave = _tone(seconds, rate)
    n = cc.frame_size or 1024
    for done in range(0, len(wave), n):
        chunk = wave[done : done + n]
        if cc.frame_size and len(chunk) < n:
            chunk = np.pad(chunk, (0, n - len(chunk)))
        if fmt.name.startswith("s16"):
            chunk = (chunk * 32767).astype(np.int16)
        elif fmt.name.startswith("s32"):
            chunk = (chunk * 2147483647).astype(np.int32)
        data = np.tile(chunk, (channels, 1)) if fmt.is_planar else np.repeat(chunk, channels)[None, :]
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt.name, layout=a.layout.name)
        f.sample_rate, f.pts, f.time_base = rate, done, Fraction(1, rate)
        for p in a.encode(f):
            out.mux(p)
    for p in a.encode(None):
        out.mux(p)


def _video(
    path: Path,
    seed: int,
    *,
    codec: str,
    fmt: str | None = None,
    size: tuple[int, int] = SIZE,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    audio: tuple[str, int] | None = None,
    rotation: int | None = None,
    flags: str | None = None,
    times_ms: list[int] | None = None,
    setup: Callable | None = None,
    first_pts: int = 0,
    decode_times: bool = False,
) -> None:
    """Encode footage of ``seed`` with ``codec`` into ``path``; ``times_ms`` gives irregular frame times;
    ``decode_times`` writes each packet's decode time as its presentation time, as a muxer that knows
    nothing of B-frames does."""
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=FPS)
        tb = Fraction(1, FPS) if times_ms is None else Fraction(1, 1000)
        if times_ms is not None:
            v.time_base = tb
            v.codec_context.time_base = tb
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        opts = dict(options or {})
        if flags:
            opts["flags"] = flags  # e.g. +ildct+ilme: interlaced DCT and motion estimation
        if opts:
            v.options = opts
        if rotation is not None:
            v.set_display_rotation(rotation)
        if setup is not None:
            setup(v)
        a = _add_audio(out, *audio) if audio else None
        n = 0
        for k, rgb in enumerate(_frames(seed, size)):
            if times_ms is not None and k >= len(times_ms):
                break
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts = times_ms[k] if times_ms is not None else first_pts + k
            vf.time_base = tb
            for p in v.encode(vf):
                _mux(out, p, decode_times)
            n += 1
        for p in v.encode(None):
            _mux(out, p, decode_times)
        if a is not None:
            _write_audio(out, a, n / FPS)


def _mux(out, packet, decode_times: bool) -> None:
    if decode_times:
        packet.dts = packet.dts + 2  # x264 starts decode times 2 frames early
        packet.pts = packet.dts
    out.mux(packet)


def _x264(**extra: str) -> dict[str, str]:
    return {"preset": "ultrafast", "crf": "26", **extra}


def _vfr_times() -> list[int]:
    """Frame times in ms with durations cycling through 20, 40, 80 and 40 ms (2 s in all)."""
    times, t, k = [], 0, 0
    cycle = (20, 40, 80, 40)
    while t < SECONDS * 1000:
        times.append(t)
        t += cycle[k % len(cycle)]
        k += 1
    return times


def _audio_only(path: Path, seed: int) -> None:
    with av.open(str(path), "w", format="ipod") as out:
        a = _add_audio(out, "aac", 44100, "stereo")
        _write_audio(out, a, SECONDS)


def _raw_h264(path: Path, seed: int) -> None:
    _video(path, seed, codec="libx264", fmt="h264", options=_x264(**{"x264-params": "keyint=25:scenecut=0"}))


KINDS: tuple[Kind, ...] = (
    Kind(
        "mpeg4_avi",
        "mpeg4_bframes.avi",
        ("mpeg4", "libmp3lame"),
        True,
        lambda p, s: _video(
            p,
            s,
            codec="mpeg4",
            audio=("libmp3lame", 44100),
            setup=lambda v: setattr(v.codec_context, "max_b_frames", 2),
        ),
    ),
    Kind(
        "mpeg4_mp4",
        "mpeg4.mp4",
        ("mpeg4", "aac"),
        True,
        lambda p, s: _video(p, s, codec="mpeg4", audio=("aac", 44100)),
    ),
    Kind(
        "mjpeg_avi",
        "mjpeg.avi",
        ("mjpeg", "pcm_alaw"),
        True,
        lambda p, s: _video(p, s, codec="mjpeg", pix_fmt="yuvj420p", audio=("pcm_alaw", 8000)),
    ),
    Kind(
        "vp8_webm",
        "vp8.webm",
        ("libvpx", "libopus"),
        True,
        lambda p, s: _video(
            p, s, codec="libvpx", options={"deadline": "realtime", "cpu-used": "8"}, audio=("libopus", 48000)
        ),
    ),
    Kind(
        "vp9_webm",
        "vp9.webm",
        ("libvpx-vp9", "libopus"),
        True,
        lambda p, s: _video(
            p,
            s,
            codec="libvpx-vp9",
            options={"deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
            audio=("libopus", 48000),
        ),
    ),
    Kind(
        "interlaced",
        "interlaced_tff.mkv",
        ("libx264", "aac"),
        True,
        lambda p, s: _video(
            p,
            s,
            codec="libx264",
            options=_x264(**{"x264-params": "interlaced=1:tff=1"}),
            flags="+ildct+ilme",
            audio=("aac", 48000),
            setup=lambda v: setattr(v.codec_context, "field_order", FIELD_TT),
        ),
    ),
    Kind(
        "mpeg2_ts",
        "mpeg2_interlaced.ts",
        ("mpeg2video", "mp2"),
        True,
        lambda p, s: _video(
            p,
            s,
            codec="mpeg2video",
            fmt="mpegts",
            flags="+ildct+ilme",
            options={"b": "1500k"},
            audio=("mp2", 48000),
            first_pts=FPS,
            setup=lambda v: setattr(v.codec_context, "field_order", FIELD_TT),
        ),
    ),
    Kind(
        "odd_420",
        "odd_161x97_420.mp4",
        ("mpeg4",),
        True,
        lambda p, s: _video(p, s, codec="mpeg4", size=(161, 97)),
    ),
    Kind(
        "odd_444",
        "odd_161x97_444.mp4",
        ("libx264",),
        True,
        lambda p, s: _video(p, s, codec="libx264", size=(161, 97), pix_fmt="yuv444p", options=_x264()),
    ),
    Kind(
        "rotated",
        "rotate90.mp4",
        ("libx264", "aac"),
        True,
        lambda p, s: _video(p, s, codec="libx264", options=_x264(), rotation=-90, audio=("aac", 44100)),
    ),
    Kind(
        "h264_10bit",
        "h264_10bit.mp4",
        ("libx264",),
        True,
        lambda p, s: _video(p, s, codec="libx264", pix_fmt="yuv420p10le", options=_x264()),
    ),
    Kind(
        "hevc_10bit",
        "hevc_10bit.mkv",
        ("libx265",),
        True,
        lambda p, s: _video(
            p,
            s,
            codec="libx265",
            pix_fmt="yuv420p10le",
            options={"preset": "ultrafast", "x265-params": "log-level=error"},
        ),
    ),
    Kind(
        "vfr",
        "vfr.mp4",
        ("libx264",),
        True,
        lambda p, s: _video(p, s, codec="libx264", options=_x264(), times_ms=_vfr_times()),
    ),
    Kind(
        "decode_times",
        "decode_times.mp4",
        ("libx264",),
        True,
        lambda p, s: _video(
            p, s, codec="libx264", options=_x264(**{"x264-params": "bframes=3:b-adapt=0"}), decode_times=True
        ),
    ),
    Kind("annexb_h264", "annexb.h264", ("libx264",), True, _raw_h264),
    Kind(
        "mjpeg_raw",
        "raw.mjpeg",
        ("mjpeg",),
        True,
        lambda p, s: _video(p, s, codec="mjpeg", fmt="mjpeg", pix_fmt="yuvj420p"),
    ),
    Kind("audio_only", "audio_only.m4a", ("aac",), False, _audio_only),
)


def missing_encoders(kind: Kind) -> list[str]:
    """The encoders ``kind`` needs that this FFmpeg build lacks."""
    missing = []
    for name in kind.encoders:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - UnknownCodecError, or a decoder-only name
            missing.append(name)
    return missing


def make_exotic_set(folder: str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every kind into ``folder``. Returns ``({kind: path}, {skipped kind: why})``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for seed, kind in enumerate(KINDS, start=101):
        missing = missing_encoders(kind)
        if missing:
            skipped[kind.name] = f"this FFmpeg build has no {', '.join(missing)} encoder"
            continue
        path = folder / kind.filename
        kind.make(path, seed)
        made[kind.name] = path
    return made, skipped


def two_shots_with_b_frames(path: str | Path) -> Path:
    """4 s of H.264 in MP4 at 25 fps: two shots of 2 s joined by a hard cut at 2.0 s, a keyframe every
    second, and a fixed pattern of three B-frames between reference frames (``b-adapt=0``), so that the
    frame shown last before each keyframe is a P-frame that is decoded before the three B-frames shown
    before it. A stream copy that stops at the first packet presented at its end loses those B-frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = "keyint=25:min-keyint=25:scenecut=0:bframes=3:b-adapt=0:open-gop=0"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        v.options = {"preset": "veryfast", "crf": "23", "x264-params": params}
        shots = [_frames(seed, SIZE, seconds=2.0) for seed in (7, 8)]
        k = 0
        for shot in shots:
            for rgb in shot:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                vf.pts, vf.time_base = k, Fraction(1, FPS)
                for p in v.encode(vf):
                    out.mux(p)
                k += 1
        for p in v.encode(None):
            out.mux(p)
    return path
