"""Text on screen: RapidOCR on a few frames per shot of the single pass, the text kept, and
``quality.filter`` dropping clips covered in it.

Two inputs: frames generated here with text drawn by PIL beside frames without it, and the shot of the
bundled Big Buck Bunny trailer excerpt that carries the title "And three rodent pests" (its first 4 s,
stream-copied out of ``examples/media/bbb_trailer_excerpt.mp4``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from clipfactory.media.analyse import AnalyseConfig, analyse, join_lines, ocr_available

# Whether the package is there is read here, not from the code under test: a broken ocr_available()
# must fail these tests, not skip them.
HAVE_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None
pytestmark = [pytest.mark.skipif(not HAVE_OCR, reason="rapidocr-onnxruntime (in the dev extra) is not installed"), pytest.mark.own_process]


def test_ocr_is_available_when_its_package_is_installed():
    assert ocr_available() is True

ROOT = Path(__file__).resolve().parents[2]
EXCERPT = ROOT / "examples" / "media" / "bbb_trailer_excerpt.mp4"
W, H, FPS = 320, 180, 25
SHOT = 40  # frames per generated shot
WORDS = "BURNED IN 1984"


def _background(seed: int) -> np.ndarray:
    """A smooth two-colour gradient with a little noise: no edges that could read as text."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(30, 200, 3), rng.uniform(30, 200, 3)
    t = np.linspace(0, 1, W)[None, :, None]
    img = a * (1 - t) + b * t + rng.normal(0, 3, (H, W, 3))
    return np.clip(np.repeat(img, H, axis=0)[:H], 0, 255).astype(np.uint8)


def _with_text(img: np.ndarray, words: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=26)
    # White letters with a black outline, low in the frame, as subtitles are burned in.
    draw.text((W // 2, H - 30), words, font=font, fill=(255, 255, 255), anchor="mm", stroke_width=2,
              stroke_fill=(0, 0, 0))  # fmt: skip
    return np.asarray(im)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    """Three shots joined by hard cuts: text on the first only; the third has the first's background."""
    from heldout_scenes import encode

    bg1, bg2 = _background(1), _background(2)
    frames = [_with_text(bg1, WORDS)] * SHOT + [bg2] * SHOT + [bg1] * SHOT
    # a slow drift, so the frames are not static copies
    frames = [np.roll(f, k // 4, axis=1) for k, f in enumerate(frames)]
    path = tmp_path_factory.mktemp("ocr") / "drawn.mp4"
    encode(path, frames, fps=FPS)
    return path


def test_drawn_text_against_blank_frames(drawn):
    r = analyse(drawn, AnalyseConfig(detect_text=True))
    assert r.boundaries == [SHOT, 2 * SHOT]
    text_shot, blank, same_background = r.shots
    assert text_shot.text_fraction == 1.0
    assert "BURNED" in text_shot.text.upper() and "1984" in text_shot.text
    assert blank.text_fraction == 0.0 and blank.text == ""
    assert same_background.text_fraction == 0.0 and same_background.text == ""
    # A span's text comes from the frames read inside it.
    ms = 1000 // FPS
    assert "1984" in r.span_text(0, SHOT * ms)
    assert r.span_text(2 * SHOT * ms, 3 * SHOT * ms) == ""
    assert r.span_scores(SHOT * ms, 2 * SHOT * ms)["text_fraction"] == 0.0
    # 1.6 s shots get ceil(1.6 / 0.5) = 4 text frames; one without text costs only its 2 probes.
    t = r.signals.text_ms
    assert [int(((t >= s.start_ms) & (t < s.end_ms)).sum()) for s in r.shots] == [4, 2, 2]


def _first_seconds(src: Path, dest: Path, seconds: float) -> Path:
    """The packets of ``src``'s video stream before ``seconds``, stream-copied (it starts on a keyframe)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            if pkt.pts is not None and float(pkt.pts * vin.time_base) >= seconds:
                continue
            pkt.stream = vout
            out.mux(pkt)
    return dest


def test_the_title_card_clip_is_dropped_with_its_text(tmp_path):
    """The example build's trailer excerpt opens on a shot titled "And three rodent pests" (white letters
    over a bright sky); the clip planned from it is dropped as quality.too_much_text, with the text."""
    from clipfactory.records import ClipRecord
    from clipfactory.stages.media.analyse import plan_spans
    from clipfactory.stages.quality.filter import QualityFilterStage

    clip = _first_seconds(EXCERPT, tmp_path / "title.mp4", 4.0)
    r = analyse(clip)  # the defaults: text is read when the package is installed
    assert len(r.shots) == 1 and r.n_frames == 96
    spans, _ = plan_spans(r, min_clip_s=0.5, max_clip_s=6.0, gradual_margin_s=0.5, cut_trim_frames=1)
    (sp,) = spans
    record = ClipRecord(
        clip_id="title",
        source_id="excerpt",
        start_ms=sp.start_ms,
        end_ms=sp.end_ms,
        screen_text=r.span_text(sp.start_ms, sp.end_ms),
        **r.span_scores(sp.start_ms, sp.end_ms),
    )
    assert "three rodent pests" in record.screen_text
    assert record.text_fraction > 0.5
    out = QualityFilterStage({"min_duration_s": 1.5}).process(record)
    assert out.status == "dropped" and out.reason == "quality.too_much_text"
    assert "rodent" in out.detail
    # With a looser limit the clip is kept, and its text goes with it.
    kept = QualityFilterStage({"min_duration_s": 1.5, "max_text_fraction": 1.0}).process(record)
    assert kept.status == "kept" and "rodent" in kept.records[0].screen_text


def test_lines_read_in_pieces_are_one_line():
    samples = [("And three rodent pests",), ("three rod", "sts"), ("hreeroden",), ("Made with",), ("made  with",)]
    assert join_lines(samples) == "And three rodent pests\nMade with"
    assert join_lines([(), ()]) == ""


def test_auto_without_the_package_reads_nothing_and_true_names_the_install(drawn, monkeypatch):
    from clipfactory.errors import MissingExtraError
    from clipfactory.media import analyse as mod

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if not installed
    monkeypatch.setattr(mod, "ocr_available", lambda: False)
    monkeypatch.setattr(mod, "_OCR", {})
    r = analyse(drawn, AnalyseConfig(detect_text="auto"))
    assert all(s.text_fraction is None and s.text is None for s in r.shots)
    assert r.span_text(0, 1000) is None
    with pytest.raises(MissingExtraError) as exc:
        analyse(drawn, AnalyseConfig(detect_text=True))
    assert "\n" not in str(exc.value) and "pip install 'clipfactory[ocr]'" in str(exc.value)
