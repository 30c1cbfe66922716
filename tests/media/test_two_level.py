"""The two-level analysis pass (``skip_nonref``): reference frames first, every frame only around
candidates. Its boundaries must be the full pass's, on the exact frames, also where a cut falls between
two reference frames."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import av
import numpy as np
import pytest
from media_synth import encode_h264

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
    return encode_h264(path, _frames(), fps=FPS, crf=18, preset="veryfast", x264_params=x264_params)


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


TWO_LEVEL = "frames decoded (reference frames"  # the two-level pass's debug line


def _log_counts(caplog) -> tuple[int, int]:
    """(frames decoded by the pass, frames decoded again) from the pass's debug line."""
    msg = next(r.getMessage() for r in caplog.records if TWO_LEVEL in r.getMessage())
    ref, again = re.search(r"(\d+) frames decoded \(reference.*\((\d+) frames\) decoded again", msg).groups()
    return int(ref), int(again)


def test_cuts_between_reference_frames_land_on_their_frames(bframes, caplog):
    refs = set(_nonref_frames(bframes))
    # The set-up this test is about: no cut has both its frame and the one before it decoded.
    assert all(not (c in refs and c - 1 in refs) for c in CUTS), sorted(refs)
    full = analyse(bframes, AnalyseConfig(detect_text=False, skip_nonref=False))
    assert full.boundaries == sorted([*CUTS, FADE])
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        two = analyse(bframes, AnalyseConfig(detect_text=False, skip_nonref=True))
    assert two.boundaries == full.boundaries
    assert [s.transition_out for s in two.shots] == [s.transition_out for s in full.shots]
    assert two.n_frames == full.n_frames == N
    # Decoded: the reference frames (one in four) and the frames PDQ hashes, one a second, whatever their
    # type; then the spans around three cuts and two run ends.
    ref, again = _log_counts(caplog)
    assert ref == len(refs | set(range(0, N, FPS))) < 0.4 * N
    assert ref + again < N
    # The same frames hashed as by the full pass, to the bit: fingerprints do not depend on the pass.
    assert [p.frame_index for p in full.pdq] == list(range(0, N, FPS))
    assert [(p.frame_index, p.hash_hex) for p in two.pdq] == [(p.frame_index, p.hash_hex) for p in full.pdq]
    # Per-frame scores come from the reference frames; the shots' means stay close to the full pass's.
    for a, b in zip(full.shots, two.shots, strict=True):
        assert (a.start_ms, a.end_ms) == (b.start_ms, b.end_ms)
        assert abs(a.luma - b.luma) < 3.0
        assert a.black_fraction == pytest.approx(b.black_fraction, abs=0.15)
        assert b.thumbnail is not None


def test_default_uses_reference_frames_only_with_b_frames(bframes, tmp_path, caplog):
    # The default (skip_nonref = "auto") is the two-level pass on H.264 with B-frames.
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        r = analyse(bframes, AnalyseConfig(detect_text=False))
    assert any(TWO_LEVEL in x.getMessage() for x in caplog.records)
    assert r.boundaries == sorted([*CUTS, FADE])
    caplog.clear()
    # skip_nonref = false forces the pass over every frame.
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        r = analyse(bframes, AnalyseConfig(detect_text=False, skip_nonref=False))
    assert not any(TWO_LEVEL in x.getMessage() for x in caplog.records)
    assert r.boundaries == sorted([*CUTS, FADE])
    # Without B-frames every frame is a reference frame: the pass decodes every frame, as the full one.
    plain = _encode(tmp_path / "plain.mp4", "bframes=0:scenecut=0:keyint=250")
    with caplog.at_level(logging.DEBUG, logger="clipfactory.media.analyse"):
        r = analyse(plain, AnalyseConfig(detect_text=False))
    assert not any(TWO_LEVEL in x.getMessage() for x in caplog.records)
    assert r.boundaries == sorted([*CUTS, FADE])


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (H // 8, W // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)


def test_flash_on_a_reference_frame_before_a_cut(tmp_path):
    # A still picture, a white frame at 30, the picture again at 31, a hard cut at 32. With one B-frame
    # between reference frames, 30 and 32 are decoded and 31 is not: from the reference frames alone, the
    # step into the white frame looks like the cut. The exact pass sees the flash (29 and 31 match) and
    # puts the cut at 32.
    a, b = _texture(1), _texture(2)
    frames = [a] * 30 + [np.full_like(a, 255), a] + [b] * 32
    path = encode_h264(
        tmp_path / "flash.mp4", frames, fps=FPS, crf=18, preset="veryfast",
        x264_params="bframes=1:b-adapt=0:scenecut=0:keyint=250",
    )  # fmt: skip
    refs = set(_nonref_frames(path))
    assert {28, 30, 32} <= refs and 31 not in refs, sorted(refs)
    full = analyse(path, AnalyseConfig(detect_text=False, skip_nonref=False))
    assert full.boundaries == [32]
    two = analyse(path, AnalyseConfig(detect_text=False, skip_nonref=True))
    assert two.boundaries == [32]


def test_thumbnails_near_the_middle_of_long_shots_of_reference_frames():
    # Reference frames on the odd frames of a shot that starts on an even one: the held frames must still
    # spread over the shot, so that the thumbnail is the decoded frame nearest its middle.
    from clipfactory.media.analyse import _ThumbSampler

    sampler = _ThumbSampler()
    for i in range(1, 400, 2):
        sampler.offer(i, f"frame {i}")
    thumb, spread = sampler.split(400, 4)
    middle = int(thumb.split()[1])
    assert abs(middle - 199.5) <= 16  # 200 decoded frames thinned to a dozen: 400 / 12 frames apart at most
    picked = [i for i, _ in spread]
    assert len(picked) == 4 and all(
        abs(i - t) <= 33 for i, t in zip(picked, (50, 150, 250, 350), strict=True)
    )
