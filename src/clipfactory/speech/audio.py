"""A source's first audio stream, demuxed once and resampled to 16 kHz mono float32 with PyAV.

Damaged packets are skipped and counted (like the video decode of :mod:`clipfactory.media.decode`); a
file without an audio stream gives an empty track with ``has_audio`` false, never an error. A file that
cannot be opened at all raises :class:`~clipfactory.media.probe.MediaProbeError`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import av
import numpy as np

from clipfactory.media.decode import DecodeStats, iter_frames
from clipfactory.media.probe import open_container

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass
class AudioTrack:
    """Mono float32 samples at :data:`SAMPLE_RATE` from ``start_ms`` on."""

    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    start_ms: int = 0
    has_audio: bool = False
    codec: str | None = None
    decode_errors: int = 0
    last_error: str | None = None

    @property
    def duration_ms(self) -> int:
        return int(round(len(self.samples) * 1000 / SAMPLE_RATE))

    def window(self, start_ms: int, end_ms: int) -> np.ndarray:
        """The samples of ``[start_ms, end_ms)`` (clipped to what the track holds)."""
        a = max(0, int(round((start_ms - self.start_ms) * SAMPLE_RATE / 1000)))
        b = max(a, int(round((end_ms - self.start_ms) * SAMPLE_RATE / 1000)))
        return self.samples[a:b]


def load_audio(
    path: str | os.PathLike, *, start_ms: int | None = None, end_ms: int | None = None
) -> AudioTrack:
    """Decode ``path``'s first audio stream (between ``start_ms`` and ``end_ms`` when given) to 16 kHz mono.

    Times are on the video's time line (zero at the video stream's first timestamp, as the analysis pass
    counts them). Seeks to ``start_ms`` when it is given, so a clip late in a long file does not decode
    everything before it; samples before ``start_ms`` that the seek brings are cut off.
    """
    container = open_container(path)
    try:
        if not container.streams.audio:
            return AudioTrack(start_ms=start_ms or 0)
        stream = container.streams.audio[0]
        track = AudioTrack(start_ms=start_ms or 0, has_audio=True, codec=stream.codec_context.name)
        # Times are on the video's time line (as the analysis pass and the cutter count them): zero is the
        # video stream's first timestamp, and audio that starts later is padded with silence.
        ref = container.streams.video[0] if container.streams.video else stream
        origin_s = float(ref.start_time * ref.time_base) if ref.start_time is not None and ref.time_base else 0.0
        if start_ms:
            try:  # AV_TIME_BASE microseconds, on the container's clock
                container.seek(int((origin_s + start_ms / 1000) * 1_000_000), any_frame=False, backward=True)
            except av.error.FFmpegError as exc:
                log.debug("audio seek failed, decoding from the start: %s", exc)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        first_s: float | None = None
        end_s = end_ms / 1000 if end_ms is not None else None
        stats = DecodeStats()
        for frame in iter_frames(container, stream, stats):  # damaged packets skipped, demux errors end it
            t = float(frame.pts * frame.time_base) - origin_s if frame.pts is not None and frame.time_base else None
            if end_s is not None and t is not None and t > end_s + 1.0:
                break
            if first_s is None:
                first_s = t if t is not None else 0.0
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        track.decode_errors += stats.errors
        track.last_error = stats.last_error or track.last_error
        try:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError):
            pass
    finally:
        container.close()
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    first_ms = int(round((first_s or 0.0) * 1000))
    want = start_ms or 0
    if first_ms < want:  # the seek landed before the start: drop the extra samples
        samples = samples[int(round((want - first_ms) * SAMPLE_RATE / 1000)) :]
    elif first_ms > want:  # the audio starts later than asked: pad with silence so times line up
        samples = np.concatenate([np.zeros(int(round((first_ms - want) * SAMPLE_RATE / 1000)), np.float32), samples])
    if end_ms is not None:
        samples = samples[: max(0, int(round((end_ms - want) * SAMPLE_RATE / 1000)))]
    track.samples = np.ascontiguousarray(samples)
    if not np.all(np.isfinite(track.samples)):
        track.samples = np.nan_to_num(track.samples, nan=0.0, posinf=0.0, neginf=0.0)
    return track
