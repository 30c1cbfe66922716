"""Clip scores come from the clip's own frames: the pieces of one long shot each get their own.

The video is one shot of 8 s: a still picture for 4 s, then the same picture panning 3 pixels a frame.
Split at 2 s, the first two pieces are static and the last two move; a piece across the middle is half
and half. The scores come from the single analysis pass (its per-frame signals), not from a second
decode.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from heldout_scenes import encode

from clipfactory import ids
from clipfactory.media.analyse import analyse
from clipfactory.records import SourceRecord
from clipfactory.stage import StageContext
from clipfactory.stages.media.analyse import AnalyseStage
from clipfactory.stages.media.spans import shot_scores
from clipfactory.storage import BlobStore

W, H, FPS = 160, 96, 25
STILL, MOVING = 100, 100  # frames
PAN = 3  # pixels a frame


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    small = rng.integers(30, 226, (H // 8, (W + PAN * MOVING) // 8 + 1, 3), dtype=np.uint8)
    tex = np.kron(small, np.ones((8, 8, 1), np.uint8))
    return [tex[:, :W]] * STILL + [tex[:, PAN * k : PAN * k + W] for k in range(1, MOVING + 1)]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("clipscores") / "half_still.mp4"
    encode(path, _frames(), FPS)
    return path


def test_pieces_of_one_shot_carry_their_own_motion_and_static_fraction(video, tmp_path):
    ctx = StageContext(store_root=str(tmp_path / "store"), catalog_path=str(tmp_path / "cat.duckdb"))
    uri, size = BlobStore(ctx.store_root).put_file(video)
    sha = uri.rsplit(":", 1)[1]
    src = SourceRecord(
        source_id=ids.content_source_id(sha),
        platform="owned",
        blob_uri=uri,
        content_sha256=sha,
        size_bytes=size,
        content_license="CC-BY-4.0",
    )
    stage = AnalyseStage({"max_clip_s": 2.0, "snap_to_keyframes": False, "spans": "shots"}, ctx)
    [res] = stage.process_batch([src])
    assert res.status == "kept", res.reason
    assert json.loads(res.detail)["shots"] == 1  # the pan starts smoothly: one shot
    clips = res.records[1:]
    assert [(c.start_ms, c.end_ms) for c in clips] == [(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000)]
    assert {c.shot_index for c in clips} == {0}
    for c in clips[:2]:  # the still half
        assert c.static_fraction == 1.0 and c.motion < 0.5
    for c in clips[2:]:  # the panning half: every step moves the picture by 3 of its 8-pixel blocks
        assert c.static_fraction == 0.0 and c.motion > 10
    # Scores of the frames each piece shows, of the same kind as the shot's.
    for c in clips:
        assert c.luma == pytest.approx(clips[0].luma, abs=15) and c.sharpness > 0 and c.black_fraction == 0.0


def test_a_span_across_the_change_is_half_static(video):
    r = analyse(video)
    assert len(r.shots) == 1
    # Frames 75..124 (3 s to 5 s): steps into 76..99 are still, into 100..124 they pan.
    shot, scores = shot_scores(r, 3000, 5000)
    assert shot is r.shots[0]
    assert scores["static_fraction"] == pytest.approx(24 / 49, abs=0.03)
    still, moving = r.span_scores(0, 4000), r.span_scores(4000, 8000)
    assert still["static_fraction"] == 1.0 and moving["static_fraction"] == 0.0
    # The whole shot's motion is the mean of its halves (the first frame has no step into it).
    assert r.shots[0].motion == pytest.approx((99 * still["motion"] + 100 * moving["motion"]) / 199, rel=0.02)
