"""Streaming shot-boundary detection from per-frame scores.

The analysis pass feeds one :class:`FrameScores` per decoded frame to :class:`ShotDetector`, which
emits boundaries a bounded number of frames later (longer only while a black run or a dissolve is
still going on). Three detectors share the stream:

* **hard cuts**: the frame-to-frame change (mean absolute difference of the subsampled luma plus
  the two chroma planes) must exceed ``cut_min_score`` *and* be ``cut_adaptive_ratio`` times the
  mean change of the ``cut_window`` frames on each side. The ratio is what keeps fast motion and
  hand-held shake from being read as cuts (the same idea as PySceneDetect's AdaptiveDetector).
  A step into or out of a one-frame anomaly (a flash, a corrupt frame) is not a cut: the frames on
  either side of the anomaly differ by less than ``flash_ratio`` times the step.
* **fades**: a run of black frames (mean luma under ``black_luma`` and almost no bright pixel)
  between two non-black stretches gives one boundary in the middle of the run.
* **dissolves**: over a window of ``dissolve_window`` frames the picture changes a lot, and the
  middle frame is close to the average of the two ends (a cross-fade is a linear blend; motion is
  not), and no single frame-to-frame change inside the window exceeds ``dissolve_step_share`` times
  the window's change plus ``dissolve_step_slack`` (a blend spreads its change over the window). A
  run of such windows gives one boundary at its centre. A dissolve that starts or ends on black is
  reported as a fade.

A boundary ``b`` means frame ``b`` is the first frame of the next shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetectorParams:
    """Thresholds of the detector; :class:`clipfactory.media.analyse.AnalyseConfig` documents them."""

    cut_min_score: float = 12.0
    cut_adaptive_ratio: float = 3.0
    cut_window: int = 2
    black_luma: float = 24.0
    dissolve_window: int = 10
    dissolve_min_change: float = 10.0
    dissolve_max_error: float = 0.3
    dissolve_min_frames: int = 3
    dissolve_step_share: float = 0.5
    dissolve_step_slack: float = 2.0
    flash_ratio: float = 0.35
    min_shot_frames: int = 6


@dataclass
class Boundary:
    frame: int
    kind: str  # "cut" | "fade" | "dissolve"
    score: float
    lo: int = -1  # first and last frame the transition touches
    hi: int = -1
    at: int = -1  # the boundary's frame of the video, where it differs from ``frame`` (steps over several)

    def __post_init__(self) -> None:
        if self.lo < 0:
            self.lo = self.frame
        if self.hi < 0:
            self.hi = self.frame


class ShotDetector:
    """Feed frames in order with :meth:`push`; collect final boundaries from :meth:`pop_final`."""

    def __init__(self, params: DetectorParams):
        self.p = params
        self.scores: list[float] = []  # frame-to-frame change, index = frame
        self.spans: list[int] = []  # frames of the video each step covers
        self.pos: list[int] = []  # position of each frame in the video's frames (its index when spans are 1)
        self.black: list[bool] = []
        self.lin_ok: dict[int, float] = {}
        self.n = 0
        self._ring: list[np.ndarray | None] = [None] * (params.dissolve_window + 1)
        self._black_start: int | None = None
        self._seen_content = False
        self._first_content: int | None = None
        self._dis_start: int | None = None
        self._dis_last: int | None = None
        self._dis_peak = 0.0
        self._dis_black = False
        self._pending: list[Boundary] = []
        self._last_final = 0
        self._final: list[Boundary] = []
        self._final_new: list[Boundary] = []
        self._ended = False
        self._inv: float | None = None

    # -- input ------------------------------------------------------------------------------------

    def push(self, y: np.ndarray, score: float, is_black: bool, span: int = 1) -> None:
        """Add frame ``self.n``: its small luma plane, its change score from the previous frame, and
        whether it is black. ``span`` is how many frames of the video the step from the previous frame
        covers (more than 1 when only reference frames are decoded): a cut's neighbours are scaled to the
        cut's own span, so that steps over more frames of motion than the cut's do not hide it."""
        i = self.n
        self.n += 1
        self.scores.append(score)
        self.spans.append(span)
        self.pos.append(self.pos[-1] + span if self.pos else 0)
        self.black.append(is_black)
        k = self.p.dissolve_window
        self._ring[i % (k + 1)] = y
        self._check_black(i, is_black)
        if i >= k:
            self._check_dissolve(i, y)
        # One frame more than the window, so that a neighbour's own flash test can see its successor.
        j = i - self.p.cut_window - 1
        if j >= 1:
            self._check_cut(j)
        self._finalise(upto=i)

    def finish(self) -> list[Boundary]:
        """End of stream: settle everything still pending and return all final boundaries."""
        n = self.n
        for j in range(max(1, n - self.p.cut_window - 1), n):
            self._check_cut(j, at_end=True)
        self._close_dissolve()
        # A long trailing black run (fade-out, black end card) becomes its own last shot; a short one
        # ends the last shot.
        start = self._black_start
        if (
            start is not None
            and self._seen_content
            and self._at(n) - self._at(start) >= self.p.min_shot_frames
        ):
            k = self._reach(self.p.dissolve_window)
            self._pending.append(Boundary(start, "fade", _BLACK_RUN_SCORE + n - start, start - k, n))
        self._black_start = None
        self._ended = True
        self._finalise(upto=n + 1)
        return self._final

    def settled(self) -> int:
        """A frame before which no new final boundary can appear: pending boundaries, an open black run
        or dissolve, and the cuts not yet tested can each still give one from its first touched frame."""
        k, w = self.p.dissolve_window, self.p.cut_window
        low = self.n - k - w - 2
        if self._pending:
            low = min(low, min(b.lo for b in self._pending))
        if self._black_start is not None:
            low = min(low, self._black_start - k)
        if self._dis_start is not None:
            low = min(low, self._dis_start - k // 2)
        return max(0, low)

    def pop_final(self) -> list[Boundary]:
        out, self._final_new = self._final_new, []
        return out

    # -- detectors --------------------------------------------------------------------------------

    def _check_cut(self, j: int, at_end: bool = False) -> None:
        if self.is_cut(j):
            self._pending.append(Boundary(j, "cut", self.scores[j], j - 1, j))

    def is_cut(self, j: int) -> bool:
        """Whether the step into frame ``j`` passes the hard-cut test (frames up to ``j + cut_window + 1``
        pushed, and at least ``j - 2`` still in the ring of luma planes)."""
        s = self.scores[j]
        if s < self.p.cut_min_score:
            return False
        w = self.p.cut_window
        # Neighbours that enter or leave a one-frame anomaly (a flash, a corrupt frame) are left out
        # of the reference, so a cut right next to one is still an isolated step.
        sp = self.spans
        nb = [
            self.scores[t] * sp[j] / sp[t]
            for t in range(max(1, j - w), min(self.n, j + w + 1))
            if t != j and not (self.scores[t] >= self.p.cut_min_score and self._is_flash(t))
        ]
        ref = (sum(nb) / len(nb)) if nb else 0.0
        return s >= self.p.cut_adaptive_ratio * max(ref, 1.0) and not self._is_flash(j)

    def _luma(self, t: int) -> np.ndarray | None:
        k = self.p.dissolve_window
        if t < 0 or t >= self.n or t < self.n - (k + 1):
            return None
        return self._ring[t % (k + 1)]

    def _is_flash(self, j: int) -> bool:
        """True when frame ``j`` enters or leaves a one-frame anomaly (a flash, a corrupt frame):
        the pictures on either side of the anomaly match each other."""
        before2, before, at, after = (self._luma(t) for t in (j - 2, j - 1, j, j + 1))
        if before is None or at is None:
            return False
        limit = self.p.flash_ratio * float(np.abs(at - before).sum()) * self._inv_y(at)
        if after is not None and float(np.abs(after - before).sum()) * self._inv_y(at) < limit:
            return True  # j is the anomaly: j-1 and j+1 agree
        if before2 is not None and float(np.abs(at - before2).sum()) * self._inv_y(at) < limit:
            return True  # j-1 was the anomaly: j-2 and j agree
        return False

    def _inv_y(self, y: np.ndarray) -> float:
        if self._inv is None:
            self._inv = 1.0 / y.size
        return self._inv

    def _check_black(self, i: int, is_black: bool) -> None:
        if is_black:
            if self._black_start is None:
                self._black_start = i
            return
        if self._black_start is not None:
            start = self._black_start
            self._black_start = None
            k = self._reach(self.p.dissolve_window)
            if self._seen_content:
                # Through black: the boundary is the middle of the black run.
                self._pending.append(
                    Boundary((start + i) // 2, "fade", _BLACK_RUN_SCORE + i - start, start - k, i + k)
                )
            elif self._at(i) >= self.p.min_shot_frames:
                # A long black lead-in is a shot of its own; the picture starts at its end.
                self._pending.append(Boundary(i, "fade", _BLACK_RUN_SCORE + i, 0, i + k))
        self._seen_content = True
        if self._first_content is None:
            self._first_content = i

    def _check_dissolve(self, i: int, y: np.ndarray) -> None:
        k = self.p.dissolve_window
        ia, im = i - k, i - k // 2
        pos = self.pos
        if pos[i] - pos[ia] > k:
            # Steps over several frames of the video: the window's ends are k frames apart, and the middle
            # frame is compared with the blend of the ends at its own position between them.
            while pos[i] - pos[ia + 1] >= k:
                ia += 1
            if ia + 1 >= i:
                # One step over more than the window (frames lost to damage, or a long gap): no frame in
                # between to compare with a blend, so no dissolve here; one in progress ends.
                if self._dis_start is not None:
                    self._close_dissolve()
                return
            mid = (pos[ia] + pos[i]) / 2
            im = min(range(ia + 1, i), key=lambda t: abs(pos[t] - mid))
        a = self._ring[ia % (k + 1)]
        m = self._ring[im % (k + 1)]
        if self._inv is None:
            self._inv = 1.0 / y.size
        change = float(np.abs(y - a).sum()) * self._inv
        c = im
        ok = False
        if change >= self.p.dissolve_min_change:
            if pos[i] - pos[ia] == i - ia:
                err = float(np.abs(m - (a + y) * 0.5).sum()) * self._inv
            else:
                w = (pos[im] - pos[ia]) / (pos[i] - pos[ia])
                err = float(np.abs(m - (a * (1.0 - w) + y * w)).sum()) * self._inv
            # Frames inside the window must change smoothly: no single step carries the change.
            step_limit = self.p.dissolve_step_share * change
            slack = self.p.dissolve_step_slack
            if pos[i] - pos[ia] == i - ia:
                smooth = max(self.scores[ia + 1 : i + 1]) < step_limit + slack
            else:  # a step over several frames of the video may carry their share of the change
                smooth = all(
                    self.scores[t] < step_limit * self.spans[t] + slack for t in range(ia + 1, i + 1)
                )
            if err <= self.p.dissolve_max_error * change and smooth:
                ok = True
        if ok:
            if self._dis_start is None:
                self._dis_start = c
                self._dis_peak = 0.0
                self._dis_black = False
            self._dis_last = c
            self._dis_peak = max(self._dis_peak, change)
            if self.black[i] or self.black[ia]:
                self._dis_black = True
        elif self._dis_start is not None and c - (self._dis_last or c) > 1:
            self._close_dissolve()

    def _at(self, i: int) -> int:
        """The frame of the video of detector frame ``i`` (``i`` itself when every frame is pushed); frames
        before the first and after the last are counted one frame of the video each."""
        pos = self.pos
        if not pos or i < 0:
            return i
        if i < len(pos):
            return pos[i]
        return pos[-1] + i - len(pos) + 1

    def _reach(self, k: int) -> int:
        """Detector frames that cover about ``k`` frames of the video: ``k`` when every frame is pushed."""
        n = self.n
        if n < 2 or self.pos[-1] == n - 1:
            return k
        return max(1, round(k * (n - 1) / self.pos[-1]))

    def _close_dissolve(self) -> None:
        if self._dis_start is None:
            return
        start, last = self._dis_start, self._dis_last
        self._dis_start = self._dis_last = None
        h = self._reach(self.p.dissolve_window // 2)
        if self._first_content is None or start - h <= self._first_content + h:
            return  # a fade-in from the leading black is the first shot's start, not a boundary
        if last - start + 1 >= self.p.dissolve_min_frames:
            kind = "fade" if self._dis_black else "dissolve"
            pos = self.pos
            at = (pos[start] + pos[last] + 1) // 2 if pos[last] - pos[start] != last - start else -1
            self._pending.append(
                Boundary((start + last + 1) // 2, kind, self._dis_peak, start - h, last + h, at)
            )

    # -- merging ----------------------------------------------------------------------------------

    def _finalise(self, upto: int) -> None:
        """Make pending boundaries final once the stream is far enough past them.

        A boundary is ready when frame ``upto`` is ``min_shot_frames + dissolve_window`` past the last
        frame its transition touches (so a neighbouring transition can still merge with it), and no
        black run or dissolve that could absorb it is still open.
        """
        if self._black_start is not None:
            upto = min(upto, self._black_start - self.p.dissolve_window)
        if self._dis_start is not None:
            upto = min(upto, self._dis_start - self.p.dissolve_window)
        if not self._pending:
            return
        self._pending.sort(key=lambda b: b.frame)
        margin = 0 if self._ended else self.p.min_shot_frames + self.p.dissolve_window
        ready = [b for b in self._pending if b.hi + margin < upto]
        if not ready:
            return
        # Also hold back anything close to a not-yet-ready boundary so they are merged together.
        rest = [b for b in self._pending if b.hi + margin >= upto]
        at, gap = self._at, self.p.min_shot_frames
        while ready and rest:
            first = at(min(b.lo for b in rest))
            held = [b for b in ready if first - at(b.hi) < gap]
            if not held:
                break
            ready = [b for b in ready if first - at(b.hi) >= gap]
            rest += held
        if not ready:
            return
        self._pending = rest
        for group in _groups(ready, gap, at):
            best = _pick(group)
            too_late = at(best.frame) > at(self.n) - gap if self._ended else best.frame >= self.n
            if at(best.frame) - at(self._last_final) < gap or too_late:
                continue
            self._last_final = best.frame
            self._final.append(best)
            self._final_new.append(best)


_PRIORITY = {"fade": 0, "cut": 1, "dissolve": 2}
# Not a threshold: black-run fades score above any change score (at most 3 x 255), so they win a
# cluster; any value above that ranks the same.
_BLACK_RUN_SCORE = 1000.0


def _groups(bounds: list[Boundary], gap: int, at=lambda i: i) -> list[list[Boundary]]:
    """Boundaries in clusters: a boundary whose transition starts under ``gap`` frames of the video (``at``
    gives a detector frame's position) after the end of the cluster's is part of it."""
    groups: list[list[Boundary]] = []
    for b in sorted(bounds, key=lambda b: (b.lo, b.frame)):
        if groups and at(b.lo) - at(max(g.hi for g in groups[-1])) < gap:
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def _pick(group: list[Boundary]) -> Boundary:
    """One boundary for a cluster: a black run wins, then the strongest cut; gradual transitions that
    run into each other (a dip to a dark title card) become one, at the centre of their span."""
    best = min(group, key=lambda b: (_PRIORITY[b.kind], -b.score))
    gradual = [b for b in group if b.kind != "cut" and b.score < _BLACK_RUN_SCORE]
    if len(gradual) == len(group) > 1:
        lo, hi = min(b.lo for b in group), max(b.hi for b in group)
        kind = "fade" if any(b.kind == "fade" for b in group) else "dissolve"
        return Boundary((lo + hi + 1) // 2, kind, max(b.score for b in group), lo, hi)
    return best
