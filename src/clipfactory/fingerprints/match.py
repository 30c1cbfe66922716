"""Deciding that two frame sequences show the same footage, and where.

Frame hash matches (Hamming distance <= 31) are only evidence. A *segment* is accepted when the matches
line up in time like a copy does:

1. **Alignment.** Each matched pair gives an offset ``source time - query time``. The offset with the
   most support (within ``offset_tolerance_ms``) is taken, its pairs are removed, and the next offset is
   searched, so a query that reuses several parts of a source (an edit, a trailer) gives one segment per
   part.
2. **Runs.** The pairs of one offset are split wherever consecutive matched query frames are more than
   ``max_gap_ms`` apart.
3. **Share** (vPDQ's rule). Within a run's time span on both sides, the side sampled more sparsely (the
   one with fewer frames in the span) must have at least ``min_share`` (80%) of its usable frames
   matched, and at least ``min_frames`` of them.

``confidence`` of a segment = share x closeness x support: closeness is 1 while the mean distance of the
matched frames is at most 16 bits and falls linearly to 0.5 at 31; support = min(1, matched frames / 4).
A copy matched over four or more frames at typical re-encode distances scores 1.0; short or noisy matches
score lower. See ``docs/fingerprints.md``.

A mirrored copy is aligned the same way, from the query's mirrored hashes alone (``mirrored`` on the
segment): plain and mirrored matches never add up to one segment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .hashes import MATCH_DISTANCE, MIN_QUALITY


class MatchConfig(BaseModel):
    """Thresholds of fingerprint matching (lookup, takedown --match, tombstones, verify)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_distance: int = Field(
        MATCH_DISTANCE,
        ge=0,
        le=47,
        description="Largest Hamming distance (of 256 bits) for two frames to match.",
    )
    min_quality: int = Field(
        MIN_QUALITY, ge=0, le=100, description="Frames with a lower PDQ quality are ignored."
    )
    min_share: float = Field(
        0.8, gt=0, le=1, description="Share of the sparser side's frames that must match within a segment."
    )
    min_frames: int = Field(3, ge=1, description="Fewest matched frames (on the sparser side) for a segment.")
    offset_tolerance_ms: int = Field(
        1000, ge=0, description="Matches whose time offsets differ by at most this belong to one alignment."
    )
    max_gap_ms: int = Field(
        3000, ge=0, description="A gap longer than this between matched query frames splits a segment."
    )
    query_fps: float = Field(
        0.0,
        ge=0,
        description="Frames per second hashed from a query file; 0 hashes every frame. PDQ of fast footage "
        "changes within a frame or two, and the catalog's samples fall anywhere in the query, so dense "
        "hashing is what makes sub-clips match.",
    )
    max_query_frames: int = Field(
        9000,
        ge=10,
        description="Most frames hashed from one query; longer queries are sampled evenly sparser.",
    )
    max_candidates: int = Field(
        200, ge=1, description="Sources compared frame by frame after the index search, most hits first."
    )
    min_confidence: float = Field(
        0.0, ge=0, le=1, description="Segments below this confidence are not reported."
    )
    mirror_search: bool = Field(
        True,
        description="Also look for mirrored (left-right flipped) copies: query frames are hashed mirrored too "
        "and those hashes aligned on their own.",
    )
    crop_search: bool = Field(
        True,
        description="Also look for cropped copies through the thumbnails' crop variants (fingerprints.crops).",
    )
    crop_max_distance: int = Field(
        24, ge=0, le=31, description="Largest distance between a query frame and a thumbnail crop variant."
    )
    max_crop_candidates: int = Field(
        8, ge=0, description="Crop candidates verified against source media per lookup."
    )
    crop_window_s: float = Field(
        30.0,
        gt=0,
        description="Seconds of source media decoded on each side of a crop candidate to verify it.",
    )


@dataclass
class Segment:
    """One aligned run of matches between a query and a source."""

    source_id: str
    query_start_ms: int
    query_end_ms: int
    source_start_ms: int
    source_end_ms: int
    offset_ms: int
    matched_query_frames: int
    matched_source_frames: int
    query_frames: int
    source_frames: int
    share: float
    mean_distance: float
    confidence: float
    edit: dict | None = None  # {"kind": "crop", "crop_x", "crop_y"} for a copy found through a crop variant
    mirrored: bool = False  # the query shows the source flipped left to right

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source_id")
        if d["edit"] is None:
            d.pop("edit")
        return d


def confidence(share: float, mean_distance: float, matched: int) -> float:
    closeness = 1.0 - 0.5 * min(1.0, max(0.0, (mean_distance - 16.0) / 15.0))
    support = min(1.0, matched / 4.0)
    return round(float(share * closeness * support), 4)


def _count_in(sorted_times: np.ndarray, lo: int, hi: int) -> int:
    return int(np.searchsorted(sorted_times, hi, "right") - np.searchsorted(sorted_times, lo, "left"))


def align(
    source_id: str,
    q_frame: np.ndarray,
    q_time: np.ndarray,
    s_time: np.ndarray,
    dist: np.ndarray,
    q_all_times: np.ndarray,
    s_all_times: np.ndarray,
    cfg: MatchConfig,
    *,
    query_step_ms: int = 500,
    source_step_ms: int = 1000,
    max_segments: int = 64,
) -> list[Segment]:
    """Accepted segments between one query and one source.

    ``q_frame``/``q_time``/``s_time``/``dist`` describe the matched pairs (query frame number, query time,
    source frame time, distance); ``q_all_times`` and ``s_all_times`` are the sorted times of every
    usable frame on each side (the denominators of the shares).
    """
    segments: list[Segment] = []
    if not len(dist):
        return segments
    off = (s_time - q_time).astype(np.int64)
    remaining = np.ones(len(off), bool)
    tol = cfg.offset_tolerance_ms
    for _ in range(max_segments):
        idx = np.flatnonzero(remaining)
        if len(idx) < cfg.min_frames:
            break
        so = np.sort(off[idx])
        lo = np.searchsorted(so, so - tol, "left")
        hi = np.searchsorted(so, so + tol, "right")
        best = int(np.argmax(hi - lo))
        center = int(np.median(so[lo[best] : hi[best]]))
        member = remaining & (np.abs(off - center) <= tol)
        remaining &= ~member
        sel = np.flatnonzero(member)
        if len(np.unique(q_frame[sel])) < cfg.min_frames and len(np.unique(s_time[sel])) < cfg.min_frames:
            if hi[best] - lo[best] < cfg.min_frames:
                break  # the strongest remaining alignment is too weak; so are all the others
            continue
        order = sel[np.argsort(q_time[sel], kind="stable")]
        gaps = np.flatnonzero(np.diff(q_time[order]) > cfg.max_gap_ms)
        for run in np.split(order, gaps + 1):
            seg = _score_run(
                source_id,
                run,
                q_frame,
                q_time,
                s_time,
                dist,
                q_all_times,
                s_all_times,
                cfg,
                center,
                query_step_ms,
                source_step_ms,
            )
            if seg is not None:
                segments.append(seg)
    segments.sort(key=lambda s: (s.query_start_ms, s.source_start_ms))
    return segments


def _score_run(source_id, run, q_frame, q_time, s_time, dist, q_all, s_all, cfg, offset, q_step, s_step):
    q_lo, q_hi = int(q_time[run].min()), int(q_time[run].max())
    s_lo, s_hi = int(s_time[run].min()), int(s_time[run].max())
    n_q = max(1, _count_in(q_all, q_lo, q_hi))
    n_s = max(1, _count_in(s_all, s_lo, s_hi))
    m_q = len(np.unique(q_frame[run]))
    m_s = len(np.unique(s_time[run]))
    if n_s <= n_q:
        share, matched = m_s / n_s, m_s
    else:
        share, matched = m_q / n_q, m_q
    share = min(1.0, share)
    if matched < cfg.min_frames or share < cfg.min_share:
        return None
    # Mean distance over the best pair of each matched query frame.
    best: dict[int, int] = {}
    for f, d in zip(q_frame[run].tolist(), dist[run].tolist(), strict=True):
        if f not in best or d < best[f]:
            best[f] = d
    mean_d = float(np.mean(list(best.values())))
    conf = confidence(share, mean_d, matched)
    if conf < cfg.min_confidence:
        return None
    return Segment(
        source_id=source_id,
        query_start_ms=max(0, min(q_lo, s_lo - int(offset))),
        query_end_ms=max(q_hi + q_step, s_hi + s_step - int(offset)),
        source_start_ms=s_lo,
        source_end_ms=s_hi + s_step,
        offset_ms=int(offset),
        matched_query_frames=m_q,
        matched_source_frames=m_s,
        query_frames=n_q,
        source_frames=n_s,
        share=round(share, 4),
        mean_distance=round(mean_d, 2),
        confidence=conf,
    )
