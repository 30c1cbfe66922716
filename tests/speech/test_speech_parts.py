"""The parts of signals.speech: the audio loader, the VAD's segment rules and its parity with Silero's own
code, and the shared trailer (music, no narration) whose clips all get empty transcripts."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clipfactory.catalog import Catalog
from clipfactory.catalog.db import upsert_records
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.speech.audio import SAMPLE_RATE, load_audio
from clipfactory.speech.vad import FRAME, VadParams, overlap_ms, speech_segments
from clipfactory.stage import StageContext
from clipfactory.storage import BlobStore

from .avmedia import espeak

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _tone_file(path: Path, *, rate: int, seconds: float, hz: float, channels: int) -> Path:
    with av.open(str(path), "w") as out:
        st = out.add_stream("pcm_s16le", rate=rate)
        st.layout = "stereo" if channels == 2 else "mono"
        t = np.arange(int(rate * seconds)) / rate
        x = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)
        data = np.repeat(x[None, :], channels, axis=0).T.reshape(1, -1) if channels == 2 else x[None, :]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s16", layout=st.layout.name)
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        out.mux(st.encode(frame))
        out.mux(st.encode())
    return path


def test_audio_is_resampled_to_16k_mono_and_windows_line_up(tmp_path):
    f = _tone_file(tmp_path / "tone.wav", rate=44_100, seconds=2.0, hz=440.0, channels=2)
    track = load_audio(f)
    assert track.has_audio and track.decode_errors == 0
    assert abs(track.samples.size - 2 * SAMPLE_RATE) <= 32  # 2 s at 16 kHz, give or take the filter's edge
    spec = np.abs(np.fft.rfft(track.samples[1000:17000]))
    assert abs(np.argmax(spec) * SAMPLE_RATE / 16000 - 440.0) <= 1.0  # the tone is still 440 Hz
    part = load_audio(f, start_ms=500, end_ms=1500)
    assert part.start_ms == 500 and abs(part.samples.size - SAMPLE_RATE) <= 16
    # The same stretch as the window of the whole track (up to the resampler's edge effects).
    whole = track.window(500, 1500)
    assert np.max(np.abs(part.samples[200:-200] - whole[200 : part.samples.size - 200])) < 0.02


def test_audio_that_starts_after_the_video_keeps_the_video_s_time_line(tmp_path):
    from .avmedia import make_video

    click = np.zeros(SAMPLE_RATE, np.float32)
    click[:160] = 0.9  # 10 ms burst at 1.0 s into the audio track (after 1.0 s of silence)
    sound = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), click])
    f = make_video(tmp_path / "late.mp4", 3.0, audio=sound, audio_pts_s=0.5, seed=5)
    with av.open(str(f)) as c:
        assert float(c.streams.audio[0].start_time * c.streams.audio[0].time_base) >= 0.4  # really later
    track = load_audio(f)
    at_s = int(np.argmax(np.abs(track.samples))) / SAMPLE_RATE
    assert abs(at_s - 1.5) < 0.05, at_s  # 0.5 s of stream offset + 1.0 s into the track
    part = load_audio(f, start_ms=1000, end_ms=2000)
    assert abs(int(np.argmax(np.abs(part.samples))) / SAMPLE_RATE - 0.5) < 0.05


def test_segment_rules_on_known_probabilities():
    fr_ms = FRAME * 1000 / SAMPLE_RATE  # 32 ms
    probs = np.zeros(100, np.float32)
    probs[10:30] = 0.9  # 640 ms of speech from frame 10,
    probs[31:33] = 0.9  # a 32 ms gap (shorter than min_silence_ms: not a break), then 64 ms more
    probs[50:53] = 0.9  # 96 ms: shorter than min_speech_ms, left out
    probs[70:90] = 0.8
    n = 100 * FRAME
    segs = speech_segments(probs, n, VadParams(min_speech_ms=250, min_silence_ms=100, pad_ms=30))
    pad = int(SAMPLE_RATE * 30 / 1000)
    assert segs == [(10 * FRAME - pad, 33 * FRAME + pad), (70 * FRAME - pad, 90 * FRAME + pad)], (segs, fr_ms)
    ms = [(a * 1000 // SAMPLE_RATE, b * 1000 // SAMPLE_RATE) for a, b in segs]
    assert overlap_ms(ms, 0, 3200) == (ms[0][1] - ms[0][0]) + (ms[1][1] - ms[1][0])
    assert overlap_ms(ms, ms[0][1], ms[1][0]) == 0


def test_vad_matches_silero_s_own_code(tmp_path, speech_extra):
    pytest.importorskip("torch", reason="Silero's reference code needs torch")
    from clipfactory.speech.vad import SileroVad

    samples = espeak("Seven purple elephants. Dancing in the garden.", tmp_path / "s.wav")
    samples = np.concatenate([np.zeros(8000, np.float32), samples, np.zeros(12000, np.float32)])
    np.save(tmp_path / "s.npy", samples)
    ours = speech_segments(SileroVad().probabilities(samples), samples.size)
    # Silero's own code imports torch: it runs in a process of its own, so that torch's memory goes with it.
    code = (
        "import json, sys, numpy as np, torch, silero_vad\n"
        "x = torch.from_numpy(np.load(sys.argv[1]))\n"
        "print(json.dumps(silero_vad.get_speech_timestamps(x, silero_vad.load_silero_vad(onnx=True))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(tmp_path / "s.npy")], capture_output=True, text=True, check=True
    )
    ref = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours == [(r["start"], r["end"]) for r in ref] and ours


@pytest.mark.shared_data
def test_the_trailer_s_narration_free_clips_have_empty_transcripts(tmp_path, shared_data, speech_extra):
    from clipfactory.stages.signals.speech import SpeechStage

    trailer = shared_data / "media" / "trailer_bbb.mp4"
    store = BlobStore(tmp_path / "store")
    uri, size = store.put_file(trailer)
    src = SourceRecord("trailer", "owned", blob_uri=uri, size_bytes=size)
    cat = Catalog(tmp_path / "cat.duckdb")
    with cat.write() as con:
        upsert_records(con, [src])
    # Every moment of the trailer is in one of these clips: whatever plan cuts it, no clip can hold words.
    clips = [ClipRecord(f"c{k}", "trailer", k * 5000, min(55_100, (k + 1) * 5000)) for k in range(12)]
    stage = SpeechStage({"threads": 2}, StageContext(store_root=str(tmp_path / "store"), catalog_path=str(cat.path)))
    stage.setup()
    results = stage.process_batch(clips)
    assert [r.status for r in results] == ["kept"] * 12
    out = [r.records[0] for r in results]
    assert all(c.transcript == "" for c in out), [c.transcript for c in out]
    assert all(0.0 <= c.speech_ratio <= 0.2 for c in out)
    sp = stage._cache["trailer"]
    assert sp.words == [] and sp.track.has_audio  # the music holds nothing Whisper reads as words
