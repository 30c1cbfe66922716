"""media/cut.py: stream copy vs re-encode, audio, pixel formats, atomic output."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from cf_synth import decoded_frames, make_video, packets, with_rotation_90

from clipfactory.errors import MediaError
from clipfactory.media.cut import CutOptions, cut_clip, is_on_keyframe, keyframes_ms, snap_start
from clipfactory.media.probe import probe


def _duration_s(path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.duration * s.time_base)


def test_snap_start_prefers_a_following_keyframe_within_tolerance():
    kf = [0, 1000, 2000, 4000]
    assert snap_start(1500, 3000, kf, forward_ms=600) == 2000
    assert snap_start(2500, 3800, kf, forward_ms=600) == 2500  # 4000 is too far: keep the start
    assert snap_start(2040, 3000, kf, forward_ms=0, backward_ms=50) == 2000  # back onto the cut
    assert snap_start(3700, 3900, kf, forward_ms=600) == 3700  # the keyframe lies past the end
    assert is_on_keyframe(2010, kf, 20) and not is_on_keyframe(2030, kf, 20)


def test_keyframe_start_is_stream_copied(three_shots, tmp_path):
    kf = keyframes_ms(three_shots)
    assert kf[:4] == [0, 1000, 2000, 3000]
    res = cut_clip(three_shots, tmp_path / "c.mp4", 2000, 4000, keyframes_ms=kf)
    assert res.method == "copy"
    assert res.start_ms == 2000
    pk = packets(tmp_path / "c.mp4")
    assert pk[0][2], "the first packet of a clip must be a keyframe"
    assert pk[0][0] == 0
    n, _ = decoded_frames(tmp_path / "c.mp4")
    assert n == 50  # 2 s at 25 fps: ultrafast has no B-frames, so the copy is frame exact
    assert abs(_duration_s(tmp_path / "c.mp4") - 2.0) <= 0.04
    assert res.has_audio and res.audio_method == "copy"
    audio = packets(tmp_path / "c.mp4", "audio")
    assert audio, "audio must be kept"
    with av.open(str(tmp_path / "c.mp4")) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 2.0) < 0.1


def test_off_keyframe_start_is_reencoded(three_shots, tmp_path):
    res = cut_clip(three_shots, tmp_path / "c.mp4", 2500, 4000, keyframes_ms=keyframes_ms(three_shots))
    assert res.method == "reencode"
    assert res.encoder == "libx264"
    pk = packets(tmp_path / "c.mp4")
    assert pk[0][2]
    n, fmt = decoded_frames(tmp_path / "c.mp4")
    assert abs(n - 37.5) <= 1
    assert fmt == "yuv420p"
    assert abs(_duration_s(tmp_path / "c.mp4") - 1.5) <= 0.08
    assert res.has_audio


def test_mode_reencode_always_reencodes(three_shots, tmp_path):
    res = cut_clip(three_shots, tmp_path / "c.mp4", 3000, 4000, options=CutOptions(mode="reencode"))
    assert res.method == "reencode"
    assert abs(decoded_frames(tmp_path / "c.mp4")[0] - 25) <= 1


def test_pcm_audio_is_reencoded_to_aac_and_odd_pixel_format_to_yuv420p(tmp_path):
    src = make_video(
        tmp_path / "src.mkv", [("bars", 2), ("checker", 2)], audio="pcm_s16le", pix_fmt="yuv444p", keyint=25
    )
    res = cut_clip(src, tmp_path / "c.mp4", 500, 2500)
    assert res.method == "reencode"
    assert res.audio_method == "reencode"
    with av.open(str(tmp_path / "c.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    # From a keyframe the video is copied as it is (4:4:4) while the PCM audio becomes AAC.
    res = cut_clip(src, tmp_path / "k.mp4", 1000, 2000)
    assert res.method == "copy" and res.audio_method == "reencode"
    with av.open(str(tmp_path / "k.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].frames > 0


def test_output_is_faststart(three_shots, tmp_path):
    cut_clip(three_shots, tmp_path / "c.mp4", 0, 1000)
    head = (tmp_path / "c.mp4").read_bytes()
    assert head.find(b"moov") < head.find(b"mdat"), "moov must come before mdat (faststart)"


def test_a_span_past_the_end_fails_and_leaves_nothing(three_shots, tmp_path):
    with pytest.raises(MediaError):
        cut_clip(three_shots, tmp_path / "c.mp4", 20_000, 21_000)
    assert list(tmp_path.iterdir()) == []


def test_no_audio_source(tmp_path):
    src = make_video(tmp_path / "s.mp4", [("bars", 2)], audio=None, keyint=25)
    res = cut_clip(src, tmp_path / "c.mp4", 1000, 2000)
    assert res.method == "copy" and not res.has_audio and res.audio_method is None


@pytest.mark.shared_data
def test_trailer_with_b_frames_and_mp3_audio(shared_data, tmp_path):
    src = shared_data / "media" / "trailer_bbb.mp4"
    kf = keyframes_ms(src)
    assert 36000 in kf
    res = cut_clip(src, tmp_path / "c.mp4", 36000, 37500, keyframes_ms=kf)
    assert res.method == "copy" and res.audio_method == "copy"
    n, _ = decoded_frames(tmp_path / "c.mp4")
    assert 36 - 3 <= n <= 36  # B-frames after the last reference frame may be left out
    assert packets(tmp_path / "c.mp4")[0][2]
    res = cut_clip(src, tmp_path / "r.mp4", 37600, 41000, keyframes_ms=kf)
    assert res.method == "reencode"
    assert abs(decoded_frames(tmp_path / "r.mp4")[0] - (41000 - 37600) / 1000 * 24) <= 2


@pytest.mark.shared_data
def test_corrupt_avi_cuts_or_fails_cleanly(shared_data, tmp_path):
    src = shared_data / "media" / "Megamind_bugy.avi"
    res = cut_clip(src, tmp_path / "c.mp4", 1500, 2500)
    assert res.n_video_frames > 0
    assert decoded_frames(tmp_path / "c.mp4")[0] == res.n_video_frames


def test_rotation_is_kept_by_copy_and_applied_by_reencode(tmp_path):
    # 64x32 frames, left half white, no audio; shown turned clockwise the white half is on top.
    src = tmp_path / "flat.mp4"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 32, "yuv420p"
        for i in range(50):
            a = np.zeros((32, 64, 3), np.uint8)
            a[:, :32] = 255
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    rot = with_rotation_90(src, tmp_path / "rot.mp4")
    assert probe(rot).rotation == 270 and probe(rot).display_size == (32, 64)
    copied = cut_clip(rot, tmp_path / "c.mp4", 0, 1000)
    assert copied.method == "copy" and probe(tmp_path / "c.mp4").rotation == 270
    cut_clip(rot, tmp_path / "r.mp4", 0, 1000, options=CutOptions(mode="reencode"))
    assert probe(tmp_path / "r.mp4").rotation == 0
    with av.open(str(tmp_path / "r.mp4")) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape[:2] == (64, 32)
    assert img[:28].mean() > 200 and img[36:].mean() < 50, "upright: the white half on top"


def test_a_codec_mp4_cannot_carry_is_reencoded_even_on_a_keyframe(shared_data, tmp_path):
    # vtest.avi is MS-MPEG4 v3 in AVI: the MP4 muxer refuses it, so a cut from its first keyframe
    # is re-encoded instead of failing
    src = shared_data / "media" / "vtest.avi"
    r = cut_clip(src, tmp_path / "v.mp4", 0, 2000, keyframes_ms=keyframes_ms(src))
    assert r.method == "reencode" and r.encoder == "libx264"
    with av.open(r.path) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert (v.codec_context.width, v.codec_context.height) == (768, 576)  # vtest.avi's frame size
        assert sum(1 for _ in c.decode(video=0)) == 20  # 2 s of a 10 fps source
