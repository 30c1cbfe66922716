"""Voice activity with Silero VAD: the ONNX model that the ``silero-vad`` package ships, on ONNX Runtime.

The package's own Python code imports torch; only its model file is used here, located without importing
the package. The model is the "sequence" export (``silero_vad_16k_sequence.onnx``): one ONNX Runtime call
per block of up to 512 frames of 32 ms (512 samples at 16 kHz, each with the 64 samples before it as
context) gives the same per-frame speech probabilities as Silero's frame-by-frame streaming model.
:func:`speech_segments` turns the probabilities into speech segments with the same rules as Silero's
``get_speech_timestamps`` (threshold with hysteresis, shortest speech, shortest silence, padding).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipfactory.errors import MissingExtraError, require

from .audio import SAMPLE_RATE

FRAME = 512  # samples per frame at 16 kHz (32 ms)
CONTEXT = 64
MODEL_FILE = "silero_vad_16k_sequence.onnx"
#: silero-vad's own code declares torch, which its ONNX model does not need here: install it without it.
SILERO_INSTALL = "pip install 'clipfactory[speech]' && pip install --no-deps silero-vad"


def model_path() -> Path:
    """The sequence ONNX model inside the installed ``silero-vad`` package (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("silero-vad", "speech", feature="voice activity (signals.speech)", install=SILERO_INSTALL)
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / MODEL_FILE
        if p.is_file():
            return p
    raise MissingExtraError(
        "silero-vad", "speech", feature=f"the Silero VAD model file {MODEL_FILE}", install=SILERO_INSTALL
    )


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    pad_ms: int = 30


class SileroVad:
    """Per-frame speech probabilities of 16 kHz mono audio."""

    def __init__(self, path: str | Path | None = None, *, threads: int = 1):
        ort = require("onnxruntime", "speech", feature="voice activity (signals.speech)")
        self.path = Path(path) if path else model_path()
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = max(1, int(threads))
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])

    def probabilities(self, samples: np.ndarray, *, max_frames: int = 512) -> np.ndarray:
        """One probability per 32 ms frame (the last frame zero-padded)."""
        audio = np.ascontiguousarray(samples, np.float32).reshape(-1)
        n_frames = (audio.size + FRAME - 1) // FRAME
        if n_frames == 0:
            return np.zeros(0, np.float32)
        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        prev = np.zeros(CONTEXT, np.float32)
        out = []
        for first in range(0, n_frames, max_frames):
            k = min(max_frames, n_frames - first)
            frames = np.zeros((k, FRAME), np.float32)
            chunk = audio[first * FRAME : (first + k) * FRAME]
            frames.reshape(-1)[: chunk.size] = chunk
            ctx = np.empty((k, CONTEXT), np.float32)
            ctx[0] = prev
            if k > 1:
                ctx[1:] = frames[:-1, -CONTEXT:]
            prev = frames[-1, -CONTEXT:].copy()
            probs, h, c = self.session.run(
                ["speech_probs", "hn", "cn"], {"input": np.concatenate([ctx, frames], axis=1), "h": h, "c": c}
            )
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out)


def speech_segments(probs: np.ndarray, n_samples: int, params: VadParams = VadParams()) -> list[tuple[int, int]]:
    """Speech segments as ``(start, end)`` sample indices, by Silero's rules (no longest-speech limit).

    A segment opens at a frame whose probability reaches ``threshold`` and closes once the probability has
    stayed below ``threshold - 0.15`` for ``min_silence_ms``; segments shorter than ``min_speech_ms`` are
    left out, and each is padded by ``pad_ms`` (half the gap where two segments are closer than that).
    """
    sr = SAMPLE_RATE
    min_speech = sr * params.min_speech_ms / 1000
    min_silence = sr * params.min_silence_ms / 1000
    pad = sr * params.pad_ms / 1000
    neg = max(params.threshold - 0.15, 0.01)
    speeches: list[list[int]] = []
    triggered = False
    start = 0
    temp_end = 0
    for i, p in enumerate(probs):
        cur = FRAME * i
        if p >= params.threshold and temp_end:
            temp_end = 0
        if p >= params.threshold and not triggered:
            triggered = True
            start = cur
            continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = cur
            if cur - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                speeches.append([start, temp_end])
            triggered = False
            temp_end = 0
    if triggered and n_samples - start > min_speech:
        speeches.append([start, n_samples])
    for i, sp in enumerate(speeches):
        if i == 0:
            sp[0] = int(max(0, sp[0] - pad))
        if i != len(speeches) - 1:
            gap = speeches[i + 1][0] - sp[1]
            if gap < 2 * pad:
                sp[1] += int(gap // 2)
                speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - gap // 2))
            else:
                sp[1] = int(min(n_samples, sp[1] + pad))
                speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - pad))
        else:
            sp[1] = int(min(n_samples, sp[1] + pad))
    return [(int(a), int(b)) for a, b in speeches]


def overlap_ms(segments_ms: list[tuple[int, int]], start_ms: int, end_ms: int) -> int:
    """Milliseconds of ``[start_ms, end_ms)`` that ``segments_ms`` (sorted, disjoint) cover."""
    total = 0
    for a, b in segments_ms:
        if b <= start_ms:
            continue
        if a >= end_ms:
            break
        total += min(b, end_ms) - max(a, start_ms)
    return total
