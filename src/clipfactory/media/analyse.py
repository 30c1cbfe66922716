"""The single analysis pass: one decode of the video computes every per-frame signal.

:func:`analyse` decodes each frame once and, on a subsampled view of its planes (no conversion),
computes shot boundaries (hard cuts, fades, dissolves), motion, sharpness, mean luma, black and
static frames, PDQ perceptual hashes about once a second, one JPEG thumbnail per shot, and the
burned-in text on a few frames per shot (RapidOCR, when ``rapidocr-onnxruntime`` is installed). Shot
boundaries come from the native detector of :mod:`clipfactory.media.shots`, from TransNetV2 on 48x27
frames of the same decode (:mod:`clipfactory.media.transnet`, the ``ml`` extra), or from both.

Frames stream through: memory holds per-frame scalars, a ring of a few subsampled luma planes, and a
bounded set of thumbnail candidates per open shot, whatever the video's length.

See ``docs/analyse.md`` for what each number means and how to tune the thresholds.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clipfactory.errors import require
from clipfactory.fingerprints.pdq import pdq_of_luma
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
    detector: Literal["native", "transnetv2", "both"] = Field(
        "native",
        description="Shot boundaries from the native detector (hard cuts, fades, dissolves from the "
        "subsampled planes), from TransNetV2 (a neural network on 48x27 frames of the same decode; the 'ml' "
        "extra), or both: the union, each boundary with TransNetV2's confidence.",
    )
    transnet_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="TransNetV2 probability above which a frame is part of a shot transition.",
    )
    transnet_device: str = Field(
        "auto",
        description="Torch device for TransNetV2: auto (a CUDA GPU when torch sees one, else the CPU), cpu, "
        "cuda or cuda:N.",
    )
    detect_text: bool | Literal["auto"] = Field(
        "auto",
        description="Detect and read burned-in text (titles, subtitles) on a few frames per shot with "
        "RapidOCR (rapidocr-onnxruntime, in the 'dev' and 'ocr' extras). auto: on when the package is "
        "installed; true: required.",
    )
    text_frames_per_shot: int = Field(
        6,
        ge=1,
        le=12,
        description="Most frames of a shot read for text, spread evenly over the shot.",
    )
    text_interval_s: float = Field(
        0.5,
        gt=0,
        description="A shot gets one text frame per text_interval_s of its length, at least one and at "
        "most text_frames_per_shot.",
    )
    text_probe_frames: int = Field(
        2,
        ge=1,
        le=12,
        description="Frames of a shot read first, nearest to evenly spread points (at a quarter and three "
        "quarters of the shot for 2; 1 reads the middle frame, half the cost, and misses more); the shot's "
        "other text frames are read only when one of these carries text.",
    )
    text_width: int = Field(
        384,
        ge=64,
        le=1920,
        description="Width in pixels of the picture the text detector looks at; recognition reads the "
        "boxes it finds at twice this width.",
    )
    text_min_score: float = Field(
        0.6, ge=0, le=1, description="Recognition confidence for a text box to count."
    )
    text_min_chars: int = Field(
        2,
        ge=1,
        description="Letters or digits a text box must read as to count (stray single characters on "
        "textures are not text).",
    )
    skip_loop_filter: bool = Field(
        True,
        description="Ask the decoder to skip its in-loop deblocking filter (H.264/HEVC): about 30% less "
        "decode time on 720p H.264. Every frame is still decoded; pictures differ from the reference "
        "decode only by blocking at macroblock edges, which the subsampled statistics, PDQ and the "
        "small thumbnails barely see. Turn off for bit-exact pictures.",
    )
    skip_nonref: bool | Literal["auto"] = Field(
        "auto",
        description="Two-level pass on H.264/HEVC with the native detector: decode only the reference "
        "frames (FFmpeg skip_frame=NONREF, about half the frames of a B-frame stream) and find the boundaries "
        "on them; where a cut's frame or a black run's ends are not certain from them, a second decoder "
        "decodes every frame of a short span and the exact tests place it. The frames PDQ hashes are decoded "
        "too (the same as with every frame); per-frame scores, thumbnails and text frames come from the "
        "decoded frames; dissolves keep their position on them. auto (the default): on for streams with "
        "B-frames and a constant frame rate; false: decode every frame.",
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
    frames with text (``None`` when text detection is off); ``text`` the text read on them, one line per
    distinct box; ``transition_confidence`` TransNetV2's confidence in the boundary that ends the shot
    (``None`` with the native detector, and for the last shot); ``thumbnail`` a JPEG of the middle frame.
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
    text: str | None = None
    transition_confidence: float | None = None
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
    luma difference to the previous decoded frame, divided by the frames between them in the two-level pass;
    0 for the first), ``sharpness`` (NaN on frames that were not sampled), ``luma``, ``black`` and
    ``static``. ``text_ms``/``text_has``/``text_lines`` are the
    frames sampled for text, whether they carry any, and the lines read on them (``None`` when text
    detection is off). ``span`` is, in the two-level pass, how many frames of the video the step into each
    decoded frame covers (``None`` when every frame is decoded): a span's motion and static share weigh
    each step by it, so they count frames of the video. About 18 bytes a frame.
    """

    time_ms: np.ndarray  # int32
    motion: np.ndarray  # float32
    sharpness: np.ndarray  # float32
    luma: np.ndarray  # float32
    black: np.ndarray  # bool
    static: np.ndarray  # bool
    text_ms: np.ndarray | None = None  # int32
    text_has: np.ndarray | None = None  # bool
    text_lines: tuple[tuple[str, ...], ...] | None = None
    span: np.ndarray | None = None  # uint16

    def _text_samples(self, start_ms: int, end_ms: int) -> slice | None:
        """The text samples inside ``[start_ms, end_ms)``, or the one nearest its middle when none is."""
        if self.text_ms is None or not self.text_ms.size:
            return None
        t0, t1 = (int(x) for x in np.searchsorted(self.text_ms, [start_ms, end_ms]))
        if t1 > t0:
            return slice(t0, t1)
        k = int(np.argmin(np.abs(self.text_ms - (start_ms + end_ms) / 2)))
        return slice(k, k + 1)

    def span_text(self, start_ms: int, end_ms: int) -> str | None:
        """The distinct lines read on the text samples of ``[start_ms, end_ms)`` (as for ``text_fraction``),
        one per line in the order first seen; ``""`` when none carries text, ``None`` when text detection
        was off."""
        if self.text_lines is None:
            return None
        sl = self._text_samples(start_ms, end_ms)
        return "" if sl is None else join_lines(self.text_lines[sl])

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
        sl = self._text_samples(start_ms, end_ms)
        if sl is not None and self.text_has is not None:
            text = round(float(self.text_has[sl].mean()), 4)
        w = None if self.span is None else self.span[steps]
        return {
            "motion": round(_mean(self.motion[steps], w), 4),
            "sharpness": round(float(sharp.mean()), 3) if sharp.size else 0.0,
            "luma": round(float(self.luma[lo:hi].mean()), 3),
            "black_fraction": round(float(self.black[lo:hi].mean()), 4),
            "static_fraction": round(_mean(self.static[steps], w), 4),
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

    def span_text(self, start_ms: int, end_ms: int) -> str | None:
        """Text read on screen in ``[start_ms, end_ms)`` (see :meth:`FrameSignals.span_text`); without
        per-frame signals, the text of the shots the span overlaps."""
        if self.signals is not None:
            return self.signals.span_text(start_ms, end_ms)
        texts = [sh.text for sh in self.shots if min(end_ms, sh.end_ms) > max(start_ms, sh.start_ms)]
        if all(t is None for t in texts):
            return None
        return join_lines([tuple(t.splitlines()) for t in texts if t])

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

    Frames are offered in order; a frame at least ``step`` frames after the last one held is kept, and
    when more than ``keep`` are held the held frames are thinned to ``step * 2`` apart and ``step``
    doubles. A ring of frames at least two apart among the latest covers boundaries that are settled
    some frames late. Spacing is measured in frames of the video, so the two-level pass, which offers
    only reference frames (1 to 4 frames apart, in no fixed pattern), keeps as even a spread as the
    pass over every frame, which keeps every ``step``-th frame from the shot's start.
    """

    def __init__(self, keep: int = 12, recent: int = 24):
        self.keep = keep
        self.start = 0
        self.step = 1
        self.cands: list[tuple[int, av.VideoFrame]] = []
        self.recent: deque[tuple[int, av.VideoFrame]] = deque(maxlen=recent)

    def offer(self, idx: int, frame: av.VideoFrame) -> None:
        if not self.recent or idx - self.recent[-1][0] >= 2:
            self.recent.append((idx, frame))
        if self.cands and idx - self.cands[-1][0] < self.step:
            return
        self.cands.append((idx, frame))
        if len(self.cands) > self.keep:
            self.step *= 2
            self.cands = _spread(self.cands, self.start, self.step)

    def split(
        self, b: int, n_spread: int = 0
    ) -> tuple[av.VideoFrame | None, list[tuple[int, av.VideoFrame]]]:
        """Close the shot ``[self.start, b)``: the held frame nearest its middle, and up to ``n_spread``
        distinct held frames nearest to evenly spread points of the shot (at ``(k + 0.5) / n_spread``)."""
        mid = (self.start + b - 1) / 2
        pool = [c for c in self.cands if self.start <= c[0] < b]
        pool += [c for c in self.recent if self.start <= c[0] < b]
        best = min(pool, key=lambda c: abs(c[0] - mid))[1] if pool else None
        spread: dict[int, av.VideoFrame] = {}
        for k in range(n_spread if pool else 0):
            target = self.start + (k + 0.5) * (b - self.start) / n_spread
            idx, frame = min(pool, key=lambda c: abs(c[0] - target))
            spread.setdefault(idx, frame)
        keep = {c[0]: c for c in self.cands if c[0] >= b}
        for c in self.recent:
            if c[0] >= b:
                keep.setdefault(c[0], c)
        self.start = b
        self.step = 1
        self.cands = sorted(keep.values(), key=lambda c: c[0])[-self.keep :]
        return best, sorted(spread.items())


def _spread(cands: list[tuple[int, av.VideoFrame]], start: int, step: int) -> list[tuple[int, av.VideoFrame]]:
    """The frames of ``cands`` (in order) kept when each must be at least ``step`` after the one kept before
    it, counting from ``start - step``: every ``step``-th frame from ``start`` when every frame is there."""
    out: list[tuple[int, av.VideoFrame]] = []
    last = start - step
    for c in cands:
        if c[0] - last >= step:
            out.append(c)
            last = c[0]
    return out


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


def _text_key(line: str) -> str:
    return "".join(ch for ch in line.casefold() if ch.isalnum())


def join_lines(samples) -> str:
    """The distinct lines of several text samples, one per line, in the order first seen.

    The same text read on several frames often comes back whole on some and in pieces on others
    (``three rod`` beside ``And three rodent pests``): a line whose letters and digits are part of a longer
    line's, or nearly the same as one (difflib ratio of at least 0.8), is left out for the longer one.
    """
    import difflib

    order: dict[str, str] = {}
    for lines in samples:
        for line in lines:
            line = " ".join(line.split())
            key = _text_key(line)
            if key and key not in order:
                order[key] = line
    keys = sorted(order, key=len, reverse=True)
    kept: list[str] = []
    for key in keys:
        if not any(key in k or difflib.SequenceMatcher(None, key, k).ratio() >= 0.8 for k in kept):
            kept.append(key)
    keep = set(kept)
    return "\n".join(line for key, line in order.items() if key in keep)


_OCR: dict[tuple, Any] = {}
_WARNED: list[bool] = []


def ocr_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def ocr_engine(threads: int = 1):
    """The process's RapidOCR engine (PP-OCRv4 detection and recognition, ONNX Runtime on the CPU).

    The detector keeps the picture's own size (``limit_type = max``), instead of RapidOCR's default of
    scaling its short side up to 736 pixels, so a small frame costs a small frame. Detection and recognition
    run the package's graphs as rewritten by :func:`clipfactory.onnxgraph.optimized_model` (the same
    outputs, about a third less CPU).
    """
    key = (threads,)
    engine = _OCR.get(key)
    if engine is None:
        mod = require("rapidocr_onnxruntime", "ocr", feature="text detection (detect_text)")
        from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
        from rapidocr_onnxruntime.utils import read_yaml, update_model_path

        from clipfactory.onnxgraph import optimized_model

        models = update_model_path(read_yaml(str(DEFAULT_CFG_PATH)))
        engine = _OCR[key] = mod.RapidOCR(
            det_limit_type="max",
            det_limit_side_len=1920,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            det_model_path=str(optimized_model(models["Det"]["model_path"])),
            rec_model_path=str(optimized_model(models["Rec"]["model_path"])),
        )
    return engine


def read_text(engine, small: np.ndarray, large_fn, *, min_score: float, min_chars: int) -> tuple[str, ...]:
    """Lines of text on a picture: boxes detected on ``small`` (BGR), read on ``large_fn()`` (the same
    picture, BGR, larger), kept when their recognition confidence is at least ``min_score`` and they hold
    at least ``min_chars`` letters or digits. Left to right within a row, rows top to bottom."""
    boxes, _ = engine.text_det(small)
    if boxes is None or not len(boxes):
        return ()
    large = large_fn()
    scale = large.shape[1] / small.shape[1]
    boxes = sorted(boxes, key=lambda bx: (round(float(bx[:, 1].min()) / 8), float(bx[:, 0].min())))
    crops = engine.get_crop_img_list(large, [np.asarray(bx, np.float32) * scale for bx in boxes])
    recs, _ = engine.text_rec(crops)
    lines = []
    for rec in recs:
        text, score = " ".join(str(rec[0]).split()), rec[1]
        if float(score) >= min_score and sum(ch.isalnum() for ch in text) >= min_chars:
            lines.append(text)
    return tuple(lines)


def _bgr(frame: av.VideoFrame, width: int, rotation: int) -> np.ndarray:
    w = min(width, frame.width)
    h = max(2, int(round(frame.height * w / frame.width / 2)) * 2)
    # Area averaging keeps thin strokes that bilinear scaling loses (light titles on a bright sky).
    img = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
    if rotation:
        img = np.ascontiguousarray(np.rot90(img, rotation // 90))  # counterclockwise, like ``rotation``
    return img


class _TextSampler:
    """Burned-in text on a few frames per shot, read with RapidOCR in a worker thread.

    Each shot gets up to ``text_frames_per_shot`` frames spread over it; the worker first reads
    ``text_probe_frames`` of them, spread too, and the others only when one of those carries text, so a
    shot without text costs a probe or two. The detector runs on a ``text_width`` picture; only frames where
    it finds boxes are converted again at twice that width for recognition. The worker overlaps with
    decoding (ONNX Runtime releases the GIL); at most :attr:`MAX_PENDING` shots wait for it, so the frames
    they hold stay bounded.
    """

    MAX_PENDING = 8

    def __init__(self, cfg: AnalyseConfig):
        from concurrent.futures import ThreadPoolExecutor

        self.engine = ocr_engine()
        self.cfg = cfg
        self.futures: list[Any] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ocr")

    def n_for(self, n_frames: int, fps: float) -> int:
        """Frames read for text in a shot of ``n_frames``: one per ``text_interval_s``, within limits."""
        seconds = n_frames / (fps or 25.0)
        return max(1, min(self.cfg.text_frames_per_shot, int(np.ceil(seconds / self.cfg.text_interval_s))))

    def submit(
        self, picks: list[tuple[int, int, av.VideoFrame]], start: int, end: int, rotation: int
    ) -> None:
        """Read the text of the frames ``(frame index, time ms, frame)`` of the shot ``[start, end)``, in
        frame order; the probes are the frames nearest to evenly spread points (one: the middle)."""
        if not picks:
            return
        n = len(picks)
        k = min(self.cfg.text_probe_frames, n)
        targets = [start + (j + 0.5) * (end - start) / k for j in range(k)]
        probes = sorted({min(range(n), key=lambda i: abs(picks[i][0] - t)) for t in targets})
        first = [(picks[i], _bgr(picks[i][2], self.cfg.text_width, rotation)) for i in probes]
        rest = [picks[i] for i in range(n) if i not in probes]
        self.futures.append(self._pool.submit(self._read_shot, first, rest, rotation))
        while sum(1 for f in self.futures[-self.MAX_PENDING - 1 :] if not f.done()) > self.MAX_PENDING:
            next(f for f in self.futures if not f.done()).result()

    def _read(self, small: np.ndarray, frame: av.VideoFrame, rotation: int) -> tuple[str, ...]:
        cfg = self.cfg
        return read_text(
            self.engine,
            small,
            lambda: _bgr(frame, 2 * cfg.text_width, rotation),
            min_score=cfg.text_min_score,
            min_chars=cfg.text_min_chars,
        )

    def _read_shot(self, first, rest, rotation) -> list[tuple[int, int, tuple[str, ...]]]:
        out = [(idx, t, self._read(small, frame, rotation)) for (idx, t, frame), small in first]
        if any(lines for _, _, lines in out):
            for idx, t, frame in rest:
                out.append((idx, t, self._read(_bgr(frame, self.cfg.text_width, rotation), frame, rotation)))
        return sorted(out, key=lambda x: x[0])

    def finish(self) -> tuple[list[int], list[int], list[tuple[str, ...]]]:
        """Wait for the worker: (frame indices, times ms, lines) of every frame read, in frame order."""
        try:
            done = sorted((x for fut in self.futures for x in fut.result()), key=lambda x: x[0])
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.futures = []
        return [d[0] for d in done], [d[1] for d in done], [d[2] for d in done]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# Sharpness changes slowly within a shot; sampling every third frame still gives every shot of
# min_shot_frames >= 3 a value, at a third of the cost.
_SHARPNESS_EVERY = 3


def _sharpness(y: np.ndarray) -> float:
    lap = 4.0 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


_EMPTY_MS = np.zeros(0, np.int32)


def _in(idx: np.ndarray | None, lines: list, start: int, end: int) -> list:
    if idx is None:
        return []
    lo, hi = (int(x) for x in np.searchsorted(idx, [start, end]))
    return lines[lo:hi]


def _fraction(idx: np.ndarray | None, lines: list, start: int, end: int) -> float | None:
    """Share of the text samples of frames ``[start, end)`` that carry text (``None`` with none)."""
    inside = _in(idx, lines, start, end)
    return round(sum(1 for x in inside if x) / len(inside), 4) if inside else None


def _mean(a: np.ndarray, weights: np.ndarray | None) -> float:
    """The mean of ``a``, weighted by ``weights`` (frames of the video a step covers) when given."""
    return float(a.mean()) if weights is None else float(np.average(a, weights=weights))


def _nanmean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else 0.0


class _Boundaries:
    """Final shot boundaries in frame order, from the native detector, TransNetV2, or both.

    Positions are indices of decoded frames. With both, a boundary is released once both detectors are
    ``min_shot_frames`` past it, so that the other one's boundary at the same transition is known: the two
    are one boundary (the native detector's position and kind), and a boundary only one found is kept too.
    Every boundary carries TransNetV2's confidence (its highest probability over the transition).
    """

    def __init__(self, cfg: AnalyseConfig, detector: ShotDetector | None, transnet, black: list[bool]):
        self.cfg = cfg
        self.native = detector
        self.transnet = transnet
        self.black = black
        self.min_gap = cfg.min_shot_frames
        self._nq: list = []  # native Boundary objects not yet released
        self._tq: list = []  # TransNetBoundary objects not yet released
        self._scan = 0  # TransNetV2 probabilities are scanned for runs from here
        self._open = 0  # TransNetV2 frames before this are settled and in no open transition
        self._last = 0

    def _poll(self, final: bool) -> int:
        """Collect new boundaries from both detectors; returns the frame before which both are settled."""
        from clipfactory.media.transnet import boundaries

        settled = None
        if self.native is not None:
            self._nq.extend(self.native.pop_final())
            settled = self.native.n if final else self.native.settled()
        if self.transnet is not None:
            done = self.transnet.n if final else self.transnet.settled()
            if final or done > self._scan:
                probs = self.transnet.probabilities()
                thr = self.cfg.transnet_threshold
                found = boundaries(probs, thr, upto=None if final else done)
                self._tq.extend(b for b in found if b.lo >= self._scan)
                if found:
                    self._scan = max(self._scan, found[-1].hi + 1)
                # A transition still going on at the last settled frame is a boundary from its start.
                self._open = done
                while not final and self._open > self._scan and probs[self._open - 1] > thr:
                    self._open -= 1
            done = min(done, self._open)
            settled = done if settled is None else min(settled, done)
        return settled if settled is not None else 0

    def _confidence(self, lo: int, hi: int) -> float | None:
        if self.transnet is None:
            return None
        probs = self.transnet.probabilities()
        window = probs[max(0, lo - 1) : hi + 2]
        return round(float(window.max()), 4) if window.size else None

    def _tn_kind(self, b) -> str:
        if b.hi - b.lo + 1 <= 2:
            return "cut"
        return "fade" if any(self.black[b.lo : b.hi + 1]) else "dissolve"

    def ready(self, n: int, final: bool = False) -> list[tuple[int, str, float | None]]:
        """Boundaries ``(decoded frame, kind, confidence)`` that are final, after ``n`` frames decoded."""
        settled = self._poll(final)
        both = self.native is not None and self.transnet is not None
        # One detector's final boundaries are final; with two, wait until the other has seen the frames.
        limit = settled - self.min_gap if both and not final else None
        out = []
        while self._nq or self._tq:
            nb = self._nq[0] if self._nq else None
            tb = self._tq[0] if self._tq else None
            first = min(x.frame for x in (nb, tb) if x is not None)
            if limit is not None and first >= limit:
                break
            if nb is not None and tb is not None and self._same(nb, tb):
                self._nq.pop(0)
                self._tq.pop(0)
                item = (nb.frame, nb.kind, tb.confidence)
            elif nb is not None and nb.frame == first:
                self._nq.pop(0)
                item = (nb.frame, nb.kind, self._confidence(nb.lo, nb.hi))
            else:
                self._tq.pop(0)
                item = (tb.frame, self._tn_kind(tb), tb.confidence)
            b = item[0]
            too_late = b > n - self.min_gap if final else b >= n
            if b - self._last < self.min_gap or too_late:
                continue
            self._last = b
            out.append(item)
        return out

    def _same(self, nb, tb) -> bool:
        return abs(nb.frame - tb.frame) < self.min_gap or (nb.lo <= tb.hi + 1 and tb.lo <= nb.hi + 1)


class _Features:
    """The per-frame numbers of the pass from the subsampled planes of one frame: the luma plane, the luma
    change and the change score (luma plus both chroma planes) from the previous frame given, the mean
    luma and whether the frame is black."""

    def __init__(self, cfg: AnalyseConfig, reader: PlaneReader):
        self.reader = reader
        self.bright = cfg.black_luma + cfg.black_bright_margin
        self.black_luma = cfg.black_luma
        self.bright_share = cfg.black_bright_share
        self.prev: tuple | None = None
        self.inv_y = self.inv_c = 0.0

    def __call__(self, frame: av.VideoFrame) -> tuple[np.ndarray, float, float, float, bool]:
        y = self.reader.luma(frame)
        ch = self.reader.chroma(frame)
        prev = self.prev
        if prev is None:
            self.inv_y = 1.0 / y.size
            self.inv_c = 1.0 / ch[0].size if ch is not None else 0.0
            dy = score = 0.0
        else:
            # ndarray.sum() times a precomputed 1/size: mean() costs twice as much on small arrays.
            dy = float(np.abs(y - prev[0]).sum()) * self.inv_y
            score = dy
            if ch is not None:
                score += (
                    float(np.abs(ch[0] - prev[1]).sum()) + float(np.abs(ch[1] - prev[2]).sum())
                ) * self.inv_c
        inv_y = self.inv_y
        mean = float(y.sum()) * inv_y
        is_black = mean < self.black_luma and float((y > self.bright).sum()) * inv_y < self.bright_share
        self.prev = (y, ch[0], ch[1]) if ch is not None else (y,)
        return y, dy, score, mean, is_black


# Codecs whose non-reference frames FFmpeg skips (skip_frame=NONREF) while decoding the rest exactly.
_COARSE_CODECS = {"h264", "hevc"}
# Frames the container may count after the last reference frame (non-reference frames at the very end).
_MAX_TRAILING = 16
# A span this many frames after the refiner's last one is reached by decoding on instead of seeking.
_CONTINUE = 48


def _use_coarse(cfg: AnalyseConfig, stream, transnet) -> bool:
    """Whether this pass decodes reference frames only (``skip_nonref``); TransNetV2 needs every frame."""
    if not cfg.skip_nonref or transnet is not None:
        return False
    cc = stream.codec_context
    if cc.name not in _COARSE_CODECS:
        return False
    if cfg.skip_nonref is True:
        return True
    if not getattr(cc, "has_b_frames", 0):
        return False
    # Frame indices come from timestamps: only for constant frame rate streams.
    avg, base = stream.average_rate, stream.base_rate
    return bool(avg and base) and abs(float(avg) - float(base)) <= 0.01 * float(base)


class _HashedFrames:
    """Packet by packet in the two-level pass: the frames that the pass over every frame hashes with PDQ
    (every ``round(pdq_interval_s * fps)`` frames from the first, as its rule gives on a constant frame rate)
    are decoded whether they are reference frames or not, so that both passes hash the same frames and
    fingerprints do not depend on where an encoder put its reference frames. About one frame a second more
    to decode; the pass uses those frames as any other."""

    def __init__(self, stream, fps: float, tb: float, start_pts: int | None, interval_s: float):
        self.cc = stream.codec_context
        self.fps, self.tb, self.t0 = fps, tb, start_pts
        # The smallest whole number of frames not under interval - half a frame (see the hashing rule).
        self.every = max(1, math.ceil(interval_s * fps - 0.5 - 1e-9))
        self.whole = False
        self.forced = 0

    def __call__(self, pkt: av.Packet) -> None:
        want = False
        if pkt.pts is not None:
            if self.t0 is None:
                self.t0 = pkt.pts
            want = int(round((pkt.pts - self.t0) * self.tb * self.fps)) % self.every == 0
        if want != self.whole:
            self.cc.skip_frame = "DEFAULT" if want else "NONREF"
            self.whole = want
        self.forced += want


def _coarse_params(p: DetectorParams) -> DetectorParams:
    """The detector's settings on reference frames (about every other frame of a B-frame stream): blend
    windows needed halved (counted in reference frames); the blend window and the shortest shot stay in
    frames of the video (:meth:`ShotDetector.push`'s ``span``)."""
    return replace(p, dissolve_min_frames=max(1, p.dissolve_min_frames // 2))


class _CoarseBoundaries:
    """Final boundaries of the two-level pass, in frames of the video.

    The detector runs on the reference frames, its cut test comparing a step with its neighbours' change
    per frame of the video (:meth:`ShotDetector.push`'s ``span``), the blend windows it needs counted in
    reference frames (:func:`_coarse_params`), the blend window and the shortest shot in frames of the video.
    Then each boundary is placed on a frame of the video:

    * a hard cut between reference frames that are consecutive frames of the video, that also passes the
      cut test against its neighbours' steps as they are (:meth:`_clear_cut`), is exact as it is; any
      other is decoded again with the frames around it (:class:`_Refiner`) and kept, on the frame of the
      largest single step, only if the exact cut test passes there;
    * a fade through black goes to the middle of the black run, whose first and last frames are found
      the same way among the frames between the reference frames at its two ends;
    * a dissolve keeps the position of its reference frame (within one spacing of reference frames).

    Boundaries closer than ``min_shot_frames`` are then merged as the exact detector merges them.
    """

    def __init__(
        self, cfg: AnalyseConfig, params: DetectorParams, detector: ShotDetector, frame_ids: list[int]
    ):
        self.p = params
        self.det = detector
        self.ids = frame_ids
        self.refiner: _Refiner | None = None
        self.last = 0
        self.held: list = []
        self.n_exact = 0

    def ready(self, final: int | None = None) -> list[tuple[int, str]]:
        """Boundaries ``(frame, kind)`` that are final; ``final`` is the frame count at the end of the stream."""
        out: list[tuple[int, str]] = []
        gap = self.p.min_shot_frames
        for bd in self.det.pop_final():
            nb = self._place(bd, final)
            if nb is None:
                continue
            if self.held and nb.lo - max(h.hi for h in self.held) >= gap:
                self._release(out, final)
            self.held.append(nb)
        settled = self.ids[min(self.det.settled(), len(self.ids) - 1)] if self.ids else 0
        if self.held and (final is not None or settled > max(h.hi for h in self.held) + gap):
            self._release(out, final)
        return out

    def _release(self, out: list, final: int | None) -> None:
        from clipfactory.media.shots import _pick

        best = _pick(self.held)
        self.held = []
        too_late = final is not None and best.frame > final - self.p.min_shot_frames
        if best.frame - self.last < self.p.min_shot_frames or too_late:
            return
        self.last = best.frame
        out.append((best.frame, best.kind))

    def _clear_cut(self, j: int) -> bool:
        """The cut test against the neighbours' steps as they are: steps over more frames change more than
        the single steps the exact detector compares with, so a cut that passes it passes there too."""
        s, w = self.det.scores, self.p.cut_window
        nb = [s[t] for t in range(max(1, j - w), min(len(s), j + w + 1)) if t != j]
        ref = sum(nb) / len(nb) if nb else 0.0
        return s[j] >= self.p.cut_min_score and s[j] >= self.p.cut_adaptive_ratio * max(ref, 1.0)

    def _flash_unsure(self, j: int) -> tuple[bool, bool]:
        """Whether the flash test of the cut into reference frame ``j`` may differ from the exact pass's, before
        and after it: that test compares the frames just before and after the step (``j - 2`` with ``j``,
        ``j - 1`` with ``j + 1``). Where the step beside it skips frames of the video and is a large change
        itself, a frame it skips may match the other side, so that ``j`` (or ``j - 1``) is a one-frame
        anomaly, as a flash followed by a cut is. A change is large when it reaches ``flash_ratio`` of the
        cut's: leaving an anomaly changes the picture about as much as entering it did, and a step on to
        another picture about as much as a cut does; motion after a cut is mostly well under it."""
        ids, s, n_c = self.ids, self.det.scores, len(self.ids)
        limit = max(self.p.cut_min_score, self.p.flash_ratio * s[j])
        before = j >= 2 and ids[j - 1] - ids[j - 2] > 1 and s[j - 1] >= limit
        after = j + 1 < n_c and ids[j + 1] - ids[j] > 1 and s[j + 1] >= limit
        return before, after

    def _place(self, bd, final: int | None):
        from clipfactory.media.shots import _BLACK_RUN_SCORE, Boundary

        ids, n_c = self.ids, len(self.ids)
        j = bd.frame
        if bd.kind == "cut":
            a, b = ids[j - 1], ids[j]
            before, after = self._flash_unsure(j)
            if b - a == 1 and self._clear_cut(j) and not (before or after):
                self.n_exact += 1
            else:
                # Decode every frame of the step, and of a large step beside it that skips frames: one of
                # those frames may make this step a flash's, and the cut the one beside it.
                lo = ids[j - 2] if before else a
                hi = ids[j + 1] if after else b
                b = self.refiner.cut_frame(lo, hi)
                if b is None:
                    return None
            return Boundary(b, "cut", bd.score, b - 1, b)
        lo, hi = ids[max(0, bd.lo)], ids[min(n_c - 1, bd.hi)]
        if bd.kind == "fade" and bd.score >= _BLACK_RUN_SCORE:
            black = self.det.black
            s = e = j
            if black[j]:
                while s > 0 and black[s - 1]:
                    s -= 1
                while e < n_c and black[e]:
                    e += 1
            else:  # a black lead-in: the boundary is its first picture
                while s > 0 and black[s - 1]:
                    s -= 1
            start = 0 if s == 0 else self.refiner.first(ids[s - 1], ids[s], black=True)
            if e >= n_c:  # a black tail
                if final is not None and final - start < self.p.min_shot_frames:
                    return None
                return Boundary(start, "fade", bd.score, lo, hi)
            end = self.refiner.first(ids[e - 1], ids[e], black=False)
            if s == 0 and black[0]:
                if end < self.p.min_shot_frames:
                    return None
                return Boundary(end, "fade", bd.score, lo, hi)
            return Boundary((start + end) // 2, "fade", bd.score, lo, hi)
        if bd.at >= 0:  # a blend: the middle of its windows' centres, in frames of the video
            return Boundary(bd.at, bd.kind, bd.score, lo, hi)
        if bd.lo < j < bd.hi and bd.frame == (bd.lo + bd.hi + 1) // 2:  # blends merged into one
            return Boundary((lo + hi + 1) // 2, bd.kind, bd.score, lo, hi)
        return Boundary(ids[j], bd.kind, bd.score, lo, hi)


class _Refiner:
    """Every frame between two reference frames, decoded by a second decoder.

    For each span it seeks to the keyframe before it and decodes reference frames only up to the span,
    then every frame of it.
    """

    def __init__(
        self,
        path,
        cfg: AnalyseConfig,
        params: DetectorParams,
        reader: PlaneReader,
        stream_index: int,
        fps: float,
        tb: float,
        start_pts: int | None,
    ):
        self.path = path
        self.cfg = cfg
        self.params = params
        self.reader = reader
        self.index = stream_index
        self.fps, self.tb, self.start_pts = fps, tb, start_pts or 0
        self.container = None
        self.stream = None
        self._it = None  # packets of the current decode
        self._buf: list[tuple[int, av.VideoFrame]] = []  # decoded frames not yet used
        self.pos = -1  # last frame index used
        self.windows = 0
        self.frames = 0  # frames decoded by this decoder, reference frames before the windows included

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def _open(self) -> None:
        self.container = open_container(self.path)
        self.stream = s = next(v for v in self.container.streams.video if v.index == self.index)
        s.thread_type = "AUTO"
        if self.cfg.skip_loop_filter:
            s.codec_context.options = {"skip_loop_filter": "all"}

    def _window(self, lo: int, hi: int) -> list[tuple[int, av.VideoFrame]]:
        """``(frame index, frame)`` of the frames ``lo..hi``, in order. A span shortly after the last one
        is reached by decoding on (reference frames only); any other after a seek."""
        if self.container is None:
            self._open()
        self.windows += 1
        c, s = self.container, self.stream
        cc = s.codec_context
        fps, tb, t0 = self.fps, self.tb, self.start_pts
        fresh = self._it is None or not (self.pos < lo <= self.pos + _CONTINUE)
        back = 0.0
        while True:
            if fresh:
                target = max(0.0, (lo - 0.5) / fps - back)
                c.seek(int(target / tb) + t0, stream=s, backward=True)
                self._it = c.demux(s)
                self._buf = []
                self.pos = -1
            cc.skip_frame = "NONREF"
            switch = t0 + ((lo - 0.5) / fps) / tb
            full = False
            first = None
            out: list[tuple[int, av.VideoFrame]] = []
            while True:
                if not self._buf:
                    pkt = next(self._it, None)
                    if pkt is None:
                        self._it = None
                        break
                    if not full and (pkt.pts is None or pkt.pts >= switch):
                        cc.skip_frame = "DEFAULT"
                        full = True
                    try:
                        frames = pkt.decode()
                    except (av.error.FFmpegError, ValueError):
                        continue
                    self.frames += len(frames)
                    self._buf = [
                        (int(round((f.pts - t0) * tb * fps)), f) for f in frames if f.pts is not None
                    ]
                    continue
                i, f = self._buf[0]
                if i > hi:
                    break
                self._buf.pop(0)
                if first is None:
                    first = i
                self.pos = i
                if i >= lo and (not out or i > out[-1][0]):
                    out.append((i, f))
            if not fresh or first is None or first <= lo or target == 0.0:
                return out
            back = 2 * back + 2.0  # the seek landed after the span's start: go further back

    def cut_frame(self, a: int, b: int) -> int | None:
        """The frame in ``a+1..b`` with the largest change from its predecessor among those where the exact
        hard-cut test passes, given every frame of ``a - cut_window - 2 .. b + cut_window + 1``; else ``None``
        (as the exact pass, which keeps the strongest of cuts closer than the shortest shot)."""
        w = self.params.cut_window
        det = ShotDetector(self.params)
        feats = _Features(self.cfg, self.reader)
        ids: list[int] = []
        cuts: list[int] = []

        def test(k: int) -> None:
            # While the frames the test reads are in the detector's ring of luma planes.
            if k > 0 and a < ids[k] <= b and det.is_cut(k):
                cuts.append(k)

        for i, f in self._window(max(0, a - w - 2), b + w + 1):
            y, _, score, _, is_black = feats(f)
            det.push(y, score, is_black)
            ids.append(i)
            if len(ids) > w + 1:
                test(len(ids) - w - 2)
        for k in range(max(0, len(ids) - w - 1), len(ids)):
            test(k)
        return ids[max(cuts, key=lambda k: det.scores[k])] if cuts else None

    def first(self, a: int, b: int, black: bool) -> int:
        """The first frame in ``a+1..b`` that is black (``black``) or not (``b`` if none is)."""
        feats = _Features(self.cfg, self.reader)
        for i, f in self._window(a + 1, b - 1):
            if feats(f)[4] == black:
                return i
        return b


def _small_rgb(frame: av.VideoFrame) -> np.ndarray:
    from clipfactory.media.transnet import INPUT_H, INPUT_W

    # Bicubic, as the ffmpeg scaler that the package's own reader (and TransNetV2's training data) uses.
    return frame.reformat(width=INPUT_W, height=INPUT_H, format="rgb24", interpolation="BICUBIC").to_ndarray()


def analyse(path: str | os.PathLike, config: AnalyseConfig | None = None) -> AnalysisResult:
    """Decode ``path`` once and compute shots, per-shot statistics, PDQ hashes, thumbnails and on-screen text.

    Corrupt packets are skipped and counted in ``decode_errors``. Raises :class:`MediaProbeError`
    (``media.*`` reasons) when the file cannot be read or no frame decodes, and
    :class:`~clipfactory.errors.MissingExtraError` when the configuration asks for a model whose package is
    not installed.
    """
    cfg = config or AnalyseConfig()
    item = str(path)
    params = cfg.detector_params()
    detector = ShotDetector(params) if cfg.detector != "transnetv2" else None
    transnet = None
    if cfg.detector != "native":
        from clipfactory.media.transnet import StreamingTransNet, load_model

        transnet = StreamingTransNet(load_model(cfg.transnet_device))
    want_text = cfg.detect_text
    if want_text == "auto":
        want_text = ocr_available()
        if not want_text and not _WARNED:
            _WARNED.append(True)
            log.warning(
                "text on screen is not read (media.analyse detect_text = auto): "
                "pip install 'clipfactory[ocr]' to read it"
            )
    text = _TextSampler(cfg) if want_text else None
    try:
        return _analyse(path, item, cfg, params, detector, transnet, text)
    finally:
        if transnet is not None:
            transnet.close()
        if text is not None:
            text.close()


def _analyse(path, item, cfg, params, detector, transnet, text) -> AnalysisResult:
    sampler = _ThumbSampler()
    stats = DecodeStats()

    times: list[float] = []
    frame_ids: list[int] = []  # frame index of each decoded frame (differs only in coarse mode)
    motion: list[float] = []
    spans: list[int] = []  # frames of the video each step covers (coarse mode)
    sharp: list[float] = []
    luma: list[float] = []
    black: list[bool] = []
    pdq: list[PdqHash] = []
    shots_meta: list[tuple[int, int, str, float | None, bytes | None]] = []

    def close_shot(b: int, kind: str, confidence: float | None) -> None:
        start = sampler.start
        n_text = text.n_for(b - start, fps) if text is not None else 0
        frame, spread = sampler.split(b, n_text)
        thumb = _jpeg(frame, cfg.thumbnail_width, cfg.thumbnail_quality, info.rotation) if frame else None
        if spread:
            text.submit(
                [
                    (
                        idx,
                        int(round(((f.pts - start_pts) * tb if f.pts is not None else idx / fps) * 1000)),
                        f,
                    )
                    for idx, f in spread
                ],
                start,
                b,
                info.rotation,
            )
        shots_meta.append((start, b, kind, confidence, thumb))

    with open_container(path) as container:
        stream = _video_stream(container, item)
        header = read_header(container, stream, item)
        fps = header["fps"] or 25.0
        info: ProbeInfo | None = None
        stream.thread_type = "AUTO"
        if cfg.skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        coarse = _use_coarse(cfg, stream, transnet)
        refiner = None
        if coarse:
            stream.codec_context.skip_frame = "NONREF"
            detector = ShotDetector(_coarse_params(params))
            coarse_bounds = _CoarseBoundaries(cfg, params, detector, frame_ids)
        else:
            bounds = _Boundaries(cfg, detector, transnet, black)
        tb = float(stream.time_base) if stream.time_base else 1.0 / fps
        start_pts = stream.start_time
        feats: _Features | None = None
        next_pdq = 0.0
        next_sharp = 0
        idx = -1
        hashed = _HashedFrames(stream, fps, tb, start_pts, cfg.pdq_interval_s) if coarse else None
        for frame in iter_frames(container, stream, stats, hashed):
            if frame.pts is not None and start_pts is None:
                start_pts = frame.pts
            t = (frame.pts - start_pts) * tb if frame.pts is not None else (idx + 1) / fps
            gap = 1
            if coarse:
                new_idx = int(round(t * fps))
                new_idx = new_idx if new_idx > idx else idx + 1
                gap = new_idx - idx if idx >= 0 else 1
                idx = new_idx
            else:
                idx += 1
            if feats is None:
                # The first frame completes the probe: pixel format, rotation, decoded size.
                info = complete_info(header, frame, stream, item)
                step = max(1, int(round(info.width / cfg.analysis_width)))
                pdq_step = max(1, int(round(info.width / cfg.pdq_width)))
                feats = _Features(cfg, PlaneReader(frame.format.name, step))
                if coarse:
                    refiner = _Refiner(path, cfg, params, feats.reader, stream.index, fps, tb, start_pts)
                    coarse_bounds.refiner = refiner
            y, dy, score, mean, is_black = feats(frame)
            times.append(t)
            frame_ids.append(idx)
            # In coarse mode a step spans ``gap`` frames; motion is given per frame.
            motion.append(dy / gap if gap > 1 else dy)
            spans.append(gap)
            luma.append(mean)
            black.append(is_black)
            # Sharpness on every third frame of the video (in coarse mode, the first decoded one after).
            if idx >= next_sharp:
                sharp.append(_sharpness(y))
                next_sharp = idx + _SHARPNESS_EVERY
            else:
                sharp.append(np.nan)
            if t >= next_pdq:
                y8 = feats.reader.luma_u8(frame, pdq_step)
                h, quality = pdq_of_luma(y8)
                pdq.append(PdqHash(idx, int(round(t * 1000)), h.hex(), quality))
                next_pdq = t + cfg.pdq_interval_s - 0.5 / fps
            sampler.offer(idx, frame)
            if detector is not None:
                detector.push(y, score, is_black, gap)
            if transnet is not None:
                transnet.push(_small_rgb(frame))
            if coarse:
                for b, kind in coarse_bounds.ready():
                    close_shot(b, kind, None)
            else:
                for b, kind, conf in bounds.ready(len(times)):
                    close_shot(frame_ids[b], kind, conf)
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
        n = idx + 1
        if coarse and stream.frames and n < stream.frames <= n + _MAX_TRAILING:
            # Non-reference frames after the last reference frame: the container's count is exact.
            n = int(stream.frames)
        if detector is not None:
            detector.finish()
        if transnet is not None:
            transnet.finish()
        if coarse:
            for b, kind in coarse_bounds.ready(final=n):
                close_shot(b, kind, None)
            refiner.close()
            log.debug(
                "%s: %d frames decoded (reference frames, and the %d frames hashed); %d cuts exact from "
                "them, %d spans (%d frames) decoded again",
                item,
                len(times),
                hashed.forced,
                coarse_bounds.n_exact,
                refiner.windows,
                refiner.frames,
            )
        else:
            for b, kind, conf in bounds.ready(len(times), final=True):
                close_shot(frame_ids[b], kind, conf)
        close_shot(n, "end", None)
        sampler.cands.clear()
        sampler.recent.clear()

    t_arr = np.asarray(times)
    frame_ms = 1000.0 / fps
    duration_ms = int(round(t_arr[-1] * 1000 + frame_ms * (n - frame_ids[-1])))
    motion_a = np.asarray(motion)
    sharp_a = np.asarray(sharp)
    luma_a = np.asarray(luma)
    black_a = np.asarray(black, dtype=bool)
    static_a = motion_a < cfg.static_threshold
    span_a = np.minimum(np.asarray(spans), np.iinfo(np.uint16).max).astype(np.uint16) if coarse else None
    if coarse:
        # Per-frame arrays are indexed by decoded frame; map shot frame ranges through frame indices.
        frame_idx = np.asarray(frame_ids, dtype=np.int64)
    text_idx: np.ndarray | None = None
    text_ms: list[int] = []
    text_lines: list[tuple[str, ...]] = []
    if text is not None:
        ids_, text_ms, text_lines = text.finish()
        text_idx = np.asarray(ids_, dtype=np.int64)
    shots: list[Shot] = []
    for k, (start, end, kind, conf, thumb) in enumerate(shots_meta):
        if coarse:
            lo, hi = (int(x) for x in np.searchsorted(frame_idx, [start, end]))
        else:
            lo, hi = start, end
        sl = slice(lo, max(hi, lo + 1))
        m = motion_a[sl]
        w = None if span_a is None else span_a[sl]
        if lo == 0 and len(m) > 1:
            m = m[1:]  # the first frame has no predecessor
            mw = None if w is None else w[1:]
        else:
            mw = w
        if coarse:
            # Boundaries may fall on frames that were not decoded: their times from the frame rate.
            start_ms = min(duration_ms, int(round(t_arr[0] * 1000 + start * frame_ms)))
            end_ms = (
                min(duration_ms, int(round(t_arr[0] * 1000 + end * frame_ms))) if end < n else duration_ms
            )
        else:
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
                motion=round(_mean(m, mw), 4),
                sharpness=round(_nanmean(sharp_a[sl]), 3),
                luma=round(float(luma_a[sl].mean()), 3),
                black_fraction=round(float(black_a[sl].mean()), 4),
                static_fraction=round(_mean(static_a[sl], w), 4),
                text_fraction=_fraction(text_idx, text_lines, start, end),
                text=join_lines(_in(text_idx, text_lines, start, end)) if text_idx is not None else None,
                transition_confidence=conf,
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
        text_ms=np.maximum.accumulate(np.asarray(text_ms, dtype=np.int32)) if text_ms else _EMPTY_MS,
        text_has=np.asarray([bool(x) for x in text_lines], dtype=bool),
        text_lines=tuple(text_lines),
        span=span_a,
    )
    if text is None:
        signals = replace(signals, text_ms=None, text_has=None, text_lines=None)
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
