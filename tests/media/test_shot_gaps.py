"""The native shot detector across a gap in the video's frames (packets lost to damage): a step over more
frames than the dissolve window has no frame in between to test for a blend; it is no dissolve, and the
detector goes on."""

from __future__ import annotations

import numpy as np

from clipfactory.media.analyse import AnalyseConfig
from clipfactory.media.shots import ShotDetector


def _push_run(det: ShotDetector, level: float, n: int, prev: list, gap_first: int = 1) -> None:
    for j in range(n):
        y = np.full((18, 32), level, np.float32)
        y[::2, ::2] += 3.0 * ((j % 4) - 1.5)  # a little motion, so no frame is static
        score = float(np.abs(y - prev[0]).mean()) if prev[0] is not None else 0.0
        det.push(y, score, False, gap_first if j == 0 else 1)
        prev[0] = y


def test_a_cut_across_a_gap_longer_than_the_dissolve_window_is_found():
    params = AnalyseConfig().detector_params()
    det = ShotDetector(params)
    prev = [None]
    _push_run(det, 60.0, 40, prev)
    # 40 frames of the video lost, and the picture after them is another: a step of 41 frames.
    gap = params.dissolve_window + 30
    _push_run(det, 190.0, 40, prev, gap_first=gap)
    bounds = det.finish()
    # The one change of picture is the step at detector frame 40; nothing else is a boundary.
    assert [b.frame for b in bounds] == [40]
