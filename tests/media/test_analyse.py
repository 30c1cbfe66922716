"""The single analysis pass: shots, per-shot statistics, PDQ hashes, thumbnails, robustness."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from media_synth import encode_h264
from PIL import Image

from clipfactory.errors import MissingExtraError
from clipfactory.media.analyse import AnalyseConfig, AnalysisResult, analyse
from clipfactory.media.probe import MediaProbeError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MEDIA = SHARED / "media"
needs_shared = pytest.mark.skipif(
    not MEDIA.is_dir(),
    reason=f"real test media not found at {SHARED} (the shared/ folder beside the project)",
)

W, H, FPS = 192, 112, 25
# Synthetic clip: shot A, hard cut at 30, shot B, hard cut at 60, shot C fades out to black and
# shot D fades in (boundary in the black run), then a 12-frame cross-fade into shot E.
CUTS = [30, 60]
FADE_OUT = (90, 100)  # frames 90..99 darken, 100..105 black, 106..115 brighten
BLACK = (100, 106)
FADE_IN_END = 116
DISSOLVE = (150, 162)  # blend from shot D to shot E
N = 200


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _texture(seed: int, width: int = W + N // 4 + 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (H // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return np.kron(small, np.ones((16, 16, 1), np.uint8)).astype(np.float32)


def _shot_frame(tex: np.ndarray, i: int) -> np.ndarray:
    dx = i // 4  # slow pan, a quarter pixel a frame
    return tex[:H, dx : dx + W]


def synth_frames() -> list[np.ndarray]:
    texs = [_texture(s) for s in range(5)]
    out = []
    for i in range(N):
        if i < 30:
            img = _shot_frame(texs[0], i)
        elif i < 60:
            img = _shot_frame(texs[1], i)
        elif i < BLACK[0]:
            img = _shot_frame(texs[2], i)
            if i >= FADE_OUT[0]:
                img = img * (1 - (i - FADE_OUT[0] + 1) / 11)
        elif i < BLACK[1]:
            img = np.zeros((H, W, 3), np.float32)
        elif i < DISSOLVE[0]:
            img = _shot_frame(texs[3], i)
            if i < FADE_IN_END:
                img = img * ((i - BLACK[1] + 1) / 11)
        elif i < DISSOLVE[1]:
            a = (i - DISSOLVE[0] + 1) / 13
            img = _shot_frame(texs[3], i) * (1 - a) + _shot_frame(texs[4], i) * a
        else:
            img = _shot_frame(texs[4], i)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth.mp4"
    return encode_h264(path, synth_frames(), fps=FPS, crf=16, preset="veryfast")


@pytest.fixture(scope="module")
def synth_result(synth) -> AnalysisResult:
    """The default pass: two-level on this H.264 stream with B-frames."""
    return analyse(synth)


@pytest.fixture(scope="module")
def synth_full(synth) -> AnalysisResult:
    """The pass over every frame."""
    return analyse(synth, AnalyseConfig(skip_nonref=False))


@pytest.fixture(params=["default", "every frame"])
def either(request, synth_result, synth_full) -> AnalysisResult:
    return synth_result if request.param == "default" else synth_full


def test_synthetic_shots(either):
    r = either
    assert r.n_frames == N
    b = r.boundaries
    kinds = [s.transition_out for s in r.shots]
    assert len(b) == 4, (b, kinds)
    assert abs(b[0] - CUTS[0]) <= 1 and abs(b[1] - CUTS[1]) <= 1
    assert BLACK[0] - 1 <= b[2] <= BLACK[1] + 1
    assert DISSOLVE[0] <= b[3] <= DISSOLVE[1]
    assert kinds == ["cut", "cut", "fade", "dissolve", "end"]
    # shots tile the video, end-exclusive
    assert r.shots[0].start_frame == 0 and r.shots[-1].end_frame == N
    for a, c in zip(r.shots, r.shots[1:], strict=False):
        assert a.end_frame == c.start_frame and a.end_ms == c.start_ms
    assert r.shots[-1].end_ms == pytest.approx(N * 1000 / FPS, abs=1)


def test_synthetic_statistics(either, synth_full):
    shots = either.shots
    # the black run is split between the shot that fades out and the one that fades in
    black = [round(s.black_fraction * s.n_frames) for s in shots]
    assert black[2] > 0 and black[3] > 0
    assert BLACK[1] - BLACK[0] <= sum(black) <= BLACK[1] - BLACK[0] + 4
    assert shots[0].black_fraction == 0.0
    assert all(s.motion > 0.5 for s in shots)  # every shot pans
    if either is synth_full:
        assert 0.6 < shots[0].static_fraction < 0.85  # the pan moves on every 4th frame only
    else:
        # A step over several frames moves when one of them does: with reference frames two apart, half of
        # them carry one of the pan's moves; one frame apart, a quarter.
        assert 0.4 < shots[0].static_fraction <= synth_full.shots[0].static_fraction
    assert shots[0].sharpness > 100  # hard-edged blocks
    # no text is drawn: read on every shot when the OCR package is there (the default), else not read
    expected = 0.0 if importlib.util.find_spec("rapidocr_onnxruntime") is not None else None
    assert all(s.text_fraction == expected for s in shots), [s.text for s in shots]


def test_flash_frame_is_not_a_cut(tmp_path):
    frames = [_shot_frame(_texture(3), i).astype(np.uint8) for i in range(40)]
    frames[20] = np.full_like(frames[20], 255)  # one white flash frame
    path = encode_h264(tmp_path / "flash.mp4", frames, fps=FPS)
    assert analyse(path).boundaries == []


def test_pdq_and_thumbnails(synth_result):
    r = synth_result
    assert len(r.pdq) == pytest.approx(N / FPS, abs=1)
    times = [p.time_ms for p in r.pdq]
    assert all(900 <= b - a <= 1100 for a, b in zip(times, times[1:], strict=False))
    for p in r.pdq:
        assert len(p.hash_hex) == 64 and set(p.hash_hex) <= set("0123456789abcdef")
        assert 0 <= p.quality <= 100

    # different shots hash differently, the same shot a second later almost the same
    def ham(a, b):
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    assert ham(r.pdq[0].hash_hex, r.pdq[2].hash_hex) > 60
    for s in r.shots:
        img = Image.open(io.BytesIO(s.thumbnail))
        assert img.format == "JPEG" and img.size[0] == min(320, W)
    data = json.loads(r.to_json())
    assert "thumbnail" not in data["shots"][0] and len(data["shots"]) == len(r.shots)


def test_thumbnail_is_turned_upright(tmp_path):
    frames = [_shot_frame(_texture(4), i).astype(np.uint8) for i in range(20)]
    path = encode_h264(tmp_path / "portrait.mp4", frames, fps=FPS, rotation=90)
    r = analyse(path)
    assert r.probe.rotation == 90
    assert Image.open(io.BytesIO(r.shots[0].thumbnail)).size == (H, W)


def test_static_clip_is_one_static_shot(tmp_path):
    img = _texture(9)[:H, :W].astype(np.uint8)
    path = encode_h264(tmp_path / "still.mp4", [img] * 40, fps=FPS)
    r = analyse(path)
    assert len(r.shots) == 1 and r.shots[0].transition_out == "end"
    assert r.shots[0].static_fraction > 0.9


def test_two_level_pass_is_the_default_and_keeps_cuts(synth, synth_result, synth_full):
    r = synth_result
    assert r.config["skip_nonref"] == "auto" and r.signals.span is not None  # steps over several frames
    assert synth_full.signals.span is None
    # Frame indices come from timestamps; the stream's last picture is a reference frame, so the count is exact.
    assert r.n_frames == N
    # Both hard cuts are on their frames (the two-level pass places them on every frame around them).
    assert all(c in r.boundaries for c in CUTS), r.boundaries
    # The fade's black run is placed on every frame too; the cross-fade is placed from the reference frames,
    # within the 2 frames a gradual transition is scored by.
    full = synth_full.boundaries
    assert r.boundaries[:3] == full[:3] and len(r.boundaries) == len(full)
    assert abs(r.boundaries[3] - full[3]) <= 2, (r.boundaries, full)


def test_text_detection_needs_extra(synth):
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError) as info:
            analyse(synth, AnalyseConfig(detect_text=True))
        assert "clipfactory[ocr]" in str(info.value)
    else:  # pragma: no cover - only where the extra is installed
        r = analyse(synth, AnalyseConfig(detect_text=True))
        assert all(s.text_fraction is not None for s in r.shots)


def test_not_media_raises_named_reason(tmp_path):
    (tmp_path / "x.mp4").write_text("hello\n" * 100)
    with pytest.raises(MediaProbeError) as info:
        analyse(tmp_path / "x.mp4")
    assert info.value.reason == "media.not_media"


@needs_shared
@pytest.mark.shared_data
def test_bikes_cuts_within_one_frame():
    r = analyse(MEDIA / "bikes.mp4")
    truth = [30, 76, 137, 187, 242]
    assert len(r.boundaries) == len(truth), r.boundaries
    assert all(abs(b - t) <= 1 for b, t in zip(r.boundaries, truth, strict=True)), r.boundaries
    assert all(s.transition_out == "cut" for s in r.shots[:-1])


@needs_shared
@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["box.mp4", "cup.mp4", "bbb_5s.mp4"])
def test_single_shot_clips(name):
    r = analyse(MEDIA / name)
    assert len(r.shots) == 1, r.boundaries


@needs_shared
@pytest.mark.shared_data
def test_glitched_avi_is_analysed_whole():
    # 270 MPEG-4 frames at 30 fps (9 s) that all decode: the damage is in the pictures (one-frame glitches
    # at frames 40, 75, 95 and 100), not in the stream, so nothing is skipped and nothing is refused.
    r = analyse(MEDIA / "Megamind_bugy.avi")
    assert (r.n_frames, r.fps, r.duration_ms, r.decode_errors) == (270, 30.0, 9000, 0)
    # The glitches are not cuts; the three hard cuts at frames 98, 154 and 200 are found.
    assert len(r.boundaries) == 3, r.boundaries
    assert all(abs(b - t) <= 1 for b, t in zip(r.boundaries, [98, 154, 200], strict=True)), r.boundaries
    assert len(r.shots) == 4 and r.shots[0].start_frame == 0 and r.shots[-1].end_frame == 270
    assert [s.transition_out for s in r.shots] == ["cut", "cut", "cut", "end"]


def test_corrupt_bytes_are_skipped(synth, tmp_path):
    data = bytearray(synth.read_bytes())
    rng = np.random.default_rng(1)
    for off in range(len(data) // 3, len(data) * 2 // 3, 997):
        data[off : off + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    r = analyse(bad)  # must not raise: damaged packets are skipped and counted
    assert r.n_frames > N // 3
    assert r.shots[0].start_frame == 0 and r.shots[-1].end_frame == r.n_frames
    assert r.decode_errors > 0


def test_analyse_command_reports_the_skipped_packets(synth, tmp_path):
    import json as _json

    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    data = bytearray(synth.read_bytes())
    rng = np.random.default_rng(1)
    for off in range(len(data) // 3, len(data) * 2 // 3, 997):
        data[off : off + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    r = CliRunner().invoke(app, ["analyse", str(bad), "--json"])
    assert r.exit_code == 0, r.output
    got = _json.loads(r.stdout)
    assert got["decode_errors"] == analyse(bad).decode_errors > 0
    r = CliRunner().invoke(app, ["analyse", str(synth), "--json"])
    assert _json.loads(r.stdout)["decode_errors"] == 0
    r = CliRunner().invoke(app, ["analyse", str(bad)])
    assert f"{got['decode_errors']} corrupt packet(s) skipped while decoding" in r.stdout
