"""PDQ hashes of a query file: the fingerprint-only decode used by lookups, tombstones and verify.

Catalog sources are never decoded here: their hashes come from the single analysis pass
(:mod:`clipfactory.media.analyse`) through the per-frame blob. A *query* file (a creator's video, a
shard member) has no analysis pass, so :func:`sample_file` decodes it and hashes the luma plane exactly
as the analysis pass does (the same subsampling rule and ``pdqhash.compute`` on luma), so that query and
catalog hashes are comparable.

A query is hashed at every frame (the catalog holds about one hash a second). PDQ of moving footage
changes within one or two frames, and a copy's catalog samples can fall on any frame of the query, so
only dense hashing guarantees that the very frames the catalog hashed are among the query's.

Black bars (letterbox, pillarbox) are rows and columns at the edges that stay dark in every sampled
frame. Each frame is hashed with and without them, and a catalog frame matches the query frame when
either hash matches. Without its bars, the picture is cut from the full-resolution luma and subsampled
with the step the analysis pass would use for a video of the picture's size: a pillarboxed copy is
wider than its picture, and subsampling the picture with the wider frame's step alone costs PDQ about
30 bits. The bars a frame is cut with are those of every frame so far and of the opening
:data:`BAR_LOOKAHEAD` frames with a picture (read once before the frames are hashed), so a video that
opens with black frames (a fade-in, a black leader) or with dark edges has its bars from the start;
they only narrow as the video goes on (bars a row too wide cost PDQ a few bits).

``mirror=True`` adds the PDQ of each frame flipped left to right (the horizontal-mirror hash of PDQ's
dihedral variants, ``pdqhash.compute_dihedral``: computed from the same DCT, at no extra cost), with and
without the bars, so that mirrored copies can be matched (:mod:`~clipfactory.fingerprints.lookup`).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MediaError
from . import pdq as _pdq
from .hashes import MIN_QUALITY

log = logging.getLogger(__name__)

#: Flags of :attr:`QueryHashes.variant`: the hash is of the frame without its black bars / mirrored.
BARS_REMOVED = 1
MIRRORED = 2
#: Position of the left-right mirror among the eight hashes of ``pdqhash.compute_dihedral``.
DIHEDRAL_MIRROR = _pdq.DIHEDRAL_MIRROR

#: Mean luma at or below which a row or column counts as a black bar (limited-range black is 16).
BAR_LUMA = 28.0
#: Bars thinner than this share of the frame are ignored.
MIN_BAR_SHARE = 0.03


@dataclass
class QueryHashes:
    """Hashes of one query. ``frame`` numbers the sampled frames; variants of one frame share it."""

    path: str
    duration_ms: int
    n_sampled: int
    times_ms: np.ndarray  # int64[k] per hash
    frame: np.ndarray  # int32[k] sampled frame number per hash
    hashes: np.ndarray  # uint8[k, 32]
    quality: np.ndarray  # int32[k]
    variant: np.ndarray  # int8[k]: bit flags, BARS_REMOVED | MIRRORED (0: the full frame as decoded)
    bars: tuple[int, int, int, int] | None = None  # top, bottom, left, right in pixels of the video
    info: dict[str, Any] = field(default_factory=dict)

    def select(self, keep: np.ndarray) -> QueryHashes:
        """The hashes where ``keep`` (a boolean mask or indices) holds."""
        return QueryHashes(
            self.path,
            self.duration_ms,
            self.n_sampled,
            self.times_ms[keep],
            self.frame[keep],
            self.hashes[keep],
            self.quality[keep],
            self.variant[keep],
            self.bars,
            self.info,
        )

    def usable(self, min_quality: int = MIN_QUALITY) -> QueryHashes:
        return self.select(self.quality >= min_quality)

    @property
    def mirrored(self) -> np.ndarray:
        """``bool[k]``: which hashes are of the frame flipped left to right."""
        return (self.variant & MIRRORED) != 0

    @property
    def n_usable_frames(self) -> int:
        return int(len(np.unique(self.frame)))

    def frame_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct sampled frames (numbers, times) among the hashes."""
        fr, idx = np.unique(self.frame, return_index=True)
        return fr, self.times_ms[idx]


_HEAP_STEADY = False


def steady_heap() -> None:
    """Keep glibc's heap steady while frames are hashed (once per process; a no-op elsewhere).

    ``pdqhash.compute`` allocates and frees about 2 MB of temporaries per frame. Depending on what else
    lives on the heap, glibc then trims the heap top after every frame and grows it again at the next,
    and the page faults double the hashing time (5 s against 10 s for a 5-minute query). Fixed limits,
    allocations below 4 MB from the heap and trims only above 32 MB free, make the cost the same
    whatever the heap holds; at most 32 MB of freed memory stays with the process.
    """
    global _HEAP_STEADY
    if _HEAP_STEADY:
        return
    _HEAP_STEADY = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 4 << 20)
        libc.mallopt(m_trim_threshold, 32 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def pdq_of_luma(y8: np.ndarray) -> tuple[bytes, int]:
    """PDQ of an 8-bit luma image, as the analysis pass computes it: ``(32 bytes, quality)``
    (:func:`clipfactory.fingerprints.pdq.pdq_of_luma`)."""
    return _pdq.pdq_of_luma(y8)


def pdq_and_mirror_of_luma(y8: np.ndarray) -> tuple[bytes, bytes, int]:
    """PDQ of an 8-bit luma image and of the image flipped left to right: ``(hash, mirrored, quality)``.

    Both come from one dihedral computation (``pdqhash.compute_dihedral``); the first is identical to
    :func:`pdq_of_luma`'s. The mirrored hash is derived from the image's DCT, so it differs from the PDQ
    of a flipped copy by a few bits (0 in most frames, up to about 16).
    """
    return _pdq.pdq_and_mirror_of_luma(y8)


class BarFinder:
    """Running detection of black bars common to every frame: ``(top, bottom, left, right)`` in pixels.

    A row (column) is a bar when its mean luma stays at or below ``bar_luma`` in every frame seen.
    Bars are reported only when the rest of the frame has content and they cover at least
    :data:`MIN_BAR_SHARE` of the height (width) on some side.
    """

    def __init__(self, bar_luma: float = BAR_LUMA):
        self.bar_luma = bar_luma
        self.row_max: np.ndarray | None = None
        self.col_max: np.ndarray | None = None

    def add(self, y: np.ndarray) -> None:
        rows, cols = y.mean(axis=1), y.mean(axis=0)
        if self.row_max is None or self.row_max.shape != rows.shape or self.col_max.shape != cols.shape:
            if self.row_max is not None:
                return  # frame size changed mid-stream: keep the first size's statistics
            self.row_max, self.col_max = rows, cols
            return
        np.maximum(self.row_max, rows, out=self.row_max)
        np.maximum(self.col_max, cols, out=self.col_max)

    def bars(self) -> tuple[int, int, int, int] | None:
        if self.row_max is None:
            return None
        rows = np.flatnonzero(self.row_max > self.bar_luma)
        cols = np.flatnonzero(self.col_max > self.bar_luma)
        if not len(rows) or not len(cols):
            return None
        h, w = len(self.row_max), len(self.col_max)
        top, bottom = int(rows[0]), int(h - 1 - rows[-1])
        left, right = int(cols[0]), int(w - 1 - cols[-1])
        if max(top, bottom) < MIN_BAR_SHARE * h and max(left, right) < MIN_BAR_SHARE * w:
            return None
        if (h - top - bottom) < 0.3 * h or (w - left - right) < 0.3 * w:
            return None
        return top, bottom, left, right


def find_bars(lumas: list[np.ndarray], bar_luma: float = BAR_LUMA) -> tuple[int, int, int, int] | None:
    """Black bars common to every frame of ``lumas`` (see :class:`BarFinder`)."""
    finder = BarFinder(bar_luma)
    for y in lumas:
        finder.add(y)
    return finder.bars()


#: FFmpeg demuxers that open files which are not video: text rendered as ANSI art, still images.
NOT_VIDEO_CONTAINERS = {"tty", "image2", "image2pipe"}
NOT_VIDEO_CODECS = {"ansi", "bintext", "xbin", "idf"}


def probe_video(path: str | os.PathLike):
    """:func:`~clipfactory.media.probe.probe`, refusing what FFmpeg opens but is not a video: text files
    (FFmpeg's ``tty`` demuxer renders any text as ANSI art) and still images."""
    from ..media.probe import MediaProbeError, probe

    info = probe(path)
    if (
        info.container in NOT_VIDEO_CONTAINERS
        or info.container.endswith("_pipe")
        or info.video_codec in NOT_VIDEO_CODECS
    ):
        kind = (
            "a text file"
            if info.video_codec in NOT_VIDEO_CODECS or info.container == "tty"
            else "a still image"
        )
        raise MediaProbeError(
            "media.not_media",
            f"{kind} ({info.container}/{info.video_codec}), not a video",
            item=str(path),
            fix="give a video file",
        )
    return info


#: Frames with a picture (not all black) read from the start of a query to estimate its bars before
#: any frame is hashed; at most :data:`BAR_PRESCAN_MAX` frames are decoded for it.
BAR_LOOKAHEAD = 75
BAR_PRESCAN_MAX = 300


def _prescan_bars(path, pdq_width: int, finder: BarFinder) -> None:
    """Feed ``finder`` the opening frames of ``path`` (see :data:`BAR_LOOKAHEAD`)."""
    from ..media.decode import DecodeStats, PlaneReader, iter_frames

    with _open(path) as (container, stream):
        stream.thread_type = "AUTO"
        step = max(1, int(round((stream.codec_context.width or pdq_width) / pdq_width)))
        reader = None
        seen = pictures = 0
        for frame in iter_frames(container, stream, DecodeStats()):
            if reader is None:
                reader = PlaneReader(frame.format.name, step)
            y = reader.luma_u8(frame, step)
            finder.add(y)
            seen += 1
            pictures += bool(y.max() > finder.bar_luma)
            if pictures >= BAR_LOOKAHEAD or seen >= BAR_PRESCAN_MAX:
                break


def sample_file(
    path: str | os.PathLike,
    *,
    fps: float = 0.0,
    pdq_width: int = 320,
    max_frames: int = 9000,
    remove_bars: bool = True,
    mirror: bool = False,
) -> QueryHashes:
    """Decode ``path`` and hash ``fps`` frames per second (0: every frame), ``max_frames`` at most.

    ``remove_bars`` adds the hashes of frames without their black bars (the opening frames are then
    decoded twice, once to estimate the bars), ``mirror`` those of mirrored frames (see the module
    docstring).

    Raises :class:`~clipfactory.media.probe.MediaProbeError` (``media.not_media``,
    ``media.no_video_stream``, ...) for files that are not video.
    """
    info = probe_video(path)
    stream_fps = info.fps or 25.0
    fps = min(fps, stream_fps) if fps else stream_fps
    duration_s = (info.duration_ms or 0) / 1000.0
    if duration_s * fps > max_frames:
        fps = max_frames / duration_s
    finder = None
    if remove_bars:
        finder = BarFinder()
        _prescan_bars(path, pdq_width, finder)
    with _open(path) as (container, stream):
        return _sample(container, stream, str(path), info, fps, pdq_width, finder, mirror=mirror)


def sample_bytes(
    data: bytes, *, name: str = "<bytes>", fps: float = 1.0, pdq_width: int = 320, max_frames: int = 8
) -> QueryHashes:
    """Hash frames of an in-memory video (a shard member): ``max_frames`` frames at most, from the start."""
    import av

    from ..media.probe import _video_stream

    try:
        container = av.open(io.BytesIO(data), "r")
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a video FFmpeg can read ({exc})", item=name) from exc
    with container:
        stream = _video_stream(container, name)
        width = stream.codec_context.width or pdq_width
        info = _Info(width=width, duration_ms=None, fps=float(stream.average_rate or 25))
        return _sample(container, stream, name, info, fps, pdq_width, None, max_frames=max_frames)


@dataclass
class _Info:
    width: int
    duration_ms: int | None
    fps: float


class _open:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        from ..media.probe import _video_stream, open_container

        self.container = open_container(self.path)
        return self.container, _video_stream(self.container, str(self.path))

    def __exit__(self, *exc):
        self.container.close()


def _full_luma(reader, frame) -> np.ndarray:
    """The luma plane of ``frame`` at full resolution, as uint8 (a view for 8-bit planar formats)."""
    from ..media.decode import plane_view

    if reader.fallback or reader.wide:
        return reader.luma_u8(frame, 1)
    return plane_view(frame, 0)


def _sample(
    container, stream, item, info, fps, pdq_width, finder: BarFinder | None, max_frames=None, mirror=False
) -> QueryHashes:
    """Hash the sampled frames of an open stream; with a ``finder``, also without their black bars."""
    from ..media.decode import DecodeStats, PlaneReader, iter_frames

    steady_heap()
    stream.thread_type = "AUTO"
    stats = DecodeStats()
    step = max(1, int(round((info.width or pdq_width) / pdq_width)))
    stream_fps = info.fps or 25.0
    tb = float(stream.time_base) if stream.time_base else 1.0 / stream_fps
    start_pts = stream.start_time
    interval = 1.0 / fps if fps < stream_fps * 0.99 else 0.0
    reader = None
    next_t = 0.0
    rows: list[tuple[int, int, bytes, int, int]] = []
    full_box: tuple[int, int, int, int] | None = None

    def hash_image(k: int, t: int, y: np.ndarray, flags: int) -> None:
        if mirror:
            h, hm, q = pdq_and_mirror_of_luma(y)
            rows.append((k, t, h, q, flags))
            rows.append((k, t, hm, q, flags | MIRRORED))
        else:
            h, q = pdq_of_luma(y)
            rows.append((k, t, h, q, flags))

    n = -1
    k = 0
    for frame in iter_frames(container, stream, stats):
        n += 1
        if frame.pts is not None and start_pts is None:
            start_pts = frame.pts
        t = (frame.pts - start_pts) * tb if frame.pts is not None else n / stream_fps
        if t + 1e-6 < next_t:
            continue
        if reader is None:
            reader = PlaneReader(frame.format.name, step)
        y = reader.luma_u8(frame, step)
        t_ms = int(round(t * 1000))
        next_t = t + interval - 0.5 / stream_fps if interval else 0.0
        hash_image(k, t_ms, y, 0)
        if finder is not None:
            finder.add(y)
            box = finder.bars()
            if box is not None:
                full = _full_luma(reader, frame)
                top, bottom, left, right = box
                # from the first to the last picture row (column) of the subsampled plane, in full-resolution
                # pixels; a side without a bar keeps every pixel
                h, w = full.shape
                r0, r1 = top * step, (h if not bottom else (y.shape[0] - 1 - bottom) * step + 1)
                c0, c1 = left * step, (w if not right else (y.shape[1] - 1 - right) * step + 1)
                full_box = (r0, h - r1, c0, w - c1)
                pstep = max(1, int(round((c1 - c0) / pdq_width)))
                hash_image(k, t_ms, np.ascontiguousarray(full[r0:r1:pstep, c0:c1:pstep]), BARS_REMOVED)
        k += 1
        if max_frames is not None and k >= max_frames:
            break
    if k == 0:
        raise MediaError(
            "no frame could be decoded" + (f" ({stats.last_error})" if stats.last_error else ""),
            item=item,
            fix="the video data is corrupt; fetch or re-encode it",
        )
    bars = full_box if finder is not None and finder.bars() is not None else None
    times = [r[1] for r in rows]
    duration_ms = info.duration_ms or (times[-1] + int(round(1000 / stream_fps)))
    return QueryHashes(
        path=item,
        duration_ms=int(duration_ms),
        n_sampled=k,
        times_ms=np.array(times, np.int64),
        frame=np.array([r[0] for r in rows], np.int32),
        hashes=np.frombuffer(b"".join(r[2] for r in rows), np.uint8).reshape(-1, 32).copy(),
        quality=np.array([r[3] for r in rows], np.int32),
        variant=np.array([r[4] for r in rows], np.int8),
        bars=bars,
        info={"decode_errors": stats.errors, "fps": round(fps, 3)},
    )
