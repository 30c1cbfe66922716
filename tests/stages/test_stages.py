"""The media, quality and acquisition stages, one at a time."""

from __future__ import annotations

import json

import av
import pytest
from cf_synth import make_video

from clipfactory import ids
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.media.analyse import AnalysisResult, Shot
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.stage import StageContext
from clipfactory.stages.acquire.local import LocalAcquireStage
from clipfactory.stages.media.analyse import AnalyseStage, plan_spans
from clipfactory.stages.media.cut import CutStage
from clipfactory.stages.media.probe import ProbeStage
from clipfactory.stages.quality.filter import REASONS, QualityFilterStage
from clipfactory.storage import BlobStore


@pytest.fixture
def ctx(tmp_path) -> StageContext:
    return StageContext(store_root=str(tmp_path / "store"), catalog_path=str(tmp_path / "cat.duckdb"))


def _stored_source(ctx: StageContext, path, **fields) -> SourceRecord:
    uri, size = BlobStore(ctx.store_root).put_file(path)
    sha = uri.rsplit(":", 1)[1]
    return SourceRecord(
        source_id=ids.content_source_id(sha),
        platform="owned",
        blob_uri=uri,
        content_sha256=sha,
        size_bytes=size,
        content_license="CC-BY-4.0",
        **fields,
    )


# -- acquire.local ------------------------------------------------------------------------------------------


def test_acquire_local_puts_the_file_in_the_store(ctx, three_shots):
    sha = ids.sha256_file(str(three_shots))
    item = SourceRecord(
        source_id=f"sha256:{sha}",
        platform="owned",
        origin_uri=str(three_shots),
        content_sha256=sha,
        content_license="CC0-1.0",
        rights_holder="Me",
    )
    uri_item = item.replace(origin_uri=f"file://{three_shots}")
    missing = item.replace(origin_uri=str(three_shots) + ".nope")
    changed = item.replace(source_id="sha256:" + "0" * 64, content_sha256="0" * 64)
    stage = LocalAcquireStage({}, ctx)
    res = stage.process_batch([item, uri_item, missing, changed])
    assert [r.status for r in res] == ["kept", "kept", "failed", "failed"]
    assert [r.item_id for r in res] == [stage.item_id(i) for i in (item, uri_item, missing, changed)]
    assert res[0].item_id.startswith(f"sha256:{sha}@") and res[0].item_id != res[1].item_id
    rec = res[0].records[0]
    assert rec.source_id == f"sha256:{sha}" and rec.content_sha256 == sha
    assert rec.blob_uri == f"blob:sha256:{sha}" and rec.size_bytes == three_shots.stat().st_size
    assert rec.platform == "owned" and rec.content_license == "CC0-1.0" and rec.acquired_at
    assert BlobStore(ctx.store_root).exists(rec.blob_uri)
    assert res[2].error_kind == "terminal" and "not found" in res[2].error
    assert res[3].error.startswith("acquire.content_changed")
    assert not list((BlobStore(ctx.store_root).incoming()).iterdir())
    # Another declared licence is another acquisition item (so that the change is recorded).
    assert stage.item_id(item.replace(content_license="MIT")) != stage.item_id(item)


def test_acquire_keeps_media_fields_known_for_the_same_content(ctx, three_shots):
    sha = ids.sha256_file(str(three_shots))
    with Catalog(ctx.catalog_path).write() as con:
        upsert_records(
            con, [SourceRecord(f"sha256:{sha}", "owned", width=320, analysis_uri="blob:sha256:" + "0" * 64)]
        )
    item = SourceRecord(f"sha256:{sha}", "owned", origin_uri=str(three_shots), content_license="MIT")
    rec = LocalAcquireStage({}, ctx).process_batch([item])[0].records[0]
    assert rec.width == 320 and rec.analysis_uri and rec.content_license == "MIT"


def test_acquire_drops_empty_files(ctx, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    item = SourceRecord("origin:e", "owned", origin_uri=str(tmp_path / "empty.mp4"))
    assert LocalAcquireStage({}, ctx).process_batch([item])[0].reason == "acquire.empty_file"


# -- media.probe --------------------------------------------------------------------------------------------


def test_probe_fills_media_fields(ctx, three_shots):
    src = _stored_source(ctx, three_shots)
    [res] = ProbeStage({}, ctx).process_batch([src])
    rec = res.records[0]
    assert (rec.width, rec.height, rec.fps, rec.video_codec) == (320, 180, 25.0, "h264")
    assert rec.audio_codec == "aac" and rec.n_audio_streams == 1 and rec.rotation == 0
    assert abs(rec.duration_ms - 9000) <= 40 and rec.variable_fps is False and "mp4" in rec.container


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "media.empty_file"), (b"this is not a video at all\n" * 20, "media.not_media")],
)
def test_probe_names_the_reason_of_unreadable_media(ctx, tmp_path, content, reason):
    f = tmp_path / "bad.mp4"
    f.write_bytes(content)
    store = BlobStore(ctx.store_root)
    uri = store.put_bytes(content)
    src = SourceRecord("sha256:" + uri.rsplit(":", 1)[1], "owned", blob_uri=uri)
    [res] = ProbeStage({}, ctx).process_batch([src])
    assert res.status == "failed" and res.error_kind == "terminal"
    assert res.error.startswith(f"{reason}: ") and res.reason == reason


def test_probe_without_a_blob_fails_terminally(ctx):
    [res] = ProbeStage({}, ctx).process_batch([SourceRecord("youtube:dQw4w9WgXcQ", "youtube")])
    assert res.status == "failed" and res.error_kind == "terminal" and "media.not_acquired" in res.error


def test_probe_max_duration_drops(ctx, three_shots):
    src = _stored_source(ctx, three_shots)
    [res] = ProbeStage({"max_duration_s": 5}, ctx).process_batch([src])
    assert res.status == "dropped" and res.reason == "media.too_long"


# -- media.analyse ------------------------------------------------------------------------------------------


def _shot(i, s, e, out):
    return Shot(i, s * 25 // 1000, e * 25 // 1000, s, e, out, 1.0, 500.0, 120.0, 0.0, 0.0)


def _result(shots) -> AnalysisResult:
    return AnalysisResult(
        probe=None, fps=25.0, n_frames=0, duration_ms=shots[-1].end_ms, shots=shots, pdq=[], decode_errors=0
    )


def test_plan_spans_trims_transitions_splits_long_shots_and_snaps_to_keyframes():
    r = _result([_shot(0, 0, 4000, "cut"), _shot(1, 4000, 9000, "dissolve"), _shot(2, 9000, 28500, "end")])
    spans, short = plan_spans(r, min_clip_s=1, max_clip_s=10, gradual_margin_s=0.5, cut_trim_frames=1)
    assert [(s.start_ms, s.end_ms) for s in spans] == [(0, 3960), (4040, 8500), (9500, 19000), (19000, 28500)]
    assert [s.transition_in for s in spans] == ["start", "cut", "dissolve", "split"]
    assert [s.transition_out for s in spans] == ["cut", "dissolve", "split", "end"]
    assert short == 0
    spans, _ = plan_spans(
        r,
        min_clip_s=1,
        max_clip_s=10,
        gradual_margin_s=0.5,
        cut_trim_frames=1,
        keyframes=[0, 4000, 9800, 19300],
        keyframe_tolerance_s=0.5,
    )
    # 4040 goes back onto the cut's keyframe; 9500 forward to 9800; 19000 forward to 19300.
    assert [s.start_ms for s in spans] == [0, 4000, 9800, 19300]
    spans, short = plan_spans(r, min_clip_s=5, max_clip_s=10, gradual_margin_s=0.5, cut_trim_frames=1)
    assert short == 2 and [(s.start_ms, s.end_ms) for s in spans] == [(9500, 19000), (19000, 28500)]


def test_analyse_emits_the_source_then_its_clips(ctx, three_shots):
    src = _stored_source(ctx, three_shots)
    stage = AnalyseStage({"min_clip_s": 1.0}, ctx)
    [res] = stage.process_batch([src])
    assert res.status == "kept"
    source, *clips = res.records
    assert isinstance(source, SourceRecord) and source.source_id == src.source_id
    assert source.analysis_uri and source.fingerprint_uri
    store = BlobStore(ctx.store_root)
    analysis = json.loads(store.path_of(source.analysis_uri).read_text())
    assert len(analysis["shots"]) == 3
    assert len(clips) == 3 and all(isinstance(c, ClipRecord) for c in clips)
    assert [c.start_ms for c in clips] == [0, 3000, 6000]  # snapped back onto the cuts' keyframes
    assert [c.end_ms for c in clips] == [2960, 5960, 9000]
    for c in clips:
        assert c.clip_id == ids.clip_id(src.source_id, c.start_ms, c.end_ms)
        assert c.fingerprint_uri == source.fingerprint_uri
        assert store.path_of(c.thumb_uri).read_bytes()[:2] == b"\xff\xd8"
        assert c.sharpness and c.luma and c.blob_uri is None
    from clipfactory.fingerprints.frames import read_frame_hashes

    assert read_frame_hashes(store, source.fingerprint_uri).num_rows >= 8
    detail = json.loads(res.detail)
    assert detail["frames"] == 225 and detail["clips"] == 3
    assert stage.progress_info([res])["clips"] == 3


def test_analyse_without_the_ocr_package_says_so_once_and_in_each_outcome(ctx, three_shots, monkeypatch, caplog):
    """``detect_text = "auto"`` (the default) and no RapidOCR: the run still analyses, but says at its start
    that burned-in text is not read, naming the pip install, and each item's outcome keeps that reason."""
    import logging

    import clipfactory.media.analyse as media_analyse

    monkeypatch.setattr(media_analyse, "ocr_available", lambda: False)
    stage = AnalyseStage({"min_clip_s": 1.0}, ctx)
    with caplog.at_level(logging.WARNING):
        stage.check()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and "text on screen is not read" in said[0]
    assert "pip install 'clipfactory[ocr]'" in said[0] and "detect_text = false" in said[0]
    [res] = stage.process_batch([_stored_source(ctx, three_shots)])
    assert res.status == "kept"
    assert "pip install 'clipfactory[ocr]'" in json.loads(res.detail)["text_not_read"]
    # detect_text = false, as the message says: nothing is said and the outcome has no such field.
    caplog.clear()
    quiet = AnalyseStage({"min_clip_s": 1.0, "detect_text": False}, ctx)
    quiet.check()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    [res] = quiet.process_batch([_stored_source(ctx, three_shots)])
    assert "text_not_read" not in json.loads(res.detail)


def test_analyse_drops_a_source_without_usable_shots(ctx, three_shots):
    [res] = AnalyseStage({"min_clip_s": 5.0}, ctx).process_batch([_stored_source(ctx, three_shots)])
    assert res.status == "dropped" and res.reason == "media.no_clips"


# -- media.cut ----------------------------------------------------------------------------------------------


def test_cut_stage_writes_blobs_and_records_the_method(ctx, three_shots):
    src = _stored_source(ctx, three_shots)
    with Catalog(ctx.catalog_path).write() as con:
        upsert_records(con, [src])
    clips = [
        ClipRecord(ids.clip_id(src.source_id, s, e), src.source_id, s, e)
        for s, e in [(1000, 2500), (1500, 2500)]
    ]
    missing = ClipRecord("x" * 20, "sha256:" + "1" * 64, 0, 1000)
    res = CutStage({}, ctx).process_batch([*clips, missing])
    assert [r.status for r in res] == ["kept", "kept", "failed"]
    a, b = res[0].records[0], res[1].records[0]
    assert (a.cut_method, b.cut_method) == ("copy", "reencode")
    store = BlobStore(ctx.store_root)
    for rec in (a, b):
        assert rec.content_sha256 == ids.sha256_file(str(store.path_of(rec.blob_uri)))
        assert rec.size_bytes == store.path_of(rec.blob_uri).stat().st_size
    assert json.loads(res[1].detail)["encoder"] == "libx264"
    assert "media.not_acquired" in res[2].error
    assert not [p for p in store.incoming().iterdir()]


# -- quality.filter -----------------------------------------------------------------------------------------


GOOD = dict(luma=120.0, sharpness=800.0, static_fraction=0.1, black_fraction=0.0, text_fraction=0.0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"end_ms": 1000}, "quality.too_short"),
        ({"black_fraction": 0.5}, "quality.black_frames"),
        ({"luma": 10.0}, "quality.too_dark"),
        ({"luma": 250.0}, "quality.too_bright"),
        ({"sharpness": 5.0}, "quality.too_blurry"),
        ({"static_fraction": 0.99}, "quality.static"),
        ({"text_fraction": 0.9}, "quality.too_much_text"),
    ],
)
def test_quality_filter_drops_with_a_reason(change, reason):
    clip = ClipRecord(
        "c" * 20, "s", 0, 5000, **{**GOOD, **{k: v for k, v in change.items() if k != "end_ms"}}
    )
    if "end_ms" in change:
        clip = clip.replace(end_ms=change["end_ms"])
    stage = QualityFilterStage({})
    [res] = stage.process_batch([clip])
    assert res.status == "dropped" and res.reason == reason and reason in REASONS
    assert reason in json.loads(res.detail)
    [ok] = stage.process_batch([ClipRecord("d" * 20, "s", 0, 5000, **GOOD)])
    assert ok.status == "kept"


def test_quality_filter_reports_every_failed_check_and_respects_config():
    clip = ClipRecord("c" * 20, "s", 0, 5000, **{**GOOD, "luma": 10.0, "sharpness": 1.0})
    [res] = QualityFilterStage({}).process_batch([clip])
    assert res.reason == "quality.too_dark" and set(json.loads(res.detail)) == {
        "quality.too_dark",
        "quality.too_blurry",
    }
    [res] = QualityFilterStage({"min_luma": 5, "min_sharpness": 0}).process_batch([clip])
    assert res.status == "kept"


def test_synthetic_dark_and_flat_shots_are_dropped_end_to_end(ctx, tmp_path):
    path = make_video(tmp_path / "q.mp4", [("bars", 3), ("dark", 3), ("flat", 3)], keyint=25, scenecut=False)
    [res] = AnalyseStage({}, ctx).process_batch([_stored_source(ctx, path)])
    clips = [r for r in res.records if isinstance(r, ClipRecord)]
    reasons = [r.reason for r in QualityFilterStage({}).process_batch(clips)]
    assert reasons[0] is None
    assert "quality.too_dark" in reasons
    assert any(r in ("quality.too_blurry", "quality.static") for r in reasons[2:])


# -- real media ---------------------------------------------------------------------------------------------


# Megamind_bugy.avi: 270 MPEG-4 frames at 30 fps (9 s), 720x528, no audio, with one-frame picture glitches
# (frames 40, 75, 95, 100) and three hard cuts (frames 98, 154 and 200).
AVI_CUTS_MS = [0, 98 * 1000 / 30, 154 * 1000 / 30, 200 * 1000 / 30, 9000]


@pytest.mark.shared_data
def test_glitched_avi_goes_through_every_media_stage(ctx, shared_data):
    path = shared_data / "media" / "Megamind_bugy.avi"
    src = _stored_source(ctx, path)
    with Catalog(ctx.catalog_path).write() as con:
        upsert_records(con, [src])
    [p] = ProbeStage({}, ctx).process_batch([src])
    assert p.status == "kept"
    rec = p.records[0]
    assert (rec.container, rec.video_codec, rec.width, rec.height, rec.fps) == (
        "avi",
        "mpeg4",
        720,
        528,
        30.0,
    )
    assert rec.duration_ms == 9000 and rec.n_audio_streams == 0
    [a] = AnalyseStage({}, ctx).process_batch([rec])
    assert a.status == "kept"
    detail = json.loads(a.detail)
    assert (detail["frames"], detail["decode_errors"], detail["shots"], detail["clips"]) == (270, 0, 4, 4)
    clips = [r for r in a.records if isinstance(r, ClipRecord)]
    # One clip a shot, each inside its shot (to within two frames).
    assert len(clips) == 4
    for c, lo, hi in zip(clips, AVI_CUTS_MS, AVI_CUTS_MS[1:], strict=False):
        assert lo - 67 <= c.start_ms < c.end_ms <= hi + 67, (c.start_ms, c.end_ms, lo, hi)
    cut = CutStage({}, ctx).process_batch(clips)
    # Every clip starts on a keyframe, but the file's packed B-frames decode with permuted times
    # (1, 2, 3, 5, 4, ...), which a copy would keep: every clip is re-encoded, with all its frames.
    assert [r.status for r in cut] == ["kept"] * 4
    store = BlobStore(ctx.store_root)
    for clip, r in zip(clips, cut, strict=True):
        out = r.records[0]
        assert out.cut_method == "reencode"
        with av.open(str(store.path_of(out.blob_uri))) as c:
            n = sum(1 for _ in c.decode(video=0))
        assert abs(n - (clip.end_ms - clip.start_ms) * 30 / 1000) <= 1, (n, clip.start_ms, clip.end_ms)


@pytest.mark.shared_data
def test_probe_of_a_real_file_fills_its_known_facts(ctx, shared_data):
    # bikes.mp4: 250 H.264 frames at 25 fps (10 s), 640x272, no audio.
    path = shared_data / "media" / "bikes.mp4"
    [res] = ProbeStage({}, ctx).process_batch([_stored_source(ctx, path)])
    rec = res.records[0]
    assert res.status == "kept"
    assert (rec.video_codec, rec.width, rec.height, rec.fps, rec.duration_ms) == (
        "h264",
        640,
        272,
        25.0,
        10000,
    )
    assert rec.n_audio_streams == 0 and rec.audio_codec is None and rec.variable_fps is False
    assert rec.rotation == 0 and rec.size_bytes == path.stat().st_size == 509868
