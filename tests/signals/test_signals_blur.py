"""privacy.blur_faces: the faces of re-encoded clips are blurred, the rest of the picture is kept; a run
scores its clips, and its datasheet counts the clips with faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from signals_media import BLAZEFACE_INSTALL, EYES, MOUTH, blazeface_installed, frames

from clipfactory.catalog import Catalog
from clipfactory.config import Settings
from clipfactory.factory import pipeline
from clipfactory.media.cut import cut_clip, keyframes_ms
from clipfactory.signals.faces import FaceBlur

# The video is 256x256, the photo 512x512: its landmarks at half scale.
S = 0.5
FACE = (int(EYES[0][0] * S) - 4, int(EYES[0][1] * S) - 6, int(EYES[1][0] * S) + 4, int(MOUTH[1] * S) + 4)


def _region(img: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].astype(np.float32)


def test_blurred_clip_differs_on_the_face_and_keeps_the_rest(face_video, tmp_path):
    kf = keyframes_ms(face_video)
    plain = cut_clip(face_video, tmp_path / "plain.mp4", 0, 2000, keyframes_ms=kf)
    blur = FaceBlur(face_detector="haar")  # the cascade here; test_blazeface.py blurs with BlazeFace
    res = cut_clip(face_video, tmp_path / "blur.mp4", 0, 2000, keyframes_ms=kf, frame_filter=blur)
    assert plain.method == "copy" and res.method == "reencode"  # a filter forces the re-encode
    a, b = frames(tmp_path / "plain.mp4"), frames(tmp_path / "blur.mp4")
    assert len(a) == len(b) == 50
    assert blur.frames_blurred == 50 and blur.max_faces == 1
    for fa, fb in zip(a[::10], b[::10], strict=True):
        # Eyes and mouth are gone: the face region changed a lot.
        assert np.abs(_region(fa, FACE) - _region(fb, FACE)).mean() > 12
        # Far from the face (the lower half: suit and helmet; the left edge: the flag) only encoding noise.
        assert np.abs(_region(fa, (0, 160, 256, 256)) - _region(fb, (0, 160, 256, 256))).mean() < 3
        assert np.abs(_region(fa, (0, 0, 60, 160)) - _region(fb, (0, 0, 60, 160))).mean() < 3
        # The blurred face holds little detail: its gradient energy is a fraction of the original's.
        ga = np.abs(np.diff(_region(fa, FACE), axis=1)).mean()
        gb = np.abs(np.diff(_region(fb, FACE), axis=1)).mean()
        assert gb < 0.35 * ga, (ga, gb)


@pytest.mark.skipif(not blazeface_installed(), reason=f"the default face detector needs {BLAZEFACE_INSTALL}")
def test_a_run_scores_clips_blurs_faces_and_counts_them_in_the_datasheet(face_video, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "faces.mp4").write_bytes(Path(face_video).read_bytes())
    s = Settings(
        catalog=str(tmp_path / "cat.duckdb"),
        store=str(tmp_path / "store"),
        inputs=[str(src)],
        license="CC-BY-4.0",
        rights_holder="Someone",
        build={"name": "faces", "out": str(tmp_path / "builds")},
        privacy={"blur_faces": True},
        stages={"quality.filter": {"min_duration_s": 1.0, "max_static_fraction": 1.0}},
    )
    summary = pipeline.run_pipeline(s)
    st = summary["stages"]
    assert st["signals.visual"]["received"] == st["signals.visual"]["kept"] == summary["clips_planned"] == 2
    cat = Catalog(s.catalog)
    rows = cat.query("SELECT start_ms, nsfw, face_count, face_area, cut_method FROM clips ORDER BY start_ms")
    face, cup = rows
    assert face["start_ms"] < 3000 <= cup["start_ms"]
    assert face["face_count"] == 1 and 0.02 <= face["face_area"] <= 0.06
    assert cup["face_count"] == 0 and cup["face_area"] == 0.0
    assert face["nsfw"] < 0.2 and cup["nsfw"] < 0.2
    # Blurring forces the re-encode of the clip with a face; the other one is stream-copied from its keyframe.
    assert face["cut_method"] == "reencode" and cup["cut_method"] == "copy"
    [cut] = cat.query(
        "SELECT detail FROM latest_outcomes WHERE stage = 'media.cut' AND json_extract(detail, '$.faces_blurred') IS NOT NULL"
    )
    assert json.loads(cut["detail"])["faces_blurred"]["frames"] > 0
    out = Path(summary["build"]["out_dir"])
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert sorted(r["face_count"] for r in index) == [0, 1]
    html = (out / "datasheet.html").read_text()
    assert "Clips with identifiable faces" in html
    assert "1 of 2 (a frontal face on the clip's shot thumbnail)" in __import__("html").unescape(html)
