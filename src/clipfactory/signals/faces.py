"""Faces: the face detectors of ``signals.visual``, and the face blurring of ``privacy.blur_faces``.

Two detectors, chosen with ``signals.visual.face_detector`` (docs/signals.md):

* ``"blazeface"`` (the default): MediaPipe's BlazeFace full-range model on ONNX Runtime
  (:mod:`clipfactory.signals.blazeface`), a small CNN that finds frontal to turned faces down to the
  ``min_face_px`` floor (about 16 pixels without it) on a thumbnail, in about a third of the cascade's CPU.
* ``"haar"``: OpenCV's Haar cascade, ``haarcascade_frontalface_default.xml`` as OpenCV 4 ships it in
  ``cv2.data`` (OpenCV 5 dropped the cascade classifier, hence ``opencv-python<5`` in the ``signals``
  extra). Cascades find frontal and near-frontal faces of at least ``min_face_px`` pixels on the analysed
  image; profiles, small or heavily occluded faces are missed.

:func:`make_detector` builds either; both give boxes ``(x, y, w, h)`` in the picture's pixels.
:func:`face_stats` turns boxes into the clip's figures: the count and the largest box's share of the frame
area. :class:`FaceBlur` blurs the faces of decoded frames: a detection every ``detect_every`` frames on a
``detect_width`` copy, each box held for ``hold`` detections (so a face missed on one detection stays
covered), widened by ``pad`` on each side, then pixelated and smoothed so that it cannot be recognised.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, MissingExtraError
from . import SIGNALS_EXTRA

CASCADE = "haarcascade_frontalface_default.xml"
DETECTOR_NAME = "opencv-haar-frontalface-default"
#: The values of ``signals.visual.face_detector``.
DETECTORS = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"
_LOCAL = threading.local()


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise MissingExtraError("opencv-python", SIGNALS_EXTRA, feature="face detection") from exc
    if not hasattr(cv2, "CascadeClassifier"):
        raise ConfigError(
            f"face detection needs OpenCV 4 (its Haar cascades); this is OpenCV {cv2.__version__}",
            item="opencv-python",
            fix=f"pip install 'opencv-python<5' (or pip install 'clipfactory[{SIGNALS_EXTRA}]')",
        )
    return cv2


@dataclass(frozen=True)
class FaceOptions:
    scale_factor: float = 1.2  # step between the scales the cascade is run at
    min_neighbors: int = 6  # overlapping detections a face needs (higher: fewer false faces)
    min_face_px: int = 24  # smallest face side on the analysed image, in pixels
    max_width: int = 640  # images wider than this are scaled down before detection


class FaceDetector:
    """One cascade per thread (OpenCV's cascade object is not meant to be shared between threads)."""

    name = DETECTOR_NAME

    def __init__(self, options: FaceOptions | None = None) -> None:
        self.options = options or FaceOptions()
        cv2 = _cv2()
        self._cv2 = cv2
        self._path = cv2.data.haarcascades + CASCADE
        self._cascade()  # fail here, not on the first image, when the file is missing

    def _cascade(self):
        cv2 = self._cv2
        cache = getattr(_LOCAL, "cascades", None)
        if cache is None:
            cache = _LOCAL.cascades = {}
        if self._path not in cache:
            c = cv2.CascadeClassifier(self._path)
            if c.empty():
                raise ConfigError(
                    f"OpenCV could not load its face cascade {CASCADE}",
                    item=self._path,
                    fix="reinstall opencv-python<5",
                )
            cache[self._path] = c
        return cache[self._path]

    def detect_gray(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes ``(x, y, w, h)`` in the pixels of ``gray`` (a 2-D uint8 array)."""
        cv2, o = self._cv2, self.options
        h, w = gray.shape[:2]
        scale = 1.0
        if w > o.max_width:
            scale = o.max_width / w
            gray = cv2.resize(gray, (o.max_width, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
        found = self._cascade().detectMultiScale(
            gray, scaleFactor=o.scale_factor, minNeighbors=o.min_neighbors, minSize=(o.min_face_px, o.min_face_px)
        )
        boxes = []
        for x, y, bw, bh in (found if len(found) else []):
            boxes.append(
                (int(round(x / scale)), int(round(y / scale)), int(round(bw / scale)), int(round(bh / scale)))
            )
        return boxes

    def detect_rgb(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        return self.detect_gray(self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2GRAY))

    def detect_image(self, image) -> list[tuple[int, int, int, int]]:
        """Faces of a PIL image."""
        return self.detect_gray(np.asarray(image.convert("L")))


def make_detector(
    kind: str = DEFAULT_DETECTOR,
    *,
    min_face_px: int = 24,
    min_score: float = 0.5,
    min_neighbors: int = 6,
    scale_factor: float = 1.2,
    width: int | None = None,
):
    """A face detector of ``kind`` (:data:`DETECTORS`). ``width``: pictures are analysed at this width (the
    cascade scales wider ones down to it; BlazeFace scales every picture to it); ``None``: 640 for the
    cascade, 320 (the thumbnails' width) for BlazeFace. ``min_face_px`` counts pixels of the analysed picture."""
    if kind == "haar":
        return FaceDetector(FaceOptions(scale_factor=scale_factor, min_neighbors=min_neighbors,
                                        min_face_px=min_face_px, max_width=width or 640))
    if kind == "blazeface":
        from .blazeface import BlazeFaceDetector, BlazeFaceOptions

        return BlazeFaceDetector(BlazeFaceOptions(min_score=min_score, min_face_px=min_face_px,
                                                  input_width=width or 320))
    raise ConfigError(f"unknown face detector {kind!r}", item="signals.visual.face_detector",
                      fix=f"use one of {', '.join(DETECTORS)}")


def face_stats(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> tuple[int, float]:
    """``(count, largest face's share of the frame area)``; the share of no face is 0."""
    area = float(width * height) or 1.0
    largest = max((bw * bh for _, _, bw, bh in boxes), default=0)
    return len(boxes), min(1.0, largest / area)


class FaceBlur:
    """Blurs the faces of successive frames of one clip (RGB ``ndarray`` in, RGB ``ndarray`` out)."""

    def __init__(
        self,
        detector=None,
        *,
        face_detector: str = DEFAULT_DETECTOR,
        min_score: float = 0.5,
        detect_width: int = 480,
        detect_every: int = 2,
        hold: int = 3,
        pad: float = 0.25,
    ) -> None:
        self.detector = detector or make_detector(face_detector, min_score=min_score, width=detect_width)
        self.detect_every = max(1, detect_every)
        self.pad = pad
        self._recent: deque[list[tuple[int, int, int, int]]] = deque(maxlen=max(1, hold))
        self._n = 0
        self.frames_blurred = 0
        self.max_faces = 0

    def boxes(self) -> list[tuple[int, int, int, int]]:
        return [b for found in self._recent for b in found]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if self._n % self.detect_every == 0:
            found = self.detector.detect_rgb(rgb)
            self._recent.append(found)
            self.max_faces = max(self.max_faces, len(found))
        self._n += 1
        boxes = self.boxes()
        if not boxes:
            return rgb
        self.frames_blurred += 1
        out = np.ascontiguousarray(rgb).copy()
        for box in boxes:
            blur_region(out, box, pad=self.pad)
        return out


def blur_region(img: np.ndarray, box: tuple[int, int, int, int], *, pad: float = 0.25) -> None:
    """Pixelate then smooth ``box`` (widened by ``pad`` of its size on each side) of ``img`` in place."""
    import cv2

    h, w = img.shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0, int(x - pad * bw)), max(0, int(y - pad * bh))
    x1, y1 = min(w, int(x + bw + pad * bw)), min(h, int(y + bh + pad * bh))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = img[y0:y1, x0:x1]
    cells = 6  # blocks across the face: too coarse for a face to be recognised
    small = cv2.resize(roi, (cells, max(1, round(cells * (y1 - y0) / (x1 - x0)))), interpolation=cv2.INTER_AREA)
    mosaic = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    k = max(3, ((x1 - x0) // cells) | 1)
    img[y0:y1, x0:x1] = cv2.GaussianBlur(mosaic, (k, k), 0)
