"""signals.speech and caption.vlm inside `clipfactory run`: a speech sample that espeak-ng says, silent
audio, no audio, and audio whose packets are garbage, each in its own owned video; the captions come from
a loopback server that speaks the chat completions API (tests/caption/vlm_server.py; no model runs)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from caption.vlm_server import VlmServer

from clipfactory.catalog import Catalog
from clipfactory.config import Settings
from clipfactory.factory import pipeline

from .avmedia import espeak, make_video

SAID = "Hello world. Today we are going to talk about the weather and the mountains."
#: Words of SAID that the assertions look for (tiny.en hears espeak-ng's voice well enough for these).
WORDS = ("today", "talk", "weather", "mountains")
SPEECH_AT_S = 1.5
KEY_ENV = "CF_TEST_VLM_KEY"
KEY = "sk-test-5d1c0ffee"


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _flaky(req, n):
    """Each clip's first request gets a page that is not JSON, its second waits past the timeout."""
    return ("garbage", "slow", "ok")[min(n, 2)]


def _clip_docs(out_dir: str) -> list[dict]:
    docs = []
    for shard in sorted(Path(out_dir).glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    docs.append(json.loads(tf.extractfile(m).read()))
    return docs


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory, speech_extra):
    d = tmp_path_factory.mktemp("speech")
    media = d / "media"
    media.mkdir()
    said = espeak(SAID, d / "said.wav")
    said_s = said.size / 16000
    make_video(media / "talk.mp4", 8.0, audio=said, audio_at_s=SPEECH_AT_S, seed=1)
    make_video(media / "quiet.mp4", 2.5, audio=said[:0], seed=2)
    make_video(media / "mute.mp4", 2.5, seed=3)
    make_video(media / "garbage.mp4", 2.5, garbage_audio=True, seed=4)
    os.environ[KEY_ENV] = KEY
    try:
        with VlmServer(_flaky, slow_s=4.0) as server:
            s = Settings(
                catalog=str(d / "cat.duckdb"),
                store=str(d / "store"),
                inputs=[str(media)],
                license="CC-BY-4.0",
                rights_holder="Test Holder",
                purpose="commercial",
                build={"name": "speech", "out": str(d / "builds"), "shard_size": 100},
                stages={
                    "signals.speech": {"enabled": True, "threads": 2},
                    "caption.vlm": {
                        "endpoint": server.url, "model": "test-vlm", "timeout_s": 3.0, "frames": 2, "concurrency": 16,
                        "api_key_env": KEY_ENV,
                    },
                    "quality.filter": {"min_duration_s": 0.5, "min_sharpness": 0.0},
                },
            )
            summary = pipeline.run_pipeline(s)
    finally:
        del os.environ[KEY_ENV]
    return s, summary, said_s, server


def _by_title(settings, docs):
    cat = Catalog(settings.catalog)
    names = {r["source_id"]: Path(r["origin_uri"]).name for r in cat.query("SELECT source_id, origin_uri FROM sources")}
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(names[doc["source_id"]], []).append(doc)
    return {k: sorted(v, key=lambda x: x["span"]["planned_start_ms"]) for k, v in out.items()}


def test_the_words_said_are_in_the_transcript_and_speech_ratio_follows_them(speech_run):
    s, summary, said_s, _ = speech_run
    docs = _by_title(s, _clip_docs(summary["build"]["out_dir"]))
    talk = docs["talk.mp4"]
    text = " ".join(c["speech"]["transcript"] for c in talk).lower()
    for w in WORDS:
        assert w in text, (w, text)
    # Speech spans [1.5 s, 1.5 s + the sample's last voiced sample); a clip wholly before or after it has
    # none. (espeak's WAV ends with about 0.4 s of silence: the voiced end is read from the samples.)
    import av

    with av.open(str(Path(s.catalog).parent / "said.wav")) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1).astype(np.float32) for f in c.decode(audio=0)])
        rate = c.streams.audio[0].rate
    loud = np.nonzero(np.abs(samples) > 0.01 * np.abs(samples).max())[0]
    begin_ms, end_ms = SPEECH_AT_S * 1000, (SPEECH_AT_S + loud[-1] / rate) * 1000
    outside = [
        c for c in talk
        if c["span"]["planned_end_ms"] <= begin_ms - 100 or c["span"]["planned_start_ms"] >= end_ms + 100
    ]
    assert outside, [(c["span"]["planned_start_ms"], c["span"]["planned_end_ms"], said_s) for c in talk]
    for c in talk:
        assert 0.0 <= c["speech"]["speech_ratio"] <= 1.0
    for c in outside:
        assert c["speech"]["speech_ratio"] == 0.0 and c["speech"]["transcript"] == "", c
    speech_s = sum(c["speech"]["speech_ratio"] * (c["span"]["planned_end_ms"] - c["span"]["planned_start_ms"]) for c in talk) / 1000
    planned_s = sum(c["span"]["planned_end_ms"] - c["span"]["planned_start_ms"] for c in talk) / 1000
    # espeak's pauses between words and sentences are short: most of the sample counts as speech, and
    # never more than the sample (clips are trimmed at cuts, so they hold a little less of it).
    assert 0.6 * min(said_s, 9.0 - SPEECH_AT_S) * planned_s / 9.0 <= speech_s <= said_s + 0.1
    # The transcript is also a caption, whose origin says where it came from.
    caps = [x for c in talk for x in c["captions"] if x["origin"] == "transcript"]
    assert caps and all(x["caption"] for x in caps)


def test_silence_and_no_audio_give_zero_speech_and_empty_transcripts(speech_run):
    s, summary, _, _ = speech_run
    docs = _by_title(s, _clip_docs(summary["build"]["out_dir"]))
    for name in ("quiet.mp4", "mute.mp4"):
        assert docs[name], name
        for c in docs[name]:
            assert c["speech"] == {"speech_ratio": 0.0, "transcript": ""}, (name, c["speech"])
            assert not [x for x in c["captions"] if x["origin"] == "transcript"]


def test_unreadable_audio_is_a_named_failure_and_the_clip_is_still_built(speech_run):
    s, summary, _, _ = speech_run
    docs = _by_title(s, _clip_docs(summary["build"]["out_dir"]))
    assert docs["garbage.mp4"], "the clip with garbage audio is in the build"
    assert all(c["speech"] is None for c in docs["garbage.mp4"])
    st = summary["stages"]["signals.speech"]
    n_garbage = len(docs["garbage.mp4"])
    assert st["failed"] == n_garbage and st["reasons"] == {"speech.audio_unreadable": n_garbage}, st
    assert summary["clips_exported"] == sum(len(v) for v in docs.values())
    assert summary["stages"]["media.cut"]["received"] == st["received"]


def test_transcripts_reach_the_semantic_layer(speech_run):
    s, _, _, _ = speech_run
    from clipfactory.semantic.texts import clip_texts

    with Catalog(s.catalog).read() as con:
        texts = clip_texts(con)
    joined = " ".join(t["text"] for t in texts).lower()
    assert all(w in joined for w in WORDS), joined
    by_clip = {t["clip_id"]: t["text"] for t in texts}
    rows = Catalog(s.catalog).query("SELECT clip_id, transcript FROM clips")
    for r in rows:  # every clip has its VLM caption as text, then the words spoken in it
        text = by_clip[r["clip_id"]]
        assert text.startswith("2 frames for test-vlm: a textured scene with moving shapes"), text
        assert text.endswith(r["transcript"] or "shapes"), text


def test_vlm_captions_after_garbage_and_a_timeout_were_retried(speech_run):
    s, summary, _, server = speech_run
    docs = [d for v in _by_title(s, _clip_docs(summary["build"]["out_dir"])).values() for d in v]
    st = summary["stages"]["caption.vlm"]
    assert st["kept"] == len(docs) and st["failed"] == 0, st
    for d in docs:
        vlm = [c for c in d["captions"] if c["origin"] == "vlm"]
        assert vlm == [{"origin": "vlm", "model": "test-vlm", "caption": "2 frames for test-vlm: a textured scene with moving shapes"}]
        assert d["caption"] == vlm[0]["caption"] and d["caption_origin"] == "vlm"
    # Each clip was asked three times: the garbage page and the timeout were transient failures, retried.
    attempts = sorted({r["attempt"] for r in server.requests})
    assert attempts == [1, 2, 3] and len(server.requests) == 3 * len(docs)
    assert all(r["auth"] == f"Bearer {KEY}" and r["images"] == 2 and r["model"] == "test-vlm" for r in server.requests)
    rows = Catalog(s.catalog).query("SELECT attempt FROM latest_outcomes WHERE stage = 'caption.vlm'")
    assert rows and all(r["attempt"] == 3 for r in rows)


def test_the_api_key_is_stored_nowhere(speech_run):
    s, summary, _, _ = speech_run
    out = Path(summary["build"]["out_dir"])
    for f in out.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    from clipfactory.catalog.db import close_idle_connections

    close_idle_connections()  # the run's last connection lingers: its write-ahead log goes into the file
    cat = Path(s.catalog)
    for f in (cat, cat.with_name(cat.name + ".wal")):
        assert not f.exists() or KEY.encode() not in f.read_bytes(), f
    config = Catalog(s.catalog).query("SELECT config FROM runs")
    assert config and all(KEY not in str(r["config"]) and KEY_ENV in str(r["config"]) for r in config)
