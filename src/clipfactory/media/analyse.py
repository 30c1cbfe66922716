"""The single analysis pass: one decode of the video computes every per-frame signal.

:func:`analyse` decodes each frame once and, on a subsampled view of its planes (no conversion),
computes shot boundaries (hard cuts, fades, dissolves), motion, sharpness, mean luma, black and
static frames, PDQ perceptual hashes about once a second, one JPEG thumbnail per shot, and, behind
the ``ocr`` extra, the share of sampled frames that carry text overlays.

Frames stream through: memory holds per-frame scalars, a ring of a few subsampled luma planes, and a
bounded set of thumbnail candidates per open shot, whatever the video's length.

See ``docs/analyse.md`` for what each number means and how to tune the thresholds.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clipfactory.errors import require
from clipfactory.media.decode import DecodeStats, PlaneReader, iter_frames
from clipfactory.media.probe import (
    MediaProbeError,
    ProbeInfo,
    _video_stream,
    complete_info,
    open_container,
    read_header,
)
from clipfactory.media.shots import DetectorParams, ShotDetector

log = logging.getLogger(__name__)

TRANSITIONS = ("cut", "fade", "dissolve", "end")


class AnalyseConfig(BaseModel):
    """Settings of the analysis pass. Luma values are on the 0-255 scale of 8-bit video."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    analysis_width: int = Field(
        160,
        ge=16,
        le=1920,
        description="Approximate width in pixels of the subsampled planes that every per-frame signal is "
        "computed on. The luma plane is read every round(width / analysis_width) pixels.",
    )
    cut_min_score: float = Field(
        12.0,
        ge=0,
        description="Smallest frame-to-frame change (mean absolute difference of luma plus both chroma "
        "planes) that can be a hard cut.",
    )
    cut_adaptive_ratio: float = Field(
        3.0,
        gt=1,
        description="A hard cut's change must be this many times the mean change of the frames around it. "
        "Raise it if fast motion gives false cuts; lower it to catch cuts between similar shots.",
    )
    cut_window: int = Field(2, ge=1, le=10, description="Frames on each side used for the adaptive ratio.")
    flash_ratio: float = Field(
        0.35,
        ge=0,
        le=1,
        description="A step into or out of a one-frame anomaly (a flash, a corrupt frame) is not a cut: a "
        "frame is such an anomaly when the frames before and after it differ by less than this share of "
        "the step. Raise it if flashes still give cuts; lower it if cuts next to a flash are missed.",
    )
    black_luma: float = Field(
        24.0,
        ge=0,
        le=255,
        description="A frame is black when its mean luma is below this and under black_bright_share of its "
        "pixels are brighter than black_luma + black_bright_margin. Limited-range video is black at 16.",
    )
    black_bright_margin: float = Field(
        24.0,
        ge=0,
        le=255,
        description="Luma above black_luma at which a pixel counts as bright in the black-frame test "
        "(credits or a logo on black).",
    )
    black_bright_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Largest share of bright pixels a black frame may have; raise it for black frames "
        "that carry text.",
    )
    dissolve_window: int = Field(
        10,
        ge=4,
        le=60,
        description="Span in frames over which a gradual transition is tested for a linear blend.",
    )
    dissolve_min_change: float = Field(
        10.0,
        ge=0,
        description="Smallest mean absolute luma change across dissolve_window frames to consider a dissolve.",
    )
    dissolve_max_error: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Largest distance of the middle frame from the average of the two ends, as a share of "
        "the change, for a window to count as a blend. Lower is stricter.",
    )
    dissolve_step_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="In a blend window, every frame-to-frame change must stay under this share of the "
        "window's change (plus dissolve_step_slack): a blend spreads its change over the window, a cut "
        "inside a pan does not. Lower is stricter.",
    )
    dissolve_step_slack: float = Field(
        2.0,
        ge=0,
        description="Change added to the dissolve_step_share limit, so that the noise and motion of a "
        "blend's frames do not fail a weak dissolve.",
    )
    dissolve_min_frames: int = Field(
        3, ge=1, description="Consecutive blend windows needed to report a dissolve or fade."
    )
    min_shot_frames: int = Field(
        6, ge=1, description="Shortest shot in frames; closer boundaries are merged into one."
    )
    static_threshold: float = Field(
        0.5,
        ge=0,
        description="A frame is static when its mean absolute luma difference to the previous frame is "
        "below this.",
    )
    pdq_interval_s: float = Field(
        1.0, gt=0, description="Seconds between PDQ perceptual hashes (the first frame is always hashed)."
    )
    pdq_width: int = Field(320, ge=64, description="Approximate width of the luma image that PDQ hashes.")
    thumbnail_width: int = Field(
        320, ge=16, description="Width in pixels of the JPEG thumbnail of each shot's middle frame."
    )
    thumbnail_quality: int = Field(80, ge=10, le=95, description="JPEG quality of the thumbnails.")
    detect_text: bool = Field(
        False,
        description="Detect burned-in text on sampled frames (needs the 'ocr' extra: rapidocr-onnxruntime).",
    )
    text_interval_s: float = Field(
        1.0, gt=0, description="Seconds between frames sampled for text detection."
    )
    text_min_score: float = Field(0.6, ge=0, le=1, description="OCR confidence for a text box to count.")
    skip_loop_filter: bool = Field(
        True,
        description="Ask the decoder to skip its in-loop deblocking filter (H.264/HEVC): about 30% less "
        "decode time on 720p H.264. Every frame is still decoded; pictures differ from the reference "
        "decode only by blocking at macroblock edges, which the subsampled statistics, PDQ and the "
        "small thumbnails barely see. Turn off for bit-exact pictures.",
    )
    skip_nonref: bool = Field(
        False,
        description="Coarse mode: decode only reference frames (FFmpeg skip_frame=NONREF). Faster on "
        "streams with B-frames, but boundaries are exact only to the spacing of reference frames, frame "
        "indices come from timestamps, and cuts can be missed.",
    )

    def detector_params(self) -> DetectorParams:
        return DetectorParams(
            cut_min_score=self.cut_min_score,
            cut_adaptive_ratio=self.cut_adaptive_ratio,
            cut_window=self.cut_window,
            black_luma=self.black_luma,
            dissolve_window=self.dissolve_window,
            dissolve_min_change=self.dissolve_min_change,
            dissolve_max_error=self.dissolve_max_error,
            dissolve_min_frames=self.dissolve_min_frames,
            dissolve_step_share=self.dissolve_step_share,
            dissolve_step_slack=self.dissolve_step_slack,
            flash_ratio=self.flash_ratio,
            min_shot_frames=self.min_shot_frames,
        )


@dataclass(frozen=True)
class Shot:
    """One shot: frames ``start_frame`` (inclusive) to ``end_frame`` (exclusive).

    ``start_ms``/``end_ms`` follow the same convention (``end_ms`` is when the next shot starts).
    ``transition_out`` is how the shot ends: ``cut``, ``fade``, ``dissolve``, or ``end``.
    ``motion`` is the mean absolute luma difference between consecutive frames (0-255 scale);
    ``sharpness`` the mean variance of the Laplacian of the subsampled luma; ``luma`` the mean luma;
    ``black_fraction``/``static_fraction`` shares of frames; ``text_fraction`` the share of sampled
    frames with text (``None`` when text detection is off); ``thumbnail`` a JPEG of the middle frame.
    """

    index: int
    start_frame: int
    end_frame: int
    start_ms: int
    end_ms: int
    transition_out: str
    motion: float
    sharpness: float
    luma: float
    black_fraction: float
    static_fraction: float
    text_fraction: float | None = None
    thumbnail: bytes | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self, thumbnail: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not thumbnail:
            d.pop("thumbnail")
        return d


@dataclass(frozen=True)
class PdqHash:
    """A PDQ hash: 256 bits as 64 hex characters, with PDQ's quality score (0-100)."""

    frame_index: int
    time_ms: int
    hash_hex: str
    quality: int


SCORE_KEYS = ("motion", "sharpness", "luma", "black_fraction", "static_fraction", "text_fraction")


@dataclass(frozen=True, eq=False)
class FrameSignals:
    """The per-frame signals of the pass, kept so that any span's scores come from the same decode.

    One entry per decoded frame: ``time_ms`` (rounded as the shot times are), ``motion`` (mean absolute
    luma difference to the previous decoded frame; 0 for the first), ``sharpness`` (NaN on frames that
    were not sampled), ``luma``, ``black`` and ``static``. ``text_ms``/``text_has`` are the frames sampled
    for text and whether they carry any (``None`` when text detection is off). About 18 bytes a frame.
    """

    time_ms: np.ndarray  # int32
    motion: np.ndarray  # float32
    sharpness: np.ndarray  # float32
    luma: np.ndarray  # float32
    black: np.ndarray  # bool
    static: np.ndarray  # bool
    text_ms: np.ndarray | None = None  # int32
    text_has: np.ndarray | None = None  # bool

    def span_scores(self, start_ms: int, end_ms: int) -> dict[str, float | None]:
        """The scores of the frames shown in ``[start_ms, end_ms)``, as a shot's are of its frames.

        ``motion`` and ``static_fraction`` count the frame-to-frame steps inside the span (the step into
        its first frame comes from outside it); a span of one frame uses that frame. Sharpness and text
        come from the sampled frames in the span, or from the sample nearest its middle when none falls
        inside. Empty when the span holds no frame.
        """
        lo, hi = (int(x) for x in np.searchsorted(self.time_ms, [start_ms, end_ms]))
        if hi <= lo:
            return {}
        steps = slice(lo + 1, hi) if hi - lo > 1 else slice(lo, hi)
        sharp = self.sharpness[lo:hi]
        sharp = sharp[~np.isnan(sharp)]
        if not sharp.size:
            sampled = np.flatnonzero(~np.isnan(self.sharpness))
            if sampled.size:
                mid = (lo + hi - 1) / 2
                sharp = self.sharpness[sampled[np.argmin(np.abs(sampled - mid))]][None]
        text = None
        if self.text_ms is not None and self.text_has is not None and self.text_ms.size:
            t0, t1 = (int(x) for x in np.searchsorted(self.text_ms, [start_ms, end_ms]))
            if t1 > t0:
                text = round(float(self.text_has[t0:t1].mean()), 4)
            else:
                mid_ms = (start_ms + end_ms) / 2
                text = float(self.text_has[np.argmin(np.abs(self.text_ms - mid_ms))])
        return {
            "motion": round(float(self.motion[steps].mean()), 4),
            "sharpness": round(float(sharp.mean()), 3) if sharp.size else 0.0,
            "luma": round(float(self.luma[lo:hi].mean()), 3),
            "black_fraction": round(float(self.black[lo:hi].mean()), 4),
            "static_fraction": round(float(self.static[steps].mean()), 4),
            "text_fraction": text,
        }


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the analysis pass found in one video.

    ``signals`` holds the per-frame signals (not part of :meth:`to_dict`); :meth:`span_scores` gives the
    scores of any time span from them.
    """

    probe: ProbeInfo
    fps: float
    n_frames: int
    duration_ms: int
    shots: list[Shot]
    pdq: list[PdqHash]
    decode_errors: int
    config: dict[str, Any] = field(default_factory=dict)
    signals: FrameSignals | None = field(default=None, repr=False, compare=False)

    def span_scores(self, start_ms: int, end_ms: int) -> dict[str, float | None]:
        """Scores of the frames in ``[start_ms, end_ms)`` (see :meth:`FrameSignals.span_scores`); without
        per-frame signals, the overlap-weighted mean of the scores of the shots the span overlaps."""
        if self.signals is not None:
            scores = self.signals.span_scores(start_ms, end_ms)
            if scores:
                return scores
        weights = [(sh, max(0, min(end_ms, sh.end_ms) - max(start_ms, sh.start_ms))) for sh in self.shots]
        weights = [(sh, w) for sh, w in weights if w > 0]
        scores: dict[str, float | None] = {}
        if not weights:
            return scores
        for key in SCORE_KEYS:
            vals = [(getattr(sh, key), w) for sh, w in weights if getattr(sh, key) is not None]
            scores[key] = sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else None
        return scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe.to_dict(),
            "fps": self.fps,
            "n_frames": self.n_frames,
            "duration_ms": self.duration_ms,
            "decode_errors": self.decode_errors,
            "shots": [s.to_dict() for s in self.shots],
            "pdq": [asdict(p) for p in self.pdq],
            "config": self.config,
        }

    def to_json(self) -> str:
        """JSON of the result without the binary thumbnails."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @property
    def boundaries(self) -> list[int]:
        """First frame of every shot after the first."""
        return [s.start_frame for s in self.shots[1:]]


class _ThumbSampler:
    """Keeps a bounded, evenly thinned set of frame references for the open shot.

    Frames are offered in order; every ``step``-th frame since the shot start is kept, and when more
    than ``keep`` are held every other one is dropped and ``step`` doubles. A ring of every other one
    of the latest ``2 * recent`` frames covers boundaries that are settled some frames late.
    """

    def __init__(self, keep: int = 12, recent: int = 24):
        self.keep = keep
        self.start = 0
        self.step = 1
        self.cands: list[tuple[int, av.VideoFrame]] = []
        self.recent: deque[tuple[int, av.VideoFrame]] = deque(maxlen=recent)

    def offer(self, idx: int, frame: av.VideoFrame) -> None:
        if idx % 2 == 0:
            self.recent.append((idx, frame))
        if (idx - self.start) % self.step:
            return
        self.cands.append((idx, frame))
        if len(self.cands) > self.keep:
            self.step *= 2
            self.cands = [c for c in self.cands if (c[0] - self.start) % self.step == 0]

    def split(self, b: int) -> av.VideoFrame | None:
        """Close the shot ``[self.start, b)`` and return the held frame nearest its middle."""
        mid = (self.start + b - 1) / 2
        pool = [c for c in self.cands if self.start <= c[0] < b]
        pool += [c for c in self.recent if self.start <= c[0] < b]
        best = min(pool, key=lambda c: abs(c[0] - mid))[1] if pool else None
        keep = {c[0]: c for c in self.cands if c[0] >= b}
        for c in self.recent:
            if c[0] >= b:
                keep.setdefault(c[0], c)
        self.start = b
        self.step = 1
        self.cands = sorted(keep.values(), key=lambda c: c[0])[-self.keep :]
        return best


def _jpeg(frame: av.VideoFrame, width: int, quality: int, rotation: int) -> bytes:
    from PIL import Image

    w = min(width, frame.width)
    h = max(2, int(round(frame.height * w / frame.width / 2)) * 2)
    img = Image.fromarray(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
    if rotation:
        img = img.rotate(rotation, expand=True)  # PIL turns counterclockwise, like ``rotation``
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class _TextSampler:
    """Text-overlay detection on sparse frames with RapidOCR (the ``ocr`` extra)."""

    def __init__(self, cfg: AnalyseConfig):
        mod = require("rapidocr_onnxruntime", "ocr", feature="text-overlay detection")
        self.engine = mod.RapidOCR()
        self.min_score = cfg.text_min_score
        self.samples: list[tuple[int, bool]] = []
        self.times_ms: list[int] = []

    def sample(self, idx: int, frame: av.VideoFrame, time_ms: int) -> None:
        w = min(640, frame.width)
        h = max(2, int(round(frame.height * w / frame.width / 2)) * 2)
        img = frame.reformat(width=w, height=h, format="bgr24").to_ndarray()
        result, _ = self.engine(img)
        has = any(float(r[2]) >= self.min_score for r in (result or []))
        self.samples.append((idx, has))
        self.times_ms.append(time_ms)

    def fraction(self, start: int, end: int) -> float | None:
        hits = [h for i, h in self.samples if start <= i < end]
        return (sum(hits) / len(hits)) if hits else None


# Sharpness changes slowly within a shot; sampling every third frame still gives every shot of
# min_shot_frames >= 3 a value, at a third of the cost.
_SHARPNESS_EVERY = 3


def _sharpness(y: np.ndarray) -> float:
    lap = 4.0 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


def _nanmean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else 0.0


def analyse(path: str | os.PathLike, config: AnalyseConfig | None = None) -> AnalysisResult:
    """Decode ``path`` once and compute shots, per-shot statistics, PDQ hashes and thumbnails.

    Corrupt packets are skipped and counted in ``decode_errors``. Raises :class:`MediaProbeError`
    (``media.*`` reasons) when the file cannot be read or no frame decodes.
    """
    cfg = config or AnalyseConfig()
    item = str(path)
    params = cfg.detector_params()
    detector = ShotDetector(params)
    text = _TextSampler(cfg) if cfg.detect_text else None
    sampler = _ThumbSampler()
    stats = DecodeStats()

    times: list[float] = []
    frame_ids: list[int] = []  # frame index of each decoded frame (differs only in coarse mode)
    motion: list[float] = []
    sharp: list[float] = []
    luma: list[float] = []
    black: list[bool] = []
    pdq: list[PdqHash] = []
    shots_meta: list[tuple[int, int, str, bytes | None]] = []

    bright = cfg.black_luma + cfg.black_bright_margin
    black_luma, bright_share = cfg.black_luma, cfg.black_bright_share
    pdqhash = None

    def close_shot(b: int, kind: str) -> None:
        start = sampler.start
        frame = sampler.split(b)
        thumb = _jpeg(frame, cfg.thumbnail_width, cfg.thumbnail_quality, info.rotation) if frame else None
        shots_meta.append((start, b, kind, thumb))

    with open_container(path) as container:
        stream = _video_stream(container, item)
        header = read_header(container, stream, item)
        fps = header["fps"] or 25.0
        info: ProbeInfo | None = None
        stream.thread_type = "AUTO"
        if cfg.skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        if cfg.skip_nonref:
            stream.codec_context.skip_frame = "NONREF"
        tb = float(stream.time_base) if stream.time_base else 1.0 / fps
        start_pts = stream.start_time
        reader: PlaneReader | None = None
        prev_y = prev_u = prev_v = None
        next_pdq = 0.0
        next_text = 0.0
        idx = -1
        n_seen = 0
        for frame in iter_frames(container, stream, stats):
            if frame.pts is not None and start_pts is None:
                start_pts = frame.pts
            t = (frame.pts - start_pts) * tb if frame.pts is not None else (idx + 1) / fps
            if cfg.skip_nonref:
                new_idx = int(round(t * fps))
                idx = new_idx if new_idx > idx else idx + 1
            else:
                idx += 1
            if reader is None:
                # The first frame completes the probe: pixel format, rotation, decoded size.
                info = complete_info(header, frame, stream, item)
                step = max(1, int(round(info.width / cfg.analysis_width)))
                pdq_step = max(1, int(round(info.width / cfg.pdq_width)))
                reader = PlaneReader(frame.format.name, step)
            y = reader.luma(frame)
            ch = reader.chroma(frame)
            if prev_y is None:
                inv_y = 1.0 / y.size
                inv_c = 1.0 / ch[0].size if ch is not None else 0.0
                dy = score = 0.0
            else:
                # ndarray.sum() times a precomputed 1/size: mean() costs twice as much on small arrays.
                dy = float(np.abs(y - prev_y).sum()) * inv_y
                score = dy
                if ch is not None:
                    score += (
                        float(np.abs(ch[0] - prev_u).sum()) + float(np.abs(ch[1] - prev_v).sum())
                    ) * inv_c
            mean = float(y.sum()) * inv_y
            is_black = mean < black_luma and float((y > bright).sum()) * inv_y < bright_share
            prev_y = y
            if ch is not None:
                prev_u, prev_v = ch
            times.append(t)
            frame_ids.append(idx)
            motion.append(dy)
            luma.append(mean)
            black.append(is_black)
            sharp.append(_sharpness(y) if n_seen % _SHARPNESS_EVERY == 0 else np.nan)
            n_seen += 1
            if t >= next_pdq:
                if pdqhash is None:
                    import pdqhash
                y8 = reader.luma_u8(frame, pdq_step)
                bits, quality = pdqhash.compute(np.repeat(y8[:, :, None], 3, axis=2))
                pdq.append(
                    PdqHash(idx, int(round(t * 1000)), np.packbits(bits).tobytes().hex(), int(quality))
                )
                next_pdq = t + cfg.pdq_interval_s - 0.5 / fps
            if text is not None and t >= next_text:
                text.sample(idx, frame, int(round(t * 1000)))
                next_text = t + cfg.text_interval_s - 0.5 / fps
            sampler.offer(idx, frame)
            detector.push(y, score, is_black)
            for b in detector.pop_final():
                close_shot(frame_ids[b.frame], b.kind)
        if not times or info is None:
            if not stats.errors:
                raise MediaProbeError(
                    "media.truncated",
                    "the video stream holds no decodable frame",
                    item=item,
                    fix="the file is incomplete; fetch it again",
                )
            raise MediaProbeError(
                "media.decode_error",
                f"no frame could be decoded ({stats.errors} packet errors, last: {stats.last_error})",
                item=item,
                fix="the video data is corrupt; fetch or re-encode it",
            )
        detector.finish()
        for b in detector.pop_final():
            close_shot(frame_ids[b.frame], b.kind)
        n = idx + 1
        close_shot(n, "end")
        sampler.cands.clear()
        sampler.recent.clear()

    t_arr = np.asarray(times)
    frame_ms = 1000.0 / fps
    duration_ms = int(round(t_arr[-1] * 1000 + frame_ms))
    motion_a = np.asarray(motion)
    sharp_a = np.asarray(sharp)
    luma_a = np.asarray(luma)
    black_a = np.asarray(black, dtype=bool)
    static_a = motion_a < cfg.static_threshold
    if cfg.skip_nonref:
        # Per-frame arrays are indexed by decoded frame; map shot frame ranges through timestamps.
        frame_idx = np.round(t_arr * fps).astype(np.int64)
    shots: list[Shot] = []
    for k, (start, end, kind, thumb) in enumerate(shots_meta):
        if cfg.skip_nonref:
            lo, hi = np.searchsorted(frame_idx, [start, end])
        else:
            lo, hi = start, end
        sl = slice(lo, max(hi, lo + 1))
        m = motion_a[sl]
        if lo == 0 and len(m) > 1:
            m = m[1:]  # the first frame has no predecessor
        start_ms = int(round(t_arr[lo] * 1000)) if lo < len(t_arr) else duration_ms
        end_ms = int(round(t_arr[hi] * 1000)) if hi < len(t_arr) else duration_ms
        shots.append(
            Shot(
                index=k,
                start_frame=start,
                end_frame=end,
                start_ms=start_ms,
                end_ms=end_ms,
                transition_out=kind,
                motion=round(float(m.mean()), 4),
                sharpness=round(_nanmean(sharp_a[sl]), 3),
                luma=round(float(luma_a[sl].mean()), 3),
                black_fraction=round(float(black_a[sl].mean()), 4),
                static_fraction=round(float(static_a[sl].mean()), 4),
                text_fraction=text.fraction(start, end) if text is not None else None,
                thumbnail=thumb,
            )
        )
    signals = FrameSignals(
        # Non-decreasing, so that a span's frames are found by bisection even where timestamps jitter.
        time_ms=np.maximum.accumulate(np.round(t_arr * 1000).astype(np.int32)),
        motion=motion_a.astype(np.float32),
        sharpness=sharp_a.astype(np.float32),
        luma=luma_a.astype(np.float32),
        black=black_a,
        static=static_a,
        text_ms=np.asarray(text.times_ms, dtype=np.int32) if text is not None else None,
        text_has=np.asarray([h for _, h in text.samples], dtype=bool) if text is not None else None,
    )
    return AnalysisResult(
        probe=info,
        fps=fps,
        n_frames=n,
        duration_ms=duration_ms,
        shots=shots,
        pdq=pdq,
        decode_errors=stats.errors,
        config=cfg.model_dump(),
        signals=signals,
    )
