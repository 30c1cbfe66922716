"""caption.vlm and its client against a loopback server on 127.0.0.1 that speaks the chat completions API
(vlm_server.py). No model runs: the server's answers are made from the request."""

from __future__ import annotations

import json

import pytest

from clipfactory.caption.client import VlmClient, completions_url
from clipfactory.catalog import Catalog
from clipfactory.catalog.db import upsert_records
from clipfactory.errors import ConfigError, TerminalError, TransientError
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.stage import StageContext
from clipfactory.stages.caption.vlm import VlmCaptionStage
from clipfactory.storage import BlobStore

from .vlm_server import VlmServer


@pytest.fixture(scope="module")
def clip_world(tmp_path_factory):
    """A 3 s owned video in a blob store and catalog, with one clip of it that a manifest captions."""
    from speech.avmedia import make_video

    d = tmp_path_factory.mktemp("vlm")
    video = make_video(d / "v.mp4", 3.0, seed=7)
    store = BlobStore(d / "store")
    uri, size = store.put_file(video)
    thumb = store.put_bytes(b"\xff\xd8not really a jpeg")
    cat = Catalog(d / "cat.duckdb")
    with cat.write() as con:
        upsert_records(con, [SourceRecord("src", "owned", blob_uri=uri, size_bytes=size)])
    clip = ClipRecord(
        "clip1", "src", 0, 3000, thumb_uri=thumb, caption="a ball rolls",
        captions=json.dumps([{"dataset": "d1", "caption": "a ball rolls"}]),
    )
    bare = ClipRecord("clip2", "src", 1000, 2000)
    ctx = StageContext(store_root=str(d / "store"), catalog_path=str(cat.path))
    return ctx, clip, bare


def _stage(ctx, url, **cfg):
    st = VlmCaptionStage({"endpoint": url, "model": "m1", "timeout_s": 3.0, **cfg}, ctx)
    st.setup()
    return st


def test_endpoint_urls():
    assert completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert completions_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert completions_url("https://api.example/v1/chat/completions") == "https://api.example/v1/chat/completions"
    with pytest.raises(ConfigError):
        completions_url("h:8000")


def test_frames_go_as_base64_jpegs_and_the_caption_keeps_its_origin(clip_world):
    ctx, clip, bare = clip_world
    with VlmServer() as srv:
        st = _stage(ctx, srv.url, frames=3, frame_size=160)
        [r1, r2] = st.process_batch([clip, bare])
    assert r1.status == r2.status == "kept"
    assert [r["images"] for r in srv.requests] == [3, 3]
    assert all(max(w, h) == 160 for r in srv.requests for w, h in r["sizes"])  # 320x240 frames, scaled
    assert all(r["auth"] is None for r in srv.requests)  # no api_key_env: no key sent
    c1, c2 = r1.records[0], r2.records[0]
    # A manifest caption stays the clip's caption; the VLM's is added beside it, with its origin.
    assert (c1.caption, c1.caption_origin) == ("a ball rolls", "manifest")
    assert json.loads(c1.captions) == [
        {"dataset": "d1", "caption": "a ball rolls"},
        {"origin": "vlm", "model": "m1", "caption": "3 frames for m1: a textured scene with moving shapes"},
    ]
    assert (c2.caption, c2.caption_origin) == ("3 frames for m1: a textured scene with moving shapes", "vlm")


def test_enhance_rewrites_manifest_captions_and_primary_vlm_takes_the_rewrite(clip_world):
    ctx, clip, _ = clip_world
    with VlmServer() as srv:
        st = _stage(ctx, srv.url, frames=1, enhance=True, primary="vlm", only_uncaptioned=True)
        [r] = st.process_batch([clip])
    assert len(srv.requests) == 1 and '"a ball rolls"' in srv.requests[0]["prompt"]
    c = r.records[0]
    assert c.caption == "1 frames for m1: rewritten a ball rolls" and c.caption_origin == "vlm"
    vlm = [x for x in json.loads(c.captions) if x.get("origin") == "vlm"]
    assert vlm == [{"origin": "vlm", "model": "m1", "caption": c.caption, "enhances": "a ball rolls"}]


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        ("slow", "transient", "caption.timeout"),
        ("garbage", "transient", "caption.bad_response"),
        ("no_choices", "transient", "caption.bad_response"),
        ("503", "transient", "caption.http_503"),
        ("404", "terminal", "caption.http_404"),
    ],
)
def test_timeouts_and_nonsense_are_transient_failures(clip_world, answer, kind, reason):
    ctx, _, bare = clip_world
    with VlmServer(lambda req, n: answer, slow_s=4.0) as srv:
        st = _stage(ctx, srv.url, frames=1)
        [r] = st.process_batch([bare])
    assert (r.status, r.error_kind, r.reason) == ("failed", kind, reason), r


def test_an_unreachable_endpoint_is_transient(clip_world):
    ctx, _, bare = clip_world
    with VlmServer() as srv:
        url = srv.url
    [r] = _stage(ctx, url, frames=1).process_batch([bare])  # the server is gone: connection refused
    assert (r.status, r.error_kind, r.reason) == ("failed", "transient", "caption.unreachable")


def test_the_thumbnail_stands_in_when_frames_is_zero(clip_world):
    ctx, clip, _ = clip_world
    with VlmServer() as srv:
        [r] = _stage(ctx, srv.url, frames=0).process_batch([clip])
    # the stored thumbnail here is not a JPEG: the server refuses it (400), which is the client's fault
    assert (r.status, r.error_kind, r.reason) == ("failed", "terminal", "caption.http_400"), r


def test_the_key_comes_from_the_environment_and_is_never_in_the_config(monkeypatch, clip_world):
    ctx, _, bare = clip_world
    monkeypatch.delenv("CF_VLM_KEY", raising=False)
    st = VlmCaptionStage({"endpoint": "http://127.0.0.1:9/v1", "model": "m1", "api_key_env": "CF_VLM_KEY"}, ctx)
    with pytest.raises(ConfigError, match="CF_VLM_KEY"):
        st.check()
    monkeypatch.setenv("CF_VLM_KEY", "sk-secret-123")
    with VlmServer() as srv:
        VlmCaptionStage({"endpoint": srv.url, "model": "m1", "api_key_env": "CF_VLM_KEY"}, ctx).check()
    assert "sk-secret-123" not in json.dumps(st.describe())
    with VlmServer() as srv:
        client = VlmClient(srv.url, "m1", api_key_env="CF_VLM_KEY")
        assert "sk-secret" not in repr(client)
        client.complete("hi", [])
    assert srv.requests[0]["auth"] == "Bearer sk-secret-123"
    with pytest.raises(ConfigError, match="model"):
        VlmCaptionStage({"endpoint": "http://127.0.0.1:9/v1"}, ctx).check()


def test_an_endpoint_that_takes_no_connection_stops_the_run_before_any_work(clip_world):
    """Every clip would fail caption.unreachable after its own retries: check() refuses it at once, naming
    the setting; a server that is up passes."""
    ctx, _, _ = clip_world
    with VlmServer() as srv:
        url = srv.url
        VlmCaptionStage({"endpoint": url, "model": "m1"}, ctx).check()
    with pytest.raises(ConfigError) as err:  # the server is gone: connection refused
        VlmCaptionStage({"endpoint": url, "model": "m1"}, ctx).check()
    text = str(err.value)
    assert text.startswith("[caption.vlm] endpoint = ") and "cannot be reached" in text
    assert "start the server first" in text


def test_errors_carry_their_kind():
    assert TransientError("x").transient and not TerminalError("x").transient


def test_with_blur_faces_the_frames_sent_show_no_face(shared_data, tmp_path):
    """carphone_pristine.mp4: a man talking into the camera on every frame. The frames sent with
    blur_faces hold no face that kept its detail (checked as tests/signals/test_blur_no_leak.py checks a
    build); the same frames sent without it show his face to every checker."""
    import io

    import numpy as np
    from PIL import Image

    from clipfactory.signals.blazeface import BlazeFaceOptions, BlazeFaceShortDetector
    from clipfactory.signals.faces import make_detector

    store = BlobStore(tmp_path / "store")
    uri, size = store.put_file(shared_data / "media" / "carphone_pristine.mp4")
    cat = Catalog(tmp_path / "cat.duckdb")
    with cat.write() as con:
        upsert_records(con, [SourceRecord("car", "owned", blob_uri=uri, size_bytes=size)])
    clip = ClipRecord("car1", "car", 0, 4000)
    ctx = StageContext(store_root=str(tmp_path / "store"), catalog_path=str(cat.path))
    checkers = [
        make_detector("blazeface", width=320, min_score=0.7),
        BlazeFaceShortDetector(BlazeFaceOptions(min_score=0.7, min_face_px=8)),
    ]

    def sent(**cfg):
        with VlmServer() as srv:
            [r] = _stage(ctx, srv.url, frames=4, frame_size=176, **cfg).process_batch([clip])
        assert r.status == "kept"
        [req] = srv.requests
        return [np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in req["jpegs"]]

    def detail(rgb, box):
        x, y, w, h = box
        r = rgb[max(0, y):y + h, max(0, x):x + w].astype(np.float32)
        return float(np.abs(np.diff(r, axis=1)).mean() + np.abs(np.diff(r, axis=0)).mean())

    plain, blurred = sent(), sent(blur_faces=True)
    assert len(plain) == len(blurred) == 4
    for p, b in zip(plain, blurred, strict=True):
        faces = [box for d in checkers for box in d.detect_rgb(p)]
        assert faces  # the checkers see him on the unblurred frame
        for box in faces:
            assert detail(b, box) < 0.5 * detail(p, box), box
        for box in (box for d in checkers for box in d.detect_rgb(b)):  # a blurred head may still score
            assert detail(b, box) < 0.5 * detail(p, box), box
