"""Cut one span of a source video into its own MP4 file with PyAV.

Two methods:

* **copy** (stream copy, a remux without re-encoding): used when the span starts on a keyframe, FFmpeg's
  MP4 muxer takes the codec (it refuses MS-MPEG4, VP8, ...) and the packets have timestamps. Video
  packets are copied in decode order from that keyframe until the first packet whose frame has its middle
  at or after the end of the span; the clip can therefore end a few frames early on streams with
  B-frames, but every frame it holds decodes. The first packets are decoded too: when the frames' times
  do not rise (decode times stored as presentation times), the copy gives way to a re-encode. Lossless
  and about a hundred times faster than encoding.
* **reencode**: used otherwise (or when asked). Frames are decoded from the keyframe before the span
  (from the start of a file that cannot seek), their times put in order, those whose middle lies inside
  the span converted to ``yuv420p``, rotated upright when the source carries rotation metadata, and
  encoded with libx264 (or SVT-AV1) at a constant quality. Frames of a stream without timestamps are
  timed by their count at the nominal rate.

Either way the result gives the span the written file really holds (``start_ms``/``end_ms``).

Audio is kept either way: packets of the first audio stream inside the span are copied when MP4 can hold
the codec, and re-encoded to AAC otherwise. The output has ``moov`` at the front (``faststart``) and is
written to a temporary sibling and renamed into place, so a crash never leaves a half-written clip.

Times are milliseconds from the start of the video stream, the convention of
:func:`clipfactory.media.probe.keyframe_times` and :func:`clipfactory.media.analyse.analyse`.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clipfactory.errors import ConfigError, MediaError, MediaReasonError
from clipfactory.media.probe import _video_stream, open_container
from clipfactory.storage import atomic_path

log = logging.getLogger(__name__)

#: Video codecs whose packets a clip may carry as they are (decoder names as FFmpeg reports them); others
#: (MS-MPEG4 in AVI, VP8, Theora, ...) are re-encoded. A stream is copied only when, besides, FFmpeg's MP4
#: muxer accepts it (:func:`_template_stream`).
MP4_VIDEO = {"h264", "hevc", "mpeg4", "av1", "vp9", "mpeg1video", "mpeg2video", "mjpeg"}
#: Audio codecs copied as they are when the muxer accepts them; others (PCM, MP2, Vorbis, ...) become AAC.
MP4_AUDIO = {"aac", "aac_fixed", "mp3", "mp3float", "mp3adufloat", "ac3", "ac3_fixed", "eac3", "opus", "alac"}

#: The preset each encoder gets when none is configured.
DEFAULT_PRESETS = {"libx264": "superfast", "libsvtav1": "10", "libopenh264": None}

CUT_METHODS = ("copy", "reencode")


class CutOptions(BaseModel):
    """How clips are cut. The same fields form the ``[media.cut]`` config section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str = Field(
        "auto",
        pattern="^(auto|reencode)$",
        description="auto: stream copy when the clip starts on a keyframe, re-encode otherwise; "
        "reencode: always re-encode.",
    )
    keyframe_tolerance_ms: int = Field(
        20,
        ge=0,
        description="A clip starts 'on' a keyframe when the keyframe is at most this far from its start.",
    )
    encoder: str = Field(
        "libx264", description="Video encoder for re-encoding: libx264, or libsvtav1 where FFmpeg has it."
    )
    crf: int = Field(20, ge=0, le=63, description="Constant-quality factor of the encoder (lower is better).")
    preset: str | None = Field(
        None,
        description="Encoder speed preset; default superfast for libx264 (re-encoded clips are the few that "
        "start between keyframes, so speed matters more than size), 10 for libsvtav1.",
    )
    audio: bool = Field(True, description="Keep the first audio stream.")
    audio_bitrate: int = Field(128_000, ge=16_000, description="AAC bit rate when audio is re-encoded.")
    threads: int = Field(0, ge=0, description="Encoder threads (0: let FFmpeg choose).")


@dataclass(frozen=True)
class CutResult:
    """What :func:`cut_clip` wrote. ``start_ms``/``end_ms`` are the span the file really holds."""

    path: str
    method: str  # copy | reencode
    start_ms: int
    end_ms: int
    n_video_frames: int
    has_audio: bool
    audio_method: str | None  # copy | reencode | None
    size_bytes: int
    encoder: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def is_on_keyframe(start_ms: int, keyframes_ms: list[int], tolerance_ms: int) -> bool:
    """True when a keyframe lies within ``tolerance_ms`` of ``start_ms``."""
    if not keyframes_ms:
        return False
    i = bisect.bisect_left(keyframes_ms, start_ms - tolerance_ms)
    return i < len(keyframes_ms) and keyframes_ms[i] <= start_ms + tolerance_ms


def snap_start(
    start_ms: int, end_ms: int, keyframes_ms: list[int], *, forward_ms: int, backward_ms: int = 0
) -> int:
    """Keyframe-aligned planning: move ``start_ms`` onto a keyframe in
    ``[start_ms - backward_ms, start_ms + forward_ms]``: a keyframe at the start itself, else the nearest
    one at most ``backward_ms`` earlier (which loses nothing), else the first one at most ``forward_ms``
    later.

    Returns ``start_ms`` unchanged when no keyframe is close enough (the clip is then re-encoded) or when
    snapping would leave nothing of the span.
    """
    if not keyframes_ms:
        return start_ms
    i = bisect.bisect_left(keyframes_ms, start_ms)
    if i < len(keyframes_ms) and keyframes_ms[i] == start_ms:
        return start_ms
    if i > 0 and start_ms - keyframes_ms[i - 1] <= backward_ms:
        return keyframes_ms[i - 1]
    if i < len(keyframes_ms) and keyframes_ms[i] - start_ms <= forward_ms and keyframes_ms[i] < end_ms:
        return keyframes_ms[i]
    return start_ms


def encoder_available(name: str) -> bool:
    return name in av.codecs_available


def choose_method(start_ms: int, keyframes_ms: list[int] | None, options: CutOptions) -> str:
    if options.mode == "reencode" or keyframes_ms is None:
        return "reencode"
    return "copy" if is_on_keyframe(start_ms, keyframes_ms, options.keyframe_tolerance_ms) else "reencode"


#: Why a span could not be cut: nothing of it is in the file, or none of its frames decodes.
CUT_REASONS = ("media.span_past_end", "media.decode_error")


class CutError(MediaReasonError):
    """A span cannot be cut; ``reason`` is one of :data:`CUT_REASONS` (the message starts with it)."""

    REASONS = CUT_REASONS


def cut_clip(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    start_ms: int,
    end_ms: int,
    *,
    options: CutOptions | None = None,
    keyframes_ms: list[int] | None = None,
    frame_filter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> CutResult:
    """Write the span ``[start_ms, end_ms)`` of ``src`` to ``dst`` (MP4), by stream copy when the span starts
    on one of ``keyframes_ms`` and by re-encoding otherwise. Raises :class:`CutError` when nothing of the
    span can be read.

    The result's ``start_ms``/``end_ms`` are the span the written file really holds, measured from the
    packets (copy) or frames (re-encode) written: a copy starts on the keyframe, which may lie up to
    ``keyframe_tolerance_ms`` from ``start_ms``, and can end a few frames early.

    ``frame_filter`` (an RGB ``ndarray`` in, one of the same size out, e.g. face blurring) forces a
    re-encode and is applied to every frame written."""
    opts = options or CutOptions()
    if end_ms <= start_ms:
        raise MediaError(f"empty span {start_ms}-{end_ms} ms", item=str(src))
    if keyframes_ms is None and opts.mode == "auto":
        from clipfactory.media.probe import keyframe_times

        keyframes_ms = [int(round(t * 1000)) for t in keyframe_times(src)]
    method = "reencode" if frame_filter is not None else choose_method(start_ms, keyframes_ms, opts)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        if method == "copy":
            try:
                res = _copy(src, tmp, start_ms, end_ms, opts)
            except av.error.FFmpegError as exc:
                # MP4 refused the packets as they are (timestamps, codec parameters): re-encode instead.
                log.debug("stream copy of %s failed (%s); re-encoding", src, exc)
                res = None
            if res is None:  # the stream did not start on a keyframe after all
                method = "reencode"
        if method == "reencode":
            res = _reencode(src, tmp, start_ms, end_ms, opts, frame_filter)
        size = tmp.stat().st_size
    return CutResult(path=str(dst), size_bytes=size, **res)


# -- shared helpers --------------------------------------------------------------------------------------


def _open_output(path: Path):
    return av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})


def _template_stream(out, stream):
    """An output stream that carries ``stream``'s packets as they are, or ``None`` when the MP4 muxer does
    not take its codec (PyAV asks FFmpeg and raises ``ValueError``: "'mp4' format does not support ...")."""
    try:
        return out.add_stream_from_template(stream)
    except ValueError as exc:
        log.debug("MP4 cannot carry %s as it is (%s)", stream, exc)
        return None


def _audio_stream(container, opts: CutOptions):
    if not opts.audio or not container.streams.audio:
        return None
    return container.streams.audio[0]


def _start_s(stream) -> float:
    """The stream's first timestamp in seconds (0 when the container gives none)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


class _Audio:
    """Carries the audio of the span into the output: packet copy, or decode + AAC encode.

    Audio times are measured from the start of the *video* stream (``origin_s``), as the span is: in
    MPEG-TS and other containers the audio often starts earlier or later than the video."""

    def __init__(self, out, ain, opts: CutOptions, origin_s: float = 0.0):
        self.ain = ain
        self.tb = ain.time_base
        self.origin = origin_s
        name = ain.codec_context.name if ain.codec_context else None
        self.aout = _template_stream(out, ain) if name in MP4_AUDIO and ain.time_base is not None else None
        self.copy = self.aout is not None
        self.pending: list = []
        self.n = 0
        if not self.copy:
            rate = ain.codec_context.sample_rate or 48_000
            self.aout = out.add_stream("aac", rate=rate)
            self.aout.bit_rate = opts.audio_bitrate
            # Layouts with an unspecified channel order ("1 channels") are not valid for the AAC encoder.
            layout = "mono" if (ain.codec_context.channels or 2) == 1 else "stereo"
            self.aout.layout = layout
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            self.samples: int | None = None
            self.rate = rate
        self.t0: float | None = None  # seconds of the first video frame kept (relative to the video start)
        self.t_end: float | None = None

    @property
    def method(self) -> str:
        return "copy" if self.copy else "reencode"

    def offer(self, out, packet) -> None:
        """Take a demuxed audio packet; emit it once the video start is known."""
        if packet.pts is None:
            return
        if self.t0 is None:
            self.pending.append(packet)
            return
        self._emit(out, packet)

    def start(self, out, t0: float, t_end: float) -> None:
        self.t0, self.t_end = t0, t_end
        pending, self.pending = self.pending, []
        for p in pending:
            self._emit(out, p)

    def _t(self, packet) -> float:
        return float(packet.pts * self.tb) - self.origin

    def done(self, packet) -> bool:
        return self.t_end is not None and packet.pts is not None and self._t(packet) >= self.t_end

    def _emit(self, out, packet) -> None:
        t = self._t(packet)
        if t < self.t0 - 1e-6 or t >= self.t_end:
            return
        if self.copy:
            shift = int(round((self.origin + self.t0) / self.tb))
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.aout
            out.mux(packet)
            self.n += 1
            return
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError):
            return
        if frames and self.samples is None:
            # Audio that starts after the first video frame keeps its offset.
            self.samples = max(0, int(round((t - self.t0) * self.rate)))
        for frame in frames:
            self._encode(out, frame)

    def _encode(self, out, frame) -> None:
        for f in self.resampler.resample(frame) if frame is not None else [None]:
            if f is not None:
                f.pts = self.samples or 0
                f.time_base = Fraction(1, self.rate)
                self.samples = (self.samples or 0) + f.samples
            for p in self.aout.encode(f):
                out.mux(p)
                self.n += 1

    def close(self, out) -> None:
        if not self.copy and self.t0 is not None:
            for f in self.resampler.resample(None):
                self._encode(out, f)
            for p in self.aout.encode(None):
                out.mux(p)
                self.n += 1


def _to_pts(ms: float, stream) -> int:
    return int(round(ms / 1000 / stream.time_base)) + (stream.start_time or 0)


#: How much earlier than the span :func:`_positioned` seeks on each try, in ms; then it reads from the start.
SEEK_MARGINS_MS = (0, 2_000, 10_000)
#: Packets read after a seek to find where it landed (beyond, the seek counts as failed).
_PEEK_PACKETS = 2_000


@dataclass
class _Input:
    """An open source, positioned so that its packets (``packets``) start at or before the span."""

    container: av.container.InputContainer
    vin: av.video.stream.VideoStream
    ain: av.audio.stream.AudioStream | None
    packets: Iterator
    from_start: bool  # no seek: frames can be counted from the stream's first one

    def close(self) -> None:
        self.container.close()


def _positioned(src, item: str, start_ms: float, *, limit_ms: float, opts: CutOptions) -> _Input:
    """Open ``src`` and seek so that the first video packet is a keyframe presented at or before
    ``limit_ms``.

    Demuxers seek exactly (MP4, Matroska, AVI with an index) or by bisecting the file (MPEG-TS, MPEG-PS),
    which can land after the keyframe wanted; raw streams cannot seek at all. So each seek is checked by
    peeking at the packets that follow, and retried further back (:data:`SEEK_MARGINS_MS`); the last resort
    reads the file from the start. Packets peeked at are handed on, audio ones included.
    """
    for margin in (*SEEK_MARGINS_MS, None):
        inp = open_container(src)
        try:
            vin = _video_stream(inp, item)
            ain = _audio_stream(inp, opts)
            streams = [vin] + ([ain] if ain is not None else [])
            target = None if margin is None else start_ms - margin
            if target is None or target <= 0 or vin.time_base is None:
                return _Input(inp, vin, ain, inp.demux(streams), True)
            try:
                inp.seek(_to_pts(target, vin), stream=vin, backward=True, any_frame=False)
            except av.error.FFmpegError:
                inp.close()
                continue
            demux = inp.demux(streams)
            seen = []
            landed = False
            for packet in itertools.islice(demux, _PEEK_PACKETS):
                seen.append(packet)
                if packet.stream.type == "video" and packet.size and packet.pts is not None:
                    landed = packet.is_keyframe and packet.pts <= _to_pts(limit_ms, vin)
                    break
            if landed:
                return _Input(inp, vin, ain, itertools.chain(seen, demux), False)
        except BaseException:
            inp.close()
            raise
        inp.close()
    raise AssertionError("unreachable: the last try reads from the start")  # pragma: no cover


# -- stream copy --------------------------------------------------------------------------------------------


class _ShownInOrder:
    """Decodes the first :data:`CHECK_PACKETS` packets a copy takes and says whether the frames' times rise.

    Some files carry decode times where presentation times belong: MPEG-4 part 2 with packed B-frames in
    AVI (which stores no presentation times), H.264 with B-frames muxed into MP4 without composition
    offsets. Their frames decode in the right order with their times permuted (0, 101, 67, 134, 34 ms),
    and a copy would keep those times, so players and loaders that order frames by time show them
    shuffled. A re-encode gives them their times in order (:class:`_InOrder`)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.left = CHECK_PACKETS

    def takes(self, packet) -> bool:
        if self.left <= 0:
            return True
        self.left -= 1
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError):
            return False
        for frame in frames:
            if frame.pts is None or (self.last is not None and frame.pts <= self.last):
                return False
            self.last = frame.pts
        return True


def _copy(src, dst: Path, start_ms: int, end_ms: int, opts: CutOptions) -> dict | None:
    """Stream-copy from the keyframe within ``keyframe_tolerance_ms`` of ``start_ms``; ``None`` when the
    stream cannot be copied (no such keyframe, a codec MP4 cannot carry, packets without timestamps)."""
    item = str(src)
    tol = opts.keyframe_tolerance_ms
    with open_container(src) as probe_inp:
        vin = _video_stream(probe_inp, item)
        if (vin.codec_context.name if vin.codec_context else None) not in MP4_VIDEO or vin.time_base is None:
            return None  # MP4 cannot carry this codec: the caller re-encodes
    inp = _positioned(src, item, start_ms - tol, limit_ms=start_ms + tol, opts=opts)
    try:
        vin, ain = inp.vin, inp.ain
        tb = vin.time_base
        s0 = vin.start_time or 0
        lo, hi = _to_pts(start_ms - tol, vin), _to_pts(start_ms + tol, vin)
        end_pts = _to_pts(end_ms, vin)
        fps = vin.average_rate or vin.guessed_rate or Fraction(25)
        frame_pts = max(1, int(round(1 / (float(fps) * tb))))  # one frame, for packets without a duration
        out = _open_output(dst)
        try:
            vout = _template_stream(out, vin)
            if vout is None:
                return None  # MP4 cannot carry this codec: the caller re-encodes
            audio = _Audio(out, ain, opts, _start_s(vin)) if ain is not None else None
            first_pts: int | None = None
            last_end: int | None = None
            n = 0
            video_done = False
            check = _ShownInOrder()
            for packet in inp.packets:
                if packet.stream.type == "audio":
                    if audio is not None:
                        if audio.done(packet) and video_done:
                            break
                        audio.offer(out, packet)
                    continue
                if video_done or not packet.size:
                    continue
                if first_pts is not None and not check.takes(packet):
                    return None
                if packet.pts is None:
                    if first_pts is None:
                        continue
                    return None  # MP4 needs a time for every frame: re-encode instead
                if first_pts is None:
                    if packet.pts < lo or not packet.is_keyframe:
                        if packet.pts > hi:
                            return None  # the span does not start on a keyframe: re-encode instead
                        continue  # the end of the GOP before
                    if packet.pts > hi or packet.pts >= end_pts:
                        return None
                    first_pts = packet.pts
                    if not check.takes(packet):
                        return None  # the source's frame times are permuted: re-encode instead
                    if audio is not None:
                        audio.start(out, float((first_pts - s0) * tb), end_ms / 1000)
                elif packet.pts < first_pts:
                    continue  # a leading B-frame of an open GOP: it needs the GOP before the clip
                dur = packet.duration if packet.duration else frame_pts
                if 2 * packet.pts + dur >= 2 * end_pts:
                    # The frame's middle lies past the span, the re-encode's rule: both methods keep the
                    # same frames of a span. Packets that follow in decode order are dropped with it.
                    video_done = True
                    if audio is None:
                        break
                    continue
                last_end = max(last_end or 0, packet.pts + dur)
                packet.pts -= first_pts
                if packet.dts is not None:
                    packet.dts -= first_pts
                packet.stream = vout
                out.mux(packet)
                n += 1
            if first_pts is None or n == 0:
                return None
            if audio is not None:
                audio.close(out)
        finally:
            out.close()
    finally:
        inp.close()
    return {
        "method": "copy",
        "start_ms": int(round((first_pts - s0) * tb * 1000)),
        "end_ms": int(round((last_end - s0) * tb * 1000)),
        "n_video_frames": n,
        "has_audio": audio is not None and audio.n > 0,
        "audio_method": audio.method if audio is not None and audio.n else None,
        "encoder": None,
    }


# -- re-encode ----------------------------------------------------------------------------------------------


def _rotate(frame: av.VideoFrame, rotation: int) -> av.VideoFrame:
    """Turn a frame upright. ``rotation`` is FFmpeg's display-matrix angle (counterclockwise, as
    ``VideoFrame.rotation`` gives it, modulo 360); a player rotates the picture by it, and so do we."""
    arr = frame.to_ndarray(format="rgb24")
    arr = np.ascontiguousarray(np.rot90(arr, k=(rotation // 90) % 4))
    out = av.VideoFrame.from_ndarray(arr, format="rgb24")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


def _even(x: int) -> int:
    return max(2, x - (x % 2))


def _mux_timed(out, packet, durations: dict[int, int]) -> None:
    if packet.pts is not None and packet.pts in durations:
        packet.duration = durations.pop(packet.pts)
    out.mux(packet)


class _InOrder:
    """Decoded frames with their times, in the order they are shown.

    A decoder returns frames in the order they are shown, but the timestamps that come with them can be
    permuted: MPEG-4 part 2 with packed B-frames in AVI gives 1, 2, 3, 5, 4, 6, 8, 7, ... The times are
    the right ones, on the wrong frames; so each frame gets the smallest of the times of the last
    :data:`REORDER_FRAMES` frames. For a stream whose times only rise this changes nothing."""

    def __init__(self) -> None:
        self.frames: collections.deque = collections.deque()
        self.times: list[float] = []

    def push(self, frame, t_ms: float, dur_ms: float) -> list[tuple[Any, float, float]]:
        self.frames.append((frame, dur_ms))
        heapq.heappush(self.times, t_ms)
        return [self._pop()] if len(self.frames) > REORDER_FRAMES else []

    def flush(self) -> list[tuple[Any, float, float]]:
        return [self._pop() for _ in range(len(self.frames))]

    def _pop(self) -> tuple[Any, float, float]:
        frame, dur_ms = self.frames.popleft()
        return frame, heapq.heappop(self.times), dur_ms


#: How many frames :class:`_InOrder` holds back to put their times in order (more than the B-frames
#: between two reference frames of any common encoder).
REORDER_FRAMES = 16
#: How many packets of a stream copy :class:`_ShownInOrder` decodes (a few groups of B-frames).
CHECK_PACKETS = 24


def _filtered(frame: av.VideoFrame, fn: Callable[[np.ndarray], np.ndarray]) -> av.VideoFrame:
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(fn(frame.to_ndarray(format="rgb24"))), format="rgb24")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


def _reencode(src, dst: Path, start_ms: int, end_ms: int, opts: CutOptions, frame_filter=None) -> dict:
    """Decode from the keyframe before ``start_ms`` and encode the frames of the span.

    Frame times come from the timestamps; a stream without them (a raw H.264 or MPEG-4 elementary stream)
    is read from its start and its frames are timed by their count at the nominal frame rate."""
    item = str(src)
    encoder = opts.encoder
    if not encoder_available(encoder):
        raise ConfigError(
            f"encoder {encoder!r} is not in this FFmpeg build",
            item="media.cut.encoder",
            fix="use libx264, or install a PyAV/FFmpeg build with this encoder",
        )
    preset = opts.preset if opts.preset is not None else DEFAULT_PRESETS.get(encoder)
    inp = _positioned(src, item, start_ms, limit_ms=start_ms, opts=opts)
    try:
        vin, ain = inp.vin, inp.ain
        vin.thread_type = "AUTO"
        tb = vin.time_base or Fraction(1, 90_000)
        s0 = vin.start_time or 0
        fps_rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        frame_ms = 1000.0 / float(fps_rate)
        out = _open_output(dst)
        try:
            vout = None
            audio = _Audio(out, ain, opts, _start_s(vin)) if ain is not None else None
            first_t: float | None = None
            n = 0
            counted = 0  # frames decoded so far, for streams without timestamps
            last_t = last_dur = None
            last_pts = None
            durations: dict[int, int] = {}  # output pts -> duration, for the encoded packets
            rotation = 0
            video_done = False
            errors = 0
            order = _InOrder()
            packets = itertools.chain(inp.packets, [None])  # None: the end of the file
            for packet in packets:
                if packet is not None and packet.stream.type == "audio":
                    if audio is not None:
                        if audio.done(packet) and video_done:
                            break
                        audio.offer(out, packet)
                    continue
                if video_done:
                    continue
                if packet is None:
                    timed = order.flush()
                else:
                    try:
                        frames = packet.decode()
                    except (av.error.FFmpegError, ValueError):
                        errors += 1
                        continue
                    timed = []
                    for frame in frames:
                        counted += 1
                        if frame.pts is not None:
                            t_ms = float((frame.pts - s0) * tb) * 1000
                            dur_ms = float(frame.duration * tb) * 1000 if frame.duration else frame_ms
                        elif inp.from_start:
                            t_ms, dur_ms = (counted - 1) * frame_ms, frame_ms
                        else:
                            continue
                        timed += order.push(frame, t_ms, dur_ms)
                for frame, t_ms, dur_ms in timed:
                    # A frame belongs to the span when its middle lies in it.
                    if t_ms + dur_ms / 2 < start_ms:
                        continue
                    if t_ms + dur_ms / 2 >= end_ms:
                        video_done = True
                        break
                    if vout is None:
                        rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                        w, h = frame.width, frame.height
                        if rotation in (90, 270):
                            w, h = h, w
                        vout = out.add_stream(encoder, rate=fps_rate)
                        vout.width, vout.height = _even(w), _even(h)
                        vout.pix_fmt = "yuv420p"
                        vout.time_base = tb
                        vout.codec_context.time_base = tb
                        vopts = {"crf": str(opts.crf)}
                        if preset:
                            vopts["preset"] = str(preset)
                        vout.options = vopts
                        if opts.threads:
                            vout.codec_context.thread_count = opts.threads
                        first_t = t_ms
                        if audio is not None:
                            audio.start(out, first_t / 1000, end_ms / 1000)
                    pts = int(round((t_ms - first_t) / 1000 / tb))
                    if last_pts is not None and pts <= last_pts:
                        continue  # a repeated timestamp: keep the first frame
                    last_pts = pts
                    if rotation:
                        frame = _rotate(frame, rotation)
                    if frame_filter is not None:
                        frame = _filtered(frame, frame_filter)
                    img = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                    img.pts = pts
                    img.time_base = tb
                    # Each frame lasts in the file as long as in the source (the encoder would give every
                    # frame the nominal rate's duration): the file lasts as long as the span it holds.
                    durations[pts] = max(1, int(round(dur_ms / 1000 / tb)))
                    for p in vout.encode(img):
                        _mux_timed(out, p, durations)
                    n += 1
                    last_t, last_dur = t_ms, dur_ms
            if vout is None:
                if errors:
                    raise CutError(
                        "media.decode_error",
                        f"no frame of the span {start_ms}-{end_ms} ms could be decoded ({errors} packet errors)",
                        item=item,
                        fix="the video data is corrupt; fetch or re-encode it",
                    )
                raise CutError(
                    "media.span_past_end",
                    f"no frame of the span {start_ms}-{end_ms} ms is in the file",
                    item=item,
                    fix="the span is past the end of the video; plan clips within its duration",
                )
            for p in vout.encode(None):
                _mux_timed(out, p, durations)
            if audio is not None:
                audio.close(out)
        finally:
            out.close()
    finally:
        inp.close()
    return {
        "method": "reencode",
        "start_ms": int(round(first_t)),
        "end_ms": int(round(last_t + last_dur)),
        "n_video_frames": n,
        "has_audio": audio is not None and audio.n > 0,
        "audio_method": audio.method if audio is not None and audio.n else None,
        "encoder": encoder,
    }


def keyframes_ms(path: str | os.PathLike) -> list[int]:
    """Keyframe times of ``path`` in whole milliseconds (for :func:`cut_clip` and :func:`snap_start`)."""
    from clipfactory.media.probe import keyframe_times

    return [int(round(t * 1000)) for t in keyframe_times(path)]
