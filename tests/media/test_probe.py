"""probe() and keyframe_times(): what a file holds, and named reasons for files that cannot be read."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipfactory.errors import MediaError, TerminalError
from clipfactory.media.probe import REASONS, MediaProbeError, keyframe_times, probe

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MEDIA = SHARED / "media"
needs_shared = pytest.mark.skipif(
    not MEDIA.is_dir(),
    reason=f"real test media not found at {SHARED} (the shared/ folder beside the project)",
)


def _write_video(path: Path, *, n: int = 30, rotation: int = 0, vfr: bool = False, gop: int = 10) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        s.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        t = 0
        for i in range(n):
            img = np.full((48, 64, 3), (i * 7) % 256, np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += (80 if i % 2 else 40) if vfr else 40
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _reason(path) -> str:
    with pytest.raises(MediaProbeError) as info:
        probe(path)
    err = info.value
    assert str(err).split(": ", 1)[1].startswith(err.reason)
    return err.reason


def test_synthetic_video_fields(tmp_path):
    info = probe(_write_video(tmp_path / "v.mp4", n=50))
    assert info.container.startswith("mov,mp4")
    assert info.video_codec == "h264"
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(25.0, rel=0.01)
    assert info.is_vfr is False
    assert info.rotation == 0
    assert info.n_audio_streams == 0 and info.audio_codecs == ()
    assert info.duration_ms == pytest.approx(2000, abs=40)
    assert info.n_frames == 50
    assert info.pix_fmt == "yuv420p"
    assert info.size_bytes == (tmp_path / "v.mp4").stat().st_size


def test_rotation_and_vfr_flags(tmp_path):
    info = probe(_write_video(tmp_path / "r.mp4", rotation=90))
    assert info.rotation == 90
    assert info.display_size == (48, 64)
    assert info.is_vfr is False
    assert probe(_write_video(tmp_path / "vfr.mp4", vfr=True)).is_vfr is True


def test_keyframe_times_from_packets(tmp_path):
    times = keyframe_times(_write_video(tmp_path / "k.mp4", n=40, gop=10))
    assert times == pytest.approx([0.0, 0.4, 0.8, 1.2], abs=0.001)


def test_empty_file(tmp_path):
    (tmp_path / "e.mp4").write_bytes(b"")
    assert _reason(tmp_path / "e.mp4") == "media.empty_file"


def test_text_file_is_not_media(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    assert _reason(tmp_path / "notes.mp4") == "media.not_media"


def test_text_file_with_text_extension_is_not_media(tmp_path):
    # FFmpeg's tty demuxer would render any .txt file as ANSI-art video
    (tmp_path / "notes.txt").write_text("hello world, plain text\n" * 50)
    assert _reason(tmp_path / "notes.txt") == "media.not_media"


def test_still_image_has_no_video_stream(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "still.png")
    assert _reason(tmp_path / "still.png") == "media.no_video_stream"


def test_audio_only(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    assert _reason(path) == "media.no_video_stream"


def test_truncated_synthetic_faststart(tmp_path):
    # Index at the front (faststart), data cut off: the index points past the end of the file.
    src = tmp_path / "full.mp4"
    with av.open(str(src), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(30):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="rgb24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    data = src.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    assert _reason(tmp_path / "cut.mp4") == "media.truncated"


@needs_shared
@pytest.mark.shared_data
def test_truncated_real_mp4(tmp_path):
    data = (MEDIA / "bbb_5s.mp4").read_bytes()
    (tmp_path / "bbb_cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    assert _reason(tmp_path / "bbb_cut.mp4") == "media.truncated"


@needs_shared
@pytest.mark.shared_data
def test_real_files():
    info = probe(MEDIA / "bbb_5s.mp4")
    assert (info.width, info.height, info.video_codec) == (1280, 720, "h264")
    assert info.n_audio_streams == 1 and info.audio_codecs == ("aac",)
    assert info.fps == pytest.approx(25.0)
    assert info.n_frames == 132
    vt = probe(MEDIA / "vtest.avi")
    # MS MPEG-4 v3 (fourcc DIV3), which FFmpeg's decoder calls "msmpeg4"; 795 frames at 10 fps.
    assert (vt.container, vt.video_codec, vt.width, vt.height) == ("avi", "msmpeg4", 768, 576)
    assert vt.n_frames == 795 and vt.duration_ms == 79500
    assert vt.fps == pytest.approx(10.0)
    assert vt.is_vfr is False
    kf = keyframe_times(MEDIA / "bbb_5s.mp4")
    assert kf[0] == 0.0 and all(b > a for a, b in zip(kf, kf[1:], strict=False))


def test_error_pickles_with_reason():
    err = MediaProbeError("media.truncated", "cut short", item="a.mp4", fix="fetch again")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, MediaError) and isinstance(back, TerminalError)
    assert (back.reason, back.item, back.fix, str(back)) == (err.reason, err.item, err.fix, str(err))
    assert set(REASONS) >= {
        "media.empty_file",
        "media.not_media",
        "media.no_video_stream",
        "media.decode_error",
    }
    with pytest.raises(ValueError):
        MediaProbeError("media.made_up", "x")


def _write_timed(path: Path, steps: list[int], *, n: int = 60, codec: str = "libx264") -> Path:
    """``n`` frames whose presentation times advance by ``steps`` (in 1/30 s, cycled): ``[1]`` is 30 fps
    constant, ``[1, 3]`` alternates gaps of 1/30 s and 1/10 s."""
    tb = Fraction(1, 30)
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = tb
        if codec == "libx264":
            s.options = {"g": "30", "bf": "0"}
        rng = np.random.default_rng(0)
        t = 0
        for i in range(n):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = t, tb
            t += steps[i % len(steps)]
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize(("name", "codec"), [("v.mkv", "libx264"), ("v.webm", "libvpx")])
def test_matroska_vfr_is_told_from_the_packets_not_the_cues(tmp_path, name, codec):
    # Matroska's index (its cues) lists keyframes only, and its nominal rate (the track's default duration)
    # is the encoder's 30 fps: only the packets' timestamps show the gaps alternating 1/30 s and 1/10 s.
    vfr = probe(_write_timed(tmp_path / f"vfr-{name}", [1, 3], codec=codec))
    assert vfr.container.startswith("matroska")
    assert vfr.is_vfr is True
    # 60 frames, gaps summing to 30 x 1/30 s + 29 x 3/30 s (the last frame lasts one frame more)
    assert vfr.duration_ms == pytest.approx((30 + 29 * 3 + 1) / 30 * 1000, abs=40)
    cfr = probe(_write_timed(tmp_path / f"cfr-{name}", [1], codec=codec))
    assert cfr.is_vfr is False
    assert cfr.fps == pytest.approx(30.0, rel=0.01)
    assert cfr.duration_ms == pytest.approx(2000, abs=40)
