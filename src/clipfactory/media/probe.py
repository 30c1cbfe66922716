"""Probe a media file with PyAV: what it holds, and whether it can be decoded at all.

:func:`probe` opens the container, reads the stream headers and decodes the first video frame (so a
missing decoder or an unusable pixel format is found here, not halfway through a stage).
:func:`keyframe_times` lists keyframe times by demuxing packets only, for the cutter.

Every failure is a :class:`MediaProbeError` whose ``reason`` is one of the stable codes in
:data:`REASONS`; the message starts with the code, e.g. ``media.empty_file: file has zero bytes``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from clipfactory.errors import MediaReasonError

log = logging.getLogger(__name__)

REASONS = (
    "media.empty_file",
    "media.not_media",
    "media.no_video_stream",
    "media.truncated",
    "media.unsupported_codec",
    "media.unsupported_pixel_format",
    "media.decode_error",
)

# Leading bytes of container formats we can recognise even when the file is cut short.
_MAGIC = (
    (4, b"ftyp"),  # ISO BMFF: mp4, mov, m4v, 3gp (size box first)
    (0, b"RIFF"),  # avi, wav
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"OggS"),
    (0, b"FLV"),
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"\x47"),  # MPEG-TS sync byte (checked with a second sync below)
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)

_DECODE_PROBE_PACKETS = 400
#: How many timestamps of the video stream tell whether its frame rate varies.
_VFR_SAMPLE = 300

#: Demuxers and codecs FFmpeg uses to open files that are text, and demuxers of still images.
TEXT_DEMUXERS = {"tty"}
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
IMAGE_DEMUXERS = {"image2", "image2pipe"}  # and every "*_pipe" image demuxer


class MediaProbeError(MediaReasonError):
    """A media file cannot be probed or decoded; ``reason`` is one of :data:`REASONS`."""

    REASONS = REASONS



@dataclass(frozen=True)
class ProbeInfo:
    """What a media file holds. Times are in milliseconds; ``None`` means the container does not say.

    ``width``/``height`` are the decoded picture's; ``rotation`` is how many degrees counterclockwise
    (0, 90, 180 or 270) the picture must be turned for display, from the display matrix or the
    legacy ``rotate`` tag. ``is_vfr`` is true when the average frame rate disagrees with the nominal
    one or the first 300 frame timestamps are unevenly spaced: those of the index where it lists every
    frame (MP4, MOV, AVI), else those of the first packets (Matroska and WebM, whose index lists keyframes
    only, MPEG-TS, FLV), read without decoding.
    """

    path: str
    size_bytes: int
    container: str
    video_codec: str
    audio_codecs: tuple[str, ...]
    n_audio_streams: int
    width: int
    height: int
    fps: float
    is_vfr: bool
    duration_ms: int | None
    n_frames: int | None
    rotation: int
    pix_fmt: str | None
    bit_rate: int | None
    start_ms: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after applying the rotation."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height

    def to_dict(self) -> dict:
        d = asdict(self)
        d["audio_codecs"] = list(self.audio_codecs)
        return d


def _looks_like_media(head: bytes) -> bool:
    for offset, magic in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if magic == b"\x47":
                return len(head) > 188 and head[188] == 0x47
            return True
    return False


def open_container(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into a :class:`MediaProbeError`."""
    p = Path(path)
    item = str(p)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MediaProbeError(
            "media.not_media", f"cannot read file ({exc.strerror})", item=item, fix="check the path"
        ) from exc
    if size == 0:
        raise MediaProbeError(
            "media.empty_file", "file has zero bytes", item=item, fix="fetch or copy the file again"
        )
    try:
        return av.open(str(p), "r")
    except av.error.FFmpegError as exc:
        with open(p, "rb") as fh:
            head = fh.read(512)
        if _looks_like_media(head):
            raise MediaProbeError(
                "media.truncated",
                f"container header found but the file cannot be opened ({exc.strerror or exc})",
                item=item,
                fix="the file is incomplete; fetch it again",
            ) from exc
        raise MediaProbeError(
            "media.not_media",
            f"not a media file FFmpeg can read ({exc.strerror or exc})",
            item=item,
            fix="check that the file is a video",
        ) from exc


def _video_stream(container, item: str):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise MediaProbeError(
            "media.no_video_stream",
            f"no video stream (streams: {', '.join(kinds)})",
            item=item,
            fix="only video files can be analysed",
        )
    # Prefer a real video stream over an attached picture (cover art).
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    return container.streams.video[0]


def _ms(value, time_base) -> int | None:
    if value is None or time_base is None:
        return None
    return int(round(float(value * time_base) * 1000))


def _is_vfr(stream, path: str | None = None) -> bool:
    avg, guessed = stream.average_rate, stream.guessed_rate or stream.base_rate
    if avg and guessed and abs(float(avg) - float(guessed)) / float(guessed) > 0.02:
        return True
    # Second opinion: the spread of presentation-time deltas, from the index where it lists every frame (no
    # I/O), else from the first packets of the stream (Matroska's cues and FLV's index list keyframes only,
    # MPEG-TS has none).
    ts = _index_times(stream)
    if ts is None and path is not None:
        ts = _packet_times(path, stream.index)
    return _uneven(ts or [])


def _index_times(stream) -> list[int] | None:
    """The first :data:`_VFR_SAMPLE` presentation times of the index, or ``None`` when the index does not
    list every frame (only keyframes, or nothing)."""
    try:
        entries = stream.index_entries
    except Exception:  # pragma: no cover - formats without an index
        return None
    head = [entries[i] for i in range(min(len(entries), _VFR_SAMPLE))]
    if len(head) < 8 or all(e.is_keyframe for e in head):
        return None
    return [e.timestamp for e in head]


def _packet_times(path: str, index: int) -> list[int]:
    """Presentation times of the first :data:`_VFR_SAMPLE` packets of stream ``index`` of ``path``,
    demuxed in a container of their own (the caller's keeps its position); nothing is decoded."""
    times: list[int] = []
    try:
        with av.open(str(path), "r") as container:
            for packet in container.demux(container.streams[index]):
                if packet.pts is not None and packet.stream.index == index:
                    times.append(packet.pts)
                    if len(times) >= _VFR_SAMPLE:
                        break
    except av.error.FFmpegError:  # a truncated file: what was read before the error still tells
        pass
    return times


def _uneven(ts: list[int]) -> bool:
    ts = sorted(ts)
    if len(ts) < 8:
        return False
    deltas = [b - a for a, b in zip(ts, ts[1:], strict=False) if b > a]
    if not deltas:
        return False
    deltas.sort()
    lo, hi = deltas[len(deltas) // 10], deltas[-1 - len(deltas) // 10]
    return hi > 1.5 * lo


def check_decoder(stream, item: str) -> None:
    """Raise ``media.unsupported_codec`` when FFmpeg has no decoder for ``stream``."""
    name = stream.codec_context.name if stream.codec_context else None
    try:
        av.codec.Codec(name, "r")
    except Exception as exc:
        raise MediaProbeError(
            "media.unsupported_codec",
            f"no decoder for codec {name!r}",
            item=item,
            fix="re-encode the file to H.264 or install an FFmpeg build with this decoder",
        ) from exc


def _first_frame(container, stream, item: str):
    """Decode the first frame of ``stream`` (demuxing at most a few hundred packets)."""
    errors = 0
    last_exc: Exception | None = None
    for n, packet in enumerate(container.demux(stream)):
        if n > _DECODE_PROBE_PACKETS:
            break
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            errors += 1
            last_exc = exc
            continue
        if frames:
            return frames[0]
    if errors and last_exc is not None:
        raise MediaProbeError(
            "media.decode_error",
            f"no frame could be decoded ({errors} packet errors, last: {last_exc})",
            item=item,
            fix="the video data is corrupt; fetch or re-encode it",
        ) from last_exc
    raise MediaProbeError(
        "media.truncated",
        "the video stream holds no decodable frame",
        item=item,
        fix="the file is incomplete; fetch it again",
    )


def probe(path: str | os.PathLike) -> ProbeInfo:
    """Read what ``path`` holds and prove that its first video frame decodes.

    Raises :class:`MediaProbeError` with one of the :data:`REASONS` codes.
    """
    item = str(path)
    with open_container(path) as container:
        stream = _video_stream(container, item)
        header = read_header(container, stream, item)
        stream.thread_type = "AUTO"
        frame = _first_frame(container, stream, item)
        return complete_info(header, frame, stream, item)


def _refuse_non_video(container, stream, item: str) -> None:
    """FFmpeg opens some files that are not video: any text file through its ``tty`` demuxer (as ANSI
    art), and still images through its image demuxers."""
    fmt = container.format.name
    codec = stream.codec_context.name if stream.codec_context else ""
    if fmt in TEXT_DEMUXERS or codec in TEXT_CODECS:
        raise MediaProbeError(
            "media.not_media",
            f"a text file, not media (FFmpeg reads it as {fmt}/{codec})",
            item=item,
            fix="check that the file is a video",
        )
    if fmt in IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        raise MediaProbeError(
            "media.no_video_stream",
            f"a still image ({codec}), not a video",
            item=item,
            fix="only video files can be analysed",
        )


def read_header(container, stream, item: str) -> dict:
    """What the container says about ``stream`` without decoding: the fields of :class:`ProbeInfo`
    except those read from the first frame. Raises for a missing decoder or a truncated index."""
    _refuse_non_video(container, stream, item)
    check_decoder(stream, item)
    size = Path(item).stat().st_size
    cc = stream.codec_context
    tb = stream.time_base
    duration_ms = _ms(stream.duration, tb)
    if duration_ms is None and container.duration is not None:
        duration_ms = int(round(container.duration / 1000))
    fps_rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    audio = list(container.streams.audio)
    bit_rate = container.bit_rate or cc.bit_rate or None
    if _index_past_end(stream, size):
        raise MediaProbeError(
            "media.truncated",
            f"the index points past the end of the file ({size} bytes)",
            item=item,
            fix="the file is incomplete; fetch it again",
        )
    return {
        "path": item,
        "size_bytes": size,
        "container": container.format.name,
        "video_codec": cc.name,
        "audio_codecs": tuple((s.codec_context.name if s.codec_context else "unknown") for s in audio),
        "n_audio_streams": len(audio),
        "width": int(cc.width),
        "height": int(cc.height),
        "fps": float(fps_rate) if fps_rate else 0.0,
        "is_vfr": _is_vfr(stream, item),
        "duration_ms": duration_ms,
        "n_frames": stream.frames or None,  # None: the container does not count frames
        "bit_rate": int(bit_rate) if bit_rate else None,
        "start_ms": _ms(stream.start_time, tb) or 0,
    }


def complete_info(header: dict, frame, stream, item: str) -> ProbeInfo:
    """:class:`ProbeInfo` from :func:`read_header` and the first decoded frame (pixel format,
    rotation, size). Raises ``media.unsupported_pixel_format``."""
    from clipfactory.media.decode import check_pixel_format

    pix_fmt = frame.format.name
    check_pixel_format(pix_fmt, item)
    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    if not rotation:
        try:
            # The legacy 'rotate' tag is clockwise; ``rotation`` is counterclockwise.
            rotation = -int(stream.metadata.get("rotate", 0)) % 360
        except ValueError:
            rotation = 0
    fields = dict(header)
    fields.update(
        width=int(frame.width or header["width"]),
        height=int(frame.height or header["height"]),
        rotation=rotation,
        pix_fmt=pix_fmt,
    )
    return ProbeInfo(**fields)


def _index_past_end(stream, size: int) -> bool:
    """True when the container index (mp4 ``moov`` first) points at data beyond the file's end."""
    try:
        entries = stream.index_entries
    except Exception:  # pragma: no cover
        return False
    if not entries:
        return False
    last = max(entries[-1].pos + entries[-1].size, entries[len(entries) // 2].pos)
    return last > size


def keyframe_times(path: str | os.PathLike) -> list[float]:
    """Presentation times (seconds, sorted) of the video keyframes, from packets only (no decode).

    Times are relative to the stream's start, so they line up with :class:`ProbeInfo` durations and
    with the frame times of :func:`clipfactory.media.analyse.analyse`.
    """
    item = str(path)
    with open_container(path) as container:
        stream = _video_stream(container, item)
        tb = stream.time_base or Fraction(1, 1)
        start = stream.start_time or 0
        times = []
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None:
                times.append(float((packet.pts - start) * tb))
    return sorted(set(round(t, 6) for t in times))
