"""`clipfactory run` over exotic media (see ``exotic.py``) and over every real file in shared/data/media.

One run takes them all (a module fixture). No property of a media file may end as a ``bug`` outcome: the
factory copies a stream, re-encodes what MP4 cannot carry, or refuses the file with a named reason. What
each file must end as is written below from what the file is (:data:`EXPECTED`), not from what the
factory did. Every video kind gives exported clips that decode, hold the frames of the span the index
gives, and show upright. The index gives the span each clip's file really holds, which for a stream copy
can differ from the planned one.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from exotic import FPS, KINDS, SIZE, make_exotic_set, two_shots_with_b_frames

import clipfactory.media.cut as cut_module
from clipfactory.catalog import Catalog
from clipfactory.config import Settings
from clipfactory.factory.pipeline import run_pipeline
from clipfactory.media.cut import CutOptions, cut_clip, keyframes_ms

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"
VIDEO_KINDS = [k.name for k in KINDS if k.video]
FILE_OF = {k.name: k.filename for k in KINDS}
FRAME_MS = 1000 / FPS
MAX_FRAME_MS = 80  # the longest frame of the set (the variable-rate file's)


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


@dataclass(frozen=True)
class Clips:
    """The file gives exported clips, cut by ``methods`` only; ``copied``: at least one is a stream copy
    (the codec is one MP4 carries, the packets have timestamps, and clips start on keyframes)."""

    methods: frozenset[str] = frozenset({"copy", "reencode"})
    copied: bool = True


@dataclass(frozen=True)
class Refused:
    """The file ends at ``stage`` with ``status`` and a reason starting with ``reason``; no clip of it."""

    stage: str
    status: str
    reason: str


REENCODED = Clips(frozenset({"reencode"}), copied=False)

#: What each file ends as, by what it is. Files not named here must give clips of which one is copied.
EXPECTED: dict[str, Clips | Refused] = {
    # generated (exotic.py)
    FILE_OF["audio_only"]: Refused("media.probe", "failed", "media.no_video_stream"),  # AAC only
    FILE_OF["vp8_webm"]: REENCODED,  # MP4 has no VP8
    FILE_OF["annexb_h264"]: REENCODED,
    FILE_OF[
        "decode_times"
    ]: REENCODED,  # frame times permuted: a copy would keep them so  # a raw stream has no timestamps, which MP4 needs
    # shared/data/media
    "vtest.avi": REENCODED,  # MS-MPEG4 v3, which MP4 cannot carry
    # MPEG-4 part 2 with packed B-frames in AVI: the frames' times come out permuted (1, 2, 3, 5, 4, ...)
    "Megamind_bugy.avi": REENCODED,
    # H.264 with B-frames whose MP4 gives decode times as presentation times: frames 0, 101, 67, 134, 34 ms
    "box.mp4": REENCODED,
    # carphone_distorted.mp4 is a degraded copy of carphone_pristine.mp4
    "carphone_distorted.mp4": Refused("dedup.near", "dropped", "dedup.near_duplicate_of:"),
}
SHARED_FILES = [
    "Megamind_bugy.avi",
    "bbb_5s.mp4",
    "bikes.mp4",
    "box.mp4",
    "carphone_distorted.mp4",
    "carphone_pristine.mp4",
    "cup.mp4",
    "trailer_bbb.mp4",
    "vtest.avi",
]


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


@dataclass
class Exported:
    row: dict  # its index.parquet row
    mp4: bytes
    doc: dict  # its clip JSON


def _exported(summary: dict) -> list[Exported]:
    """Every clip of the run's build."""
    out = Path(summary["build"]["out_dir"])
    clips = []
    for row in pq.read_table(out / "index.parquet").to_pylist():
        with tarfile.open(out / row["shard"]) as tar:
            mp4 = tar.extractfile(f"{row['key']}.mp4").read()
            doc = json.loads(tar.extractfile(f"{row['key']}.json").read())
        clips.append(Exported(row, mp4, doc))
    return clips


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


def _decode_source(path) -> tuple[list, list[float]]:
    """Every frame of a source in the order it is shown, and the time it is shown at. A decoder returns
    frames in the order they are shown; files that carry decode times as presentation times (``box.mp4``,
    ``decode_times``, packed B-frames in AVI) put those times on the frames permuted, and the k-th frame
    shown is at the k-th time."""
    frames, times = _decode(path)
    return frames, sorted(times)


def _frame_ms(frame) -> float:
    return float(frame.duration * frame.time_base) * 1000 if frame.duration and frame.time_base else FRAME_MS


def _clip_span_ms(frames, times) -> float:
    """How long the decoded clip lasts: from its first frame to the end of its last one."""
    return times[-1] + _frame_ms(frames[-1]) - times[0]


def _shown_size(frame) -> tuple[int, int]:
    return (frame.height, frame.width) if (frame.rotation or 0) % 180 else (frame.width, frame.height)


def _luma(frame) -> np.ndarray:
    return frame.reformat(format="gray").to_ndarray().astype(np.int16)


def _source_packets(path: Path) -> tuple[list[float], list[float]]:
    """(times of every video frame, times of the keyframes) of ``path`` in ms, from its packets."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        s0 = v.start_time or 0
        pk = [(float((p.pts - s0) * v.time_base) * 1000, p.is_keyframe) for p in c.demux(v) if p.size]
    return sorted(t for t, _ in pk), sorted(t for t, k in pk if k)


# -- one run over everything ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exotic")
    made, skipped = make_exotic_set(tmp / "media")
    made["two_shots"] = two_shots_with_b_frames(tmp / "media" / "two_shots.mp4")
    shared = sorted(p for p in SHARED_MEDIA.iterdir() if p.is_file()) if SHARED_MEDIA.is_dir() else []
    files = {p.name: p for p in [*made.values(), *shared]}
    assert len(files) == len(made) + len(shared), "two inputs share a file name"
    # The quality filter is not under test: the synthetic footage is short and soft. Nor are the NSFW and
    # face scores, which read the shot thumbnails (JPEGs the analysis makes, whatever the file was): their
    # own tests are tests/signals/.
    s = _settings(
        tmp,
        list(files.values()),
        **{
            "quality.filter": {"min_duration_s": 0.5, "min_sharpness": 0},
            "media.cut": {"preset": "ultrafast"},
            "signals.visual": {"nsfw": False, "faces": False},
        },
    )
    summary = run_pipeline(s)
    cat = Catalog(s.catalog)
    name_of = {
        r["source_id"]: Path(r["origin_uri"]).name
        for r in cat.query("SELECT source_id, origin_uri FROM sources")
    }
    clips: dict[str, list[Exported]] = {}
    for e in _exported(summary):
        clips.setdefault(name_of[e.row["source_id"]], []).append(e)
    return {
        "made": made,
        "skipped": skipped,
        "files": files,
        "shared": {p.name: p for p in shared},
        "summary": summary,
        "cat": cat,
        "source_of": {v: k for k, v in name_of.items()},
        "clips": clips,
    }


def test_every_encoder_the_exotic_set_needs_is_here(factory):
    assert factory["skipped"] == {}, factory["skipped"]


def test_the_run_has_no_bug_rows(factory):
    summary, cat = factory["summary"], factory["cat"]
    assert summary["status"] == "finished" and summary["build"]["status"] == "complete"
    bugs = cat.query("SELECT stage, item_id, error FROM stage_outcomes WHERE error_kind = 'bug'")
    assert bugs == []
    # The one failure the set holds: the audio-only file has no video stream to probe (EXPECTED). Every other
    # file has a video stream that decodes, so none of its clips may fail anywhere (a cut_error included).
    failed = cat.query(
        "SELECT stage, item_id, reason FROM latest_outcomes WHERE status = 'failed' ORDER BY ALL"
    )
    assert failed == [
        {
            "stage": "media.probe",
            "item_id": factory["source_of"][FILE_OF["audio_only"]],
            "reason": "media.no_video_stream",
        }
    ], failed
    # Every input reached media.probe, and every one it kept was analysed.
    probe = summary["stages"]["media.probe"]
    assert probe["kept"] + probe["failed"] == len(factory["files"])
    assert probe["failed"] == 1
    # the summary names the failed file by its path, not only by its content id
    assert probe["example"] == {"media.no_video_stream": str(factory["files"][FILE_OF["audio_only"]].resolve())}
    assert summary["stages"]["media.analyse"]["received"] == probe["kept"]


@pytest.mark.shared_data
def test_the_run_took_every_shared_media_file(factory, shared_data):
    # Each shared file became a source of the run (the catalog has a source whose origin is that file).
    assert factory["shared"], "no shared media file was found"
    assert set(factory["shared"]) <= set(factory["source_of"])
    assert set(SHARED_FILES) <= set(factory["shared"])


def _last_outcome(cat: Catalog, item_ids: list[str], stage: str) -> list[dict]:
    marks = ",".join("?" * len(item_ids))
    return cat.query(
        f"SELECT item_id, status, reason, error_kind FROM latest_outcomes WHERE stage = ? AND item_id IN ({marks})",
        [stage, *item_ids],
    )


@pytest.mark.parametrize("name", sorted({*(k.filename for k in KINDS), "two_shots.mp4", *SHARED_FILES}))
def test_each_file_ends_as_expected(factory, name):
    if name not in factory["files"]:
        pytest.skip(f"{name} is not beside the project (shared/data/media)")
    want = EXPECTED.get(name, Clips())
    got = factory["clips"].get(name, [])
    sid = factory["source_of"][name]
    if isinstance(want, Refused):
        assert got == []
        ids = [sid]
        if want.stage != "media.probe":  # clip stages: the rows of the source's clips
            ids = [
                r["clip_id"]
                for r in factory["cat"].query("SELECT clip_id FROM clips WHERE source_id = ?", [sid])
            ]
        rows = _last_outcome(factory["cat"], ids, want.stage)
        assert rows and all(
            r["status"] == want.status and r["reason"].startswith(want.reason) for r in rows
        ), rows
        assert all(r["error_kind"] != "bug" for r in rows)
        return
    methods = {e.row["cut_method"] for e in got}
    assert got, f"{name}: no clip exported"
    # Every clip of the source was cut, or dropped by a named quality or near-duplicate rule before it was;
    # none failed at any stage, and every exported clip is one the cut kept.
    cat = factory["cat"]
    ids = [r["clip_id"] for r in cat.query("SELECT clip_id FROM clips WHERE source_id = ?", [sid])]
    cut = {r["item_id"]: r for r in _last_outcome(cat, ids, "media.cut")}
    marks = ",".join("?" * len(ids))
    dropped = {
        r["item_id"]
        for r in cat.query(
            f"SELECT item_id FROM latest_outcomes WHERE status = 'dropped'"
            f" AND stage IN ('quality.filter', 'dedup.near') AND item_id IN ({marks})",
            ids,
        )
    }
    not_cut = [
        (i, cut.get(i))
        for i in ids
        if not (cut.get(i, {}).get("status") == "kept" or (i not in cut and i in dropped))
    ]
    assert not_cut == [], (name, not_cut)
    failed = cat.query(
        f"SELECT stage, item_id, reason FROM latest_outcomes WHERE status = 'failed' AND item_id IN ({marks})",
        ids,
    )
    assert failed == [], (name, failed)
    assert {e.row["clip_id"] for e in got} <= {i for i, r in cut.items() if r["status"] == "kept"}
    assert methods <= want.methods, (name, methods)
    assert ("copy" in methods) == want.copied, (name, methods)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_every_video_kind_is_exported_as_clips_that_decode(factory, kind):
    clips = factory["clips"].get(FILE_OF[kind])
    assert clips, f"{kind}: no clip exported"
    src_frames, src_times = _decode_source(factory["made"][kind])
    want = _shown_size(src_frames[0])
    if kind == "rotated":
        assert want == (SIZE[1], SIZE[0])  # the display matrix turns the picture by 90°
    for e in clips:
        row = e.row
        frames, times = _decode(e.mp4)
        assert frames, f"{kind}: {row['clip_id']} holds no frame"
        w, h = _shown_size(frames[0])
        # A re-encode to 4:2:0 rounds odd sizes down to even ones.
        assert (w, h) == want or (row["cut_method"] == "reencode" and (w, h) == (want[0] & ~1, want[1] & ~1))
        # The file holds exactly the source's frames of the span the index gives, and lasts that long.
        inside = [t for t in src_times if row["start_ms"] - 1 <= t < row["end_ms"] - 1]
        assert len(frames) == len(inside), (kind, row["start_ms"], row["end_ms"])
        assert abs(_clip_span_ms(frames, times) - row["duration_ms"]) <= 1.5
        assert (e.doc["span"]["start_ms"], e.doc["span"]["end_ms"]) == (row["start_ms"], row["end_ms"])
        first = src_frames[src_times.index(inside[0])]
        if row["cut_method"] == "copy":  # the same packets decode to the same pixels
            assert np.array_equal(_luma(frames[0]), _luma(first))


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "size", "frame_ms"),
    [("vtest.avi", (768, 576), 100), ("Megamind_bugy.avi", (720, 528), 1000 / 30)],
)
def test_avi_that_mp4_cannot_copy_gives_reencoded_h264_clips_of_every_frame(factory, name, size, frame_ms):
    # vtest.avi is MS-MPEG4 v3 at 10 fps, Megamind_bugy.avi packed MPEG-4 part 2 at 30 fps: each clip holds
    # one frame per frame interval of the span the index gives, shown in order.
    clips = factory["clips"].get(name)
    assert clips
    for e in clips:
        with av.open(io.BytesIO(e.mp4)) as c:
            v = c.streams.video[0]
            assert v.codec_context.name == "h264"
            frames = list(c.decode(v))
        assert (frames[0].width, frames[0].height) == size
        assert len(frames) == round(e.row["duration_ms"] / frame_ms), e.row
        assert e.row["cut_method"] == "reencode"


def test_the_index_gives_the_span_each_clip_file_holds(factory):
    """For every clip of every file: the index's span is what PyAV reads from the written clip (its decoded
    frames, and the duration its MP4 header gives); a stream copy's span starts on a keyframe of the source
    and holds exactly the source's frames from there."""
    n_copies = 0
    for name, clips in factory["clips"].items():
        src_times, src_keys = None, None
        for e in clips:
            row = e.row
            frames, times = _decode(e.mp4)
            assert all(b > a for a, b in zip(times, times[1:], strict=False)), (
                name,
                "frames shown out of order",
            )
            span = _clip_span_ms(frames, times)
            assert abs(span - row["duration_ms"]) <= 1.5, (name, row["clip_id"], span, row["duration_ms"])
            assert row["duration_ms"] == row["end_ms"] - row["start_ms"]
            with av.open(io.BytesIO(e.mp4)) as c:
                v = c.streams.video[0]
                header_ms = float(v.duration * v.time_base) * 1000
            assert abs(header_ms - row["duration_ms"]) <= 1.5, (name, header_ms, row["duration_ms"])
            assert e.doc["attribution"]["modifications"][0]["end_ms"] == row["end_ms"]
            if row["cut_method"] != "copy":
                continue
            n_copies += 1
            if src_times is None:
                src_times, src_keys = _source_packets(factory["files"][name])
            assert any(abs(k - row["start_ms"]) <= 1 for k in src_keys), (name, row["start_ms"])
            inside = [t for t in src_times if row["start_ms"] - 1 <= t < row["end_ms"] - 1]
            assert len(frames) == len(inside), (name, row["start_ms"], row["end_ms"])
    assert n_copies >= 10


def test_the_index_gives_the_span_a_stream_copy_holds(factory):
    src = factory["made"]["two_shots"]
    clips = sorted(factory["clips"][src.name], key=lambda e: e.row["planned_start_ms"])
    assert [e.row["cut_method"] for e in clips] == ["copy", "copy"]
    src_frames, src_times = _decode_source(src)
    first, second = (e.row for e in clips)
    # The first clip was planned up to the frame before the cut (1960 ms). Its copy stops at the P-frame
    # shown at 1960 ms, decoded before the B-frames shown at 1840-1920 ms, so it holds 0-1840 ms.
    assert (first["planned_start_ms"], first["planned_end_ms"]) == (0, 1960)
    for e in clips:
        row = e.row
        frames, times = _decode(e.mp4)
        # Measured on the written file: its frames are the source's from the keyframe at start_ms, for
        # duration_ms.
        assert row["start_ms"] in src_times
        k, n = src_times.index(row["start_ms"]), len(frames)
        assert src_frames[k].key_frame
        assert row["duration_ms"] == row["end_ms"] - row["start_ms"] == round(_clip_span_ms(frames, times))
        assert np.array_equal(_luma(frames[0]), _luma(src_frames[k]))
        assert np.array_equal(_luma(frames[-1]), _luma(src_frames[k + n - 1]))
        assert e.doc["span"]["planned_end_ms"] == row["planned_end_ms"]
    assert (first["start_ms"], first["end_ms"]) == (0, 1840)
    assert second["planned_end_ms"] == second["end_ms"] == 4000


# -- cuts of single spans ---------------------------------------------------------------------------------------


def test_the_mp4_muxer_has_the_last_word_on_a_stream_copy(factory, tmp_path, monkeypatch):
    # Were VP8 video and A-law audio on the lists of codecs to copy, FFmpeg's MP4 muxer would still refuse
    # them ("'mp4' format does not support ..."): the cut re-encodes them instead of failing.
    monkeypatch.setattr(cut_module, "MP4_VIDEO", cut_module.MP4_VIDEO | {"vp8"})
    monkeypatch.setattr(cut_module, "MP4_AUDIO", cut_module.MP4_AUDIO | {"pcm_alaw"})
    vp8 = cut_clip(factory["made"]["vp8_webm"], tmp_path / "vp8.mp4", 0, 1000, options=CutOptions())
    assert vp8.method == "reencode" and vp8.audio_method == "copy"  # Opus: MP4 carries it
    mjpeg = cut_clip(factory["made"]["mjpeg_avi"], tmp_path / "mjpeg.mp4", 0, 1000, options=CutOptions())
    assert mjpeg.method == "copy" and mjpeg.audio_method == "reencode"
    with av.open(str(tmp_path / "mjpeg.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert sum(f.samples for f in c.decode(audio=0)) >= 0.9 * 8000  # about 1 s at 8 kHz
    frames, _ = _decode(tmp_path / "vp8.mp4")
    assert len(frames) == 25


@pytest.mark.parametrize("span", [(0, 2000), (480, 1440)])
def test_audio_of_streams_that_start_apart_stays_in_step(factory, tmp_path, span):
    # In the transport stream the audio starts 1 s before the video and ends 1 s before it: a clip has
    # the audio of its own moments only, which end where the source's audio ends.
    src = factory["made"]["mpeg2_ts"]
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
    """A span in the middle of ``path``: from its second keyframe when one lies inside, else from 1010 ms
    (between frames of 25 fps)."""
    kf = [k for k in keyframes_ms(path) if 300 <= k <= 1200]
    start = kf[0] if kf else 1010
    return start, start + 800


@pytest.mark.parametrize("mode", ["auto", "reencode"])
@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_a_span_from_the_middle_holds_the_frames_of_its_span(factory, tmp_path, kind, mode):
    src = factory["made"][kind]
    start, end = _cut_case(src)
    res = cut_clip(src, tmp_path / "c.mp4", start, end, options=CutOptions(mode=mode))
    frames, times = _decode(tmp_path / "c.mp4")
    src_frames, src_times = _decode_source(src)
    inside = [t for t in src_times if res.start_ms - 1 <= t < res.end_ms - 1]
    assert len(frames) == len(inside) == res.n_video_frames
    assert abs(_clip_span_ms(frames, times) - (res.end_ms - res.start_ms)) <= 1.5
    if res.method == "reencode":
        # A frame belongs to the span when its middle lies in it.
        mids = [t for f, t in zip(src_frames, src_times, strict=True) if start <= t + _frame_ms(f) / 2 < end]
        assert (len(frames), res.start_ms) == (len(mids), round(mids[0]))
    else:  # from the keyframe at the start, up to the span's end at most
        assert abs(res.start_ms - start) <= 1 and res.end_ms <= end + MAX_FRAME_MS / 2
    first = src_frames[src_times.index(inside[0])]
    if res.method == "copy":
        assert np.array_equal(_luma(frames[0]), _luma(first))
    elif kind != "rotated":  # re-encoded at constant quality: close to the source frame
        a, b = (
            f.reformat(width=64, height=48, format="gray").to_ndarray().astype(float)
            for f in (frames[0], first)
        )
        assert np.abs(a - b).mean() < 6
