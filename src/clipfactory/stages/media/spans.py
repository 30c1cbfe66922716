"""Clips from the manifest: the dataset authors' time ranges and captions, checked against the video.

A source listed by several datasets gets one set of clips: spans of different datasets that cover the same
footage (intersection over union at least :data:`MERGE_IOU`) become one clip that carries every dataset's
caption. A span that runs past the video is clipped to its duration, and one that lies wholly outside it is
left out; both are counted in the analysis outcome's detail (``spans_clipped``, ``spans_outside``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...media.analyse import AnalysisResult, Shot
from ...media.cut import snap_start

MERGE_IOU = 0.9


@dataclass(frozen=True)
class ManifestSpan:
    dataset: str
    start_ms: int
    end_ms: int
    caption: str | None = None


@dataclass
class PlannedClip:
    start_ms: int
    end_ms: int
    captions: list[dict[str, str]] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    piece: int = 0
    pieces: int = 1


def load_manifest_spans(catalog_path: str | None, source_ids: list[str]) -> dict[str, list[ManifestSpan]]:
    """The manifests' spans of ``source_ids`` (read-only), in dataset then time order."""
    if not catalog_path or not source_ids:
        return {}

    return load_manifest(catalog_path, source_ids)[0]


def load_manifest(
    catalog_path: str | None, source_ids: list[str]
) -> tuple[dict[str, list[ManifestSpan]], dict[str, list[dict[str, str]]]]:
    """The manifests' spans of ``source_ids`` and their video-level captions (rows without a time range,
    as WebVid's), in one read-only query: ``(spans by source, captions by source)``."""
    if not catalog_path or not source_ids:
        return {}, {}
    from ...catalog import Catalog

    rows = Catalog(catalog_path).query(
        """SELECT dataset, source_id, start_ms, end_ms, caption FROM clip_spans
           WHERE source_id IN (SELECT unnest(?))
             AND ((start_ms IS NOT NULL AND end_ms IS NOT NULL) OR nullif(trim(caption), '') IS NOT NULL)
           ORDER BY source_id, dataset, start_ms NULLS FIRST, end_ms, caption""",
        [sorted(set(source_ids))],
    )
    spans: dict[str, list[ManifestSpan]] = {}
    video: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r["start_ms"] is not None and r["end_ms"] is not None:
            spans.setdefault(r["source_id"], []).append(
                ManifestSpan(r["dataset"], int(r["start_ms"]), int(r["end_ms"]), r["caption"])
            )
        else:
            cap = {"dataset": r["dataset"], "caption": r["caption"], "scope": "video"}
            if cap not in video.setdefault(r["source_id"], []):
                video[r["source_id"]].append(cap)
    return spans, video


def _iou(a0: int, a1: int, b0: int, b1: int) -> float:
    inter = max(0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


def plan_manifest(
    spans: list[ManifestSpan],
    result: AnalysisResult,
    *,
    mode: str,
    min_clip_s: float,
    max_clip_s: float,
    keyframes: list[int] | None,
    keyframe_tolerance_s: float,
    keyframe_tolerance_share: float,
) -> tuple[list[PlannedClip], dict[str, int]]:
    """Clips from manifest ``spans``; ``mode`` ``manifest`` keeps each span whole, ``manifest+shots`` splits
    a span longer than ``max_clip_s`` at the detected cuts inside it. Returns ``(clips, counts)``."""
    duration = int(result.duration_ms or 0)
    min_ms = int(round(min_clip_s * 1000))
    counts = {"spans": len(spans), "spans_clipped": 0, "spans_outside": 0, "spans_too_short": 0, "spans_merged": 0}
    merged: list[PlannedClip] = []
    for sp in spans:
        s, e = max(0, sp.start_ms), min(duration, sp.end_ms) if duration else sp.end_ms
        if e <= s:
            counts["spans_outside"] += 1
            continue
        if (s, e) != (sp.start_ms, sp.end_ms):
            counts["spans_clipped"] += 1
        if e - s < max(min_ms, 1):
            counts["spans_too_short"] += 1
            continue
        same = next((c for c in merged if _iou(c.start_ms, c.end_ms, s, e) >= MERGE_IOU), None)
        cap = {"dataset": sp.dataset, "caption": sp.caption} if sp.caption else None
        if same is not None:
            counts["spans_merged"] += 1
            if cap and cap not in same.captions:
                same.captions.append(cap)
            if sp.dataset not in same.datasets:
                same.datasets.append(sp.dataset)
            continue
        merged.append(PlannedClip(s, e, [cap] if cap else [], [sp.dataset]))

    cuts = [sh.start_ms for sh in result.shots[1:]]
    out: list[PlannedClip] = []
    max_ms = int(max_clip_s * 1000)
    for c in sorted(merged, key=lambda c: (c.start_ms, c.end_ms)):
        bounds = [c.start_ms, c.end_ms]
        if mode == "manifest+shots" and c.end_ms - c.start_ms > max_ms:
            inner = [t for t in cuts if c.start_ms + min_ms <= t <= c.end_ms - min_ms]
            bounds = [c.start_ms, *inner, c.end_ms]
        n = len(bounds) - 1
        for k in range(n):
            s, e = bounds[k], bounds[k + 1]
            if keyframes:
                forward = max(keyframe_tolerance_s * 1000, keyframe_tolerance_share * (e - s))
                snapped = snap_start(s, e, keyframes, forward_ms=int(forward), backward_ms=1)
                if e - snapped >= max(min_ms, 1):
                    s = snapped
            out.append(PlannedClip(s, e, list(c.captions), list(c.datasets), k, n))
    return out, counts


def shot_scores(result: AnalysisResult, start_ms: int, end_ms: int) -> tuple[Shot | None, dict[str, Any]]:
    """The shot that overlaps ``[start_ms, end_ms)`` most, and the scores of the clip's own frames
    (:meth:`AnalysisResult.span_scores`)."""
    weights = [(sh, max(0, min(end_ms, sh.end_ms) - max(start_ms, sh.start_ms))) for sh in result.shots]
    weights = [(sh, w) for sh, w in weights if w > 0]
    if not weights:
        return None, {}
    best = max(weights, key=lambda x: x[1])[0]
    return best, result.span_scores(start_ms, end_ms)


def captions_json(captions: list[dict[str, str]]) -> str | None:
    return json.dumps(captions, ensure_ascii=False, sort_keys=True) if captions else None
