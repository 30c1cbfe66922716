"""`clipfactory run` over exotic media (see ``exotic.py``) and over every real file in shared/data/media.

No property of a media file may end as a ``bug`` outcome: the factory handles it (copies it, or re-encodes
what MP4 cannot carry) or refuses it with a named ``media.*`` reason. Every video kind gives exported clips
that decode, hold the frames of the span the index gives, and show upright. The index gives the span each
clip's file really holds, which for a stream copy can differ from the planned one.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from exotic import FPS, KINDS, SIZE, make_exotic_set, two_shots_with_b_frames

from clipfactory.catalog import Catalog
from clipfactory.config import Settings
from clipfactory.factory.pipeline import run_pipeline
from clipfactory.media.cut import CutOptions, cut_clip, keyframes_ms

VIDEO_KINDS = [k.name for k in KINDS if k.video]
FRAME_MS = 1000 / FPS
MAX_FRAME_MS = 80  # the longest frame of the set (the variable-rate file's)


def _settings(tmp: Path, inputs: list[Path], **stages) -> Settings:
    return Settings(
        catalog=str(tmp / "cat.duckdb"),
        store=str(tmp / "store"),
        inputs=[str(p) for p in inputs],
        license="CC-BY-4.0",
        rights_holder="Test Holder",
        purpose="research",
        build={"name": "exotic", "out": str(tmp / "builds"), "shard_size": 100},
        stages=stages,
    )


def _bugs(cat: Catalog) -> list[dict]:
    return cat.query(
        "SELECT stage, item_id, error FROM stage_outcomes WHERE status = 'failed' AND error_kind = 'bug'"
    )


def _exported(summary: dict) -> list[tuple[dict, bytes, dict]]:
    """(index row, mp4 bytes, clip json) of every clip of the run's build."""
    out = Path(summary["build"]["out_dir"])
    rows = []
    for row in pq.read_table(out / "index.parquet").to_pylist():
        with tarfile.open(out / row["shard"]) as tar:
            mp4 = tar.extractfile(f"{row['key']}.mp4").read()
            doc = json.loads(tar.extractfile(f"{row['key']}.json").read())
        rows.append((row, mp4, doc))
    return rows


def _times_ms(stream, frames) -> list[float]:
    """Frame times in ms from the stream's start; by count at the nominal rate when frames have no pts."""
    tb, s0 = stream.time_base, stream.start_time or 0
    rate = float(stream.average_rate or FPS)
    return [
        float((f.pts - s0) * tb) * 1000 if f.pts is not None else i * 1000 / rate
        for i, f in enumerate(frames)
    ]


def _decode(src) -> tuple[list, list[float]]:
    """Every decoded video frame of ``src`` (a path or bytes) and their times in ms."""
    with av.open(io.BytesIO(src) if isinstance(src, bytes) else str(src)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        return frames, _times_ms(v, frames)


def _clip_span_ms(frames, times) -> float:
    """How long the decoded clip lasts: from its first frame to the end of its last one."""
    last = frames[-1]
    dur = float(last.duration * last.time_base) * 1000 if last.duration else FRAME_MS
    return times[-1] + dur - times[0]


def _shown_size(frame) -> tuple[int, int]:
    return (frame.height, frame.width) if (frame.rotation or 0) % 180 else (frame.width, frame.height)


def _luma(frame) -> np.ndarray:
    return frame.reformat(format="gray").to_ndarray().astype(np.int16)


# -- the exotic set ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exotic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exotic")
    made, skipped = make_exotic_set(tmp / "media")
    # The quality filter is not under test: the synthetic footage is short and soft.
    s = _settings(tmp, list(made.values()), **{"quality.filter": {"min_duration_s": 0.5, "min_sharpness": 0}})
    summary = run_pipeline(s)
    cat = Catalog(s.catalog)
    origin = {
        r["source_id"]: Path(r["origin_uri"]).name
        for r in cat.query("SELECT source_id, origin_uri FROM sources")
    }
    by_file = {p.name: k for k, p in made.items()}
    clips: dict[str, list] = {}
    for row, mp4, doc in _exported(summary):
        clips.setdefault(by_file[origin[row["source_id"]]], []).append((row, mp4, doc))
    return {"made": made, "skipped": skipped, "settings": s, "summary": summary, "cat": cat, "clips": clips}


def test_every_encoder_the_exotic_set_needs_is_here(exotic):
    assert exotic["skipped"] == {}, exotic["skipped"]


def test_the_run_over_exotic_media_has_no_bug_rows(exotic):
    assert exotic["summary"]["status"] == "finished" and exotic["summary"]["build"]["status"] == "complete"
    assert _bugs(exotic["cat"]) == []
    failed = exotic["cat"].query("SELECT stage, reason, error FROM stage_outcomes WHERE status = 'failed'")
    assert all(r["reason"] and r["reason"].startswith("media.") for r in failed), failed


def test_audio_only_media_is_refused_by_name(exotic):
    sid = exotic["cat"].scalar(
        "SELECT source_id FROM sources WHERE origin_uri = ?", [str(exotic["made"]["audio_only"].resolve())]
    )
    rows = exotic["cat"].query(
        "SELECT stage, status, error_kind, reason FROM stage_outcomes WHERE item_id = ? ORDER BY recorded_at",
        [sid],
    )
    assert rows[-1] == {
        "stage": "media.probe",
        "status": "failed",
        "error_kind": "terminal",
        "reason": "media.no_video_stream",
    }
    assert "audio_only" not in exotic["clips"]


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_every_video_kind_is_exported_as_clips_that_decode(exotic, kind):
    clips = exotic["clips"].get(kind)
    assert clips, f"{kind}: no clip exported"
    src_frames, src_times = _decode(exotic["made"][kind])
    want = _shown_size(src_frames[0])
    if kind == "rotated":
        assert want == (SIZE[1], SIZE[0])  # the display matrix turns the picture by 90°
    for row, mp4, doc in clips:
        frames, times = _decode(mp4)
        assert frames, f"{kind}: {row['clip_id']} holds no frame"
        w, h = _shown_size(frames[0])
        # A re-encode to 4:2:0 rounds odd sizes down to even ones.
        assert (w, h) == want or (row["cut_method"] == "reencode" and (w, h) == (want[0] & ~1, want[1] & ~1))
        # The file holds exactly the source's frames of the span the index gives, and lasts that long.
        inside = [t for t in src_times if row["start_ms"] - 1 <= t < row["end_ms"] - 1]
        assert len(frames) == len(inside), (kind, row["start_ms"], row["end_ms"])
        assert abs(_clip_span_ms(frames, times) - row["duration_ms"]) <= 1.5
        assert (doc["span"]["start_ms"], doc["span"]["end_ms"]) == (row["start_ms"], row["end_ms"])
        first = src_frames[src_times.index(inside[0])]
        if row["cut_method"] == "copy":  # the same packets decode to the same pixels
            assert np.array_equal(_luma(frames[0]), _luma(first))


@pytest.mark.parametrize("span", [(0, 2000), (480, 1440)])
def test_audio_of_streams_that_start_apart_stays_in_step(exotic, tmp_path, span):
    # In the transport stream the audio starts 1 s before the video and ends 1 s before it: a clip has
    # the audio of its own moments only, which end where the source's audio ends.
    src = exotic["made"]["mpeg2_ts"]
    with av.open(str(src)) as c:
        v = c.streams.video[0]
        video_start = float(v.start_time * v.time_base)
        a = list(c.decode(c.streams.audio[0]))
        audio_end = a[-1].time + a[-1].samples / a[-1].sample_rate
    assert 0.9 < video_start - a[0].time < 1.1
    for mode in ("auto", "reencode"):
        res = cut_clip(src, tmp_path / f"{mode}.mp4", *span, options=CutOptions(mode=mode))
        with av.open(str(tmp_path / f"{mode}.mp4")) as c:
            frames = list(c.decode(c.streams.audio[0]))
        got = frames[-1].time + frames[-1].samples / frames[-1].sample_rate - frames[0].time
        want = audio_end - video_start - res.start_ms / 1000
        assert frames[0].time < 0.05 and abs(got - want) < 0.05, (mode, res.method, got, want)


def _cut_case(path: Path) -> tuple[int, int]:
    """A span in the middle of ``path``: from its second keyframe when one lies inside, else from 1 s."""
    kf = [k for k in keyframes_ms(path) if 300 <= k <= 1200]
    start = kf[0] if kf else 1000
    return start, start + 800


@pytest.mark.parametrize("mode", ["auto", "reencode"])
@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_a_span_from_the_middle_holds_the_frames_of_its_span(exotic, tmp_path, kind, mode):
    src = exotic["made"][kind]
    start, end = _cut_case(src)
    res = cut_clip(src, tmp_path / "c.mp4", start, end, options=CutOptions(mode=mode))
    frames, times = _decode(tmp_path / "c.mp4")
    src_frames, src_times = _decode(src)
    inside = [t for t in src_times if res.start_ms - 1 <= t < res.end_ms - 1]
    assert len(frames) == len(inside) == res.n_video_frames
    assert abs(_clip_span_ms(frames, times) - (res.end_ms - res.start_ms)) <= 1.5
    assert abs(res.start_ms - start) <= MAX_FRAME_MS and res.end_ms <= end + MAX_FRAME_MS
    first = src_frames[src_times.index(inside[0])]
    if res.method == "copy":
        assert np.array_equal(_luma(frames[0]), _luma(first))
    elif kind != "rotated":  # re-encoded at constant quality: close to the source frame
        a, b = (
            f.reformat(width=64, height=48, format="gray").to_ndarray().astype(float)
            for f in (frames[0], first)
        )
        assert np.abs(a - b).mean() < 6


# -- the span the index gives ---------------------------------------------------------------------------------


def test_the_index_gives_the_span_a_stream_copy_holds(tmp_path):
    src = two_shots_with_b_frames(tmp_path / "media" / "two_shots.mp4")
    s = _settings(tmp_path, [src], **{"quality.filter": {"min_duration_s": 0.5, "min_sharpness": 0}})
    summary = run_pipeline(s)
    rows = sorted(_exported(summary), key=lambda r: r[0]["planned_start_ms"])
    assert [r[0]["cut_method"] for r in rows] == ["copy", "copy"]
    src_frames, src_times = _decode(src)
    (first_row, _, _), (second_row, _, _) = rows
    # The first clip was planned up to the frame before the cut (1960 ms). Its copy stops at the P-frame
    # shown at 1960 ms, decoded before the B-frames shown at 1840-1920 ms, so it holds 0-1840 ms.
    assert (first_row["planned_start_ms"], first_row["planned_end_ms"]) == (0, 1960)
    for row, mp4, doc in rows:
        frames, times = _decode(mp4)
        # Measured on the written file: its frames are the source's from the keyframe at start_ms, for
        # duration_ms.
        assert row["start_ms"] in src_times
        k, n = src_times.index(row["start_ms"]), len(frames)
        assert src_frames[k].key_frame
        assert row["duration_ms"] == row["end_ms"] - row["start_ms"] == round(_clip_span_ms(frames, times))
        assert np.array_equal(_luma(frames[0]), _luma(src_frames[k]))
        assert np.array_equal(_luma(frames[-1]), _luma(src_frames[k + n - 1]))
        assert doc["span"]["planned_end_ms"] == row["planned_end_ms"]
        assert doc["attribution"]["modifications"][0]["end_ms"] == row["end_ms"]
    assert (first_row["start_ms"], first_row["end_ms"]) == (0, 1840)
    assert second_row["planned_end_ms"] == second_row["end_ms"] == 4000


# -- the real media beside the project --------------------------------------------------------------------------


@pytest.mark.shared_data
def test_the_run_over_every_shared_media_file_has_no_bug_rows(shared_data, tmp_path):
    files = sorted(p for p in (shared_data / "media").iterdir() if p.is_file())
    s = _settings(tmp_path, files, **{"media.cut": {"preset": "ultrafast"}})
    summary = run_pipeline(s)
    cat = Catalog(s.catalog)
    assert _bugs(cat) == []
    assert summary["stages"]["media.probe"]["kept"] + summary["stages"]["media.probe"]["failed"] == len(files)
    failed = cat.query("SELECT stage, reason FROM stage_outcomes WHERE status = 'failed'")
    assert all(r["reason"] and r["reason"].startswith("media.") for r in failed), failed
    exported = _exported(summary)
    assert exported and len({r["source_id"] for r, _, _ in exported}) >= len(files) - 2
    for row, mp4, _ in exported:
        with av.open(io.BytesIO(mp4)) as c:
            v = c.streams.video[0]
            # The file's own header (written by the muxer) agrees with the span the index gives.
            assert (
                abs(float(v.duration * v.time_base) * 1000 - row["duration_ms"])
                <= 1000 / float(v.average_rate) + 1
            )
            assert next(c.decode(v)).width > 0
