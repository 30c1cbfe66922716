"""The two-level analysis pass (``skip_nonref``): reference frames first, every frame only around
candidates. Its boundaries must be the full pass's, on the exact frames, also where a cut falls between
two reference frames."""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipfactory.media.analyse import AnalyseConfig, analyse

W, H, FPS, N = 160, 96, 25, 150
# Hard cuts (first frame of the new shot) and a run of black frames between two shots.
CUTS = [29, 62, 119]
BLACK = (85, 93)  # frames 85..92 black: the boundary is the middle of the run, (85 + 93) // 2
FADE = (BLACK[0] + BLACK[1]) // 2


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    texs = [np.kron(rng.integers(0, 256, (H // 8, W // 8, 3)), np.ones((8, 8, 1))) for _ in range(5)]
    bounds = [0, *CUTS[:2], BLACK[1], CUTS[2], N]
    out = []
    for i in range(N):
        shot = max(k for k, b in enumerate(bounds[:-1]) if i >= b)
        # Still pictures with a little noise, and a small square moving across each.
        img = texs[shot] + rng.normal(0, 2, (H, W, 3))
        x = 4 + 2 * (i - bounds[shot])
        img[40:56, x % (W - 16) : x % (W - 16) + 16] = 255
        if BLACK[0] <= i < BLACK[1]:
            img = np.zeros((H, W, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _encode(path: Path, x264_params: str) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast", "x264-params": x264_params}
        s.time_base = Fraction(1, FPS)
        for i, img in enumerate(_frames()):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def bframes(tmp_path_factory) -> Path:
    # Three B-frames between reference frames, no keyframe at scene changes: the cuts at 29 and 119 fall on
    # non-reference frames and 62 just after one, so no cut lies between two consecutive decoded frames.
    path = tmp_path_factory.mktemp("two_level") / "bframes.mp4"
    return _encode(path, "bframes=3:b-adapt=0:b-pyramid=none:scenecut=0:keyint=250")


def _nonref_frames(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONREF"
        return [int(round(f.pts * float(s.time_base) * FPS)) for f in c.decode(s)]


def _log_counts(caplog) -> tuple[int, int]:
    """(reference frames decoded, frames decoded again) from the pass's debug line."""
    msg = next(r.getMessage() for r in caplog.records if "reference frames decoded" in r.getMessage())
    ref, again = re.search(r"(\d+) reference frames decoded.*\((\d+) frames\) decoded again", msg).groups()
    return int(ref), int(again)


def test_cuts_between_reference_frames_land_on_their_frames(bframes, caplog):
    refs = set(_nonref_frames(bframes))
    # The set-up this test is about: no cut has both its frame and the one before it decoded.
    assert all(not (c in refs and c - 1 in refs) for c in CUTS), sorted(refs)
    full = analyse(bframes, AnalyseConfig(detect_text=False))
    assert full.boundaries == sorted([*CUTS, FADE])
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        two = analyse(bframes, AnalyseConfig(detect_text=False, skip_nonref=True))
    assert two.boundaries == full.boundaries
    assert [s.transition_out for s in two.shots] == [s.transition_out for s in full.shots]
    assert two.n_frames == full.n_frames == N
    ref, again = _log_counts(caplog)
    assert ref == len(refs) < 0.4 * N  # one frame in four, and the spans around three cuts and two run ends
    assert ref + again < N
    # Per-frame scores come from the reference frames; the shots' means stay close to the full pass's.
    for a, b in zip(full.shots, two.shots, strict=True):
        assert (a.start_ms, a.end_ms) == (b.start_ms, b.end_ms)
        assert abs(a.luma - b.luma) < 3.0
        assert a.black_fraction == pytest.approx(b.black_fraction, abs=0.15)
        assert b.thumbnail is not None


def test_auto_uses_reference_frames_only_with_b_frames(bframes, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        r = analyse(bframes, AnalyseConfig(detect_text=False, skip_nonref="auto"))
    assert any("reference frames decoded" in x.getMessage() for x in caplog.records)
    assert r.boundaries == sorted([*CUTS, FADE])
    caplog.clear()
    # Without B-frames every frame is a reference frame: the pass decodes every frame, as the full one.
    plain = _encode(tmp_path / "plain.mp4", "bframes=0:scenecut=0:keyint=250")
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        r = analyse(plain, AnalyseConfig(detect_text=False, skip_nonref="auto"))
    assert not any("reference frames decoded" in x.getMessage() for x in caplog.records)
    assert r.boundaries == sorted([*CUTS, FADE])
