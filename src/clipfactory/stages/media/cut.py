"""``media.cut``: cut each planned clip into its own MP4 blob."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path

import av
from pydantic import Field

from ...catalog import Catalog, load_records
from ...errors import MediaError, NotFoundError
from ...ids import sha256_file
from ...media.cut import CutError, CutOptions, cut_clip, keyframes_ms
from ...media.probe import MediaProbeError
from ...records import ClipRecord, Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...signals.faces import BlurDetectorOpt, BlurMinScoreOpt
from ...stage import Stage, StageConfig
from .probe import media_failure


def _face_blur(detector: str, min_score: float, seed=None, shared=None):
    from ...signals.faces import FaceBlur

    return FaceBlur(shared, face_detector=detector, min_score=min_score, seed=seed)


def _thumbnail_detector(detector: str, min_score: float):
    from ...signals.faces import blur_detector

    return blur_detector(detector, min_score=min_score)  # at the thumbnails' own width, as signals.visual


#: Without a face on its thumbnail, a clip is still checked for faces on one frame this often (ms).
SCAN_EVERY_MS = 200


def faces_in_span(path, start_ms: int, end_ms: int, detector, every_ms: int = SCAN_EVERY_MS) -> bool:
    """Whether ``detector`` finds a face on the frames of ``[start_ms, end_ms)`` of ``path``, checked one
    frame every ``every_ms`` (the first decoded frame, then the first at or after each step). A span that
    cannot be read answers ``True``: the clip is then cut with blurring, never without."""
    from ...media.probe import open_container

    try:
        container = open_container(path)
    except MediaProbeError:
        return True
    try:
        if not container.streams.video:
            return True
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        container.seek(int((t0 + start_ms / 1000) / tb), stream=stream, backward=True, any_frame=False)
        due = start_ms
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = (float(frame.pts * tb) - t0) * 1000
            if t < start_ms - 1:
                continue
            if t >= end_ms:
                break
            if t >= due - 1:
                if detector.detect_rgb(frame.to_ndarray(format="rgb24")):
                    return True
                due = t + every_ms
        return False
    except (av.error.FFmpegError, ValueError):
        return True
    finally:
        container.close()


@register
class CutStage(Stage):
    """Cut planned clips out of their source.

    Reads: a :class:`ClipRecord` planned by ``media.analyse`` (source id and span), and the source's
    ``blob_uri`` from the catalog (read-only).

    Writes: the same record with ``blob_uri`` (the clip's MP4 in the blob store), ``cut_method``
    (``copy`` for a stream copy from a keyframe, ``reencode`` otherwise), ``size_bytes`` and
    ``content_sha256``. The detail of the outcome row holds the span the file really covers, the encoder
    and what happened to the audio. See :mod:`clipfactory.media.cut` for the two methods.

    Drops: none. Fails (``terminal``): the ``media.*`` reasons of :mod:`clipfactory.media.probe` when the
    source cannot be read; ``media.span_past_end`` when no frame of the span is in the file,
    ``media.decode_error`` when none of them decodes, ``media.cut_error`` when FFmpeg fails while writing;
    ``media.not_acquired`` when the source is not in the store.

    The detail's ``start_ms``/``end_ms`` are the span the written file holds (a copy starts on the
    keyframe and may end a few frames early); the record keeps the planned span.

    With ``blur_faces`` (``privacy.blur_faces = true``), the clip's thumbnail is checked again with the
    blurring detector (the configured one and BlazeFace's short-range model) and the boxes it finds are the
    detail's ``thumbnail_faces`` (``build.export`` blurs them on the thumbnail it ships; ``null``: a face
    was reported that no box was found for, and the whole thumbnail is blurred). A clip whose
    ``face_count`` is not 0 (a face on its thumbnail, or not checked), whose thumbnail shows a face to
    that check, or on one of whose frames the blurring detector finds a face (one frame every
    :data:`SCAN_EVERY_MS` checked, :func:`faces_in_span`) is re-encoded with the faces of its frames blurred
    (:class:`clipfactory.signals.faces.FaceBlur`, seeded with the thumbnail's faces); the detail's
    ``faces_blurred`` counts the frames.

    Resources: one CPU; a stream copy is I/O bound, a re-encode runs libx264 at ``threads``.
    """

    name = "media.cut"
    version = 2  # 2: the detail holds the span measured from what was written
    resources = Resources(cpus=1, memory_gb=1.0)
    batch_size = 4  # a crash loses at most one batch of cutting
    input_type = ClipRecord
    output_type = ClipRecord

    class Config(StageConfig, CutOptions):
        blur_faces: bool = Field(
            False,
            description="Blur faces (set by the run from privacy.blur_faces): a clip whose thumbnail shows a "
            "face, or was not checked for faces, is re-encoded with the faces of its frames blurred; the faces "
            "of its thumbnail are recorded for build.export to blur.",
        )
        face_detector: BlurDetectorOpt = "blazeface"
        face_min_score: BlurMinScoreOpt = 0.5

    def setup(self) -> None:
        if self.config.blur_faces:
            # A missing OpenCV stops the stage here, before any clip is cut without blurring.
            self._thumb_faces = _thumbnail_detector(self.config.face_detector, self.config.face_min_score)
            self._frame_faces = self._blur().detector
        self._keyframes: dict[str, list[int]] = {}
        self._sources: dict[str, SourceRecord] = {}

    def _blur(self):
        return _face_blur(self.config.face_detector, self.config.face_min_score)

    def _thumbnail_faces(self, store, item: ClipRecord):
        """``(boxes for the detail, seed for FaceBlur)``: the faces of the clip's thumbnail in its pixels and
        as fractions of it. A face reported (``face_count`` above 0) where none is found again: ``None``
        (the whole thumbnail is blurred) and the whole frame as the seed, until a detection finds the face."""
        from ...signals.faces import thumbnail_faces

        if not item.thumb_uri or not store.exists(item.thumb_uri):
            return [], []
        rgb, boxes = thumbnail_faces(store.path_of(item.thumb_uri).read_bytes(), self._thumb_faces)
        h, w = rgb.shape[:2]
        if not boxes and (item.face_count or 0) > 0:
            return None, [(0.0, 0.0, 1.0, 1.0)]
        return [list(b) for b in boxes], [(x / w, y / h, bw / w, bh / h) for x, y, bw, bh in boxes]

    @property
    def config_hash(self) -> str:
        """Without ``blur_faces`` the face options change nothing: they are left out of the hash, so clips
        cut before the options existed are not cut again."""
        payload = self.config.model_dump(mode="json")
        if not payload["blur_faces"]:
            for key in ("face_detector", "face_min_score"):
                payload.pop(key)
        else:
            from ...signals.faces import BLUR_VERSION

            payload["blur_version"] = BLUR_VERSION
        return hashlib.sha256(f"{self.name}|{json.dumps(payload, sort_keys=True)}".encode()).hexdigest()[:16]

    def process_batch(self, items):
        if not hasattr(self, "_sources"):
            self.setup()
        want = sorted({c.source_id for c in items} - set(self._sources))
        if want and self.context.catalog_path:
            with Catalog(self.context.catalog_path).read() as con:
                for rec in load_records(con, SourceRecord, want):
                    self._sources[rec.source_id] = rec
        return super().process_batch(items)

    def process(self, item: ClipRecord) -> Result:
        source = self._sources.get(item.source_id)
        if source is None or not source.blob_uri:
            raise NotFoundError(
                "media.not_acquired: the clip's source has no media in the blob store",
                item=item.source_id,
                fix="run the pipeline from acquisition again",
            )
        store = self.context.store()
        src = store.path_of(source.blob_uri)
        opts = CutOptions(**self.config.model_dump(exclude={"blur_faces", "face_detector", "face_min_score"}))
        blur, thumb = None, {}
        if self.config.blur_faces:
            thumb_faces, seed = self._thumbnail_faces(store, item)
            thumb = {"thumbnail_faces": thumb_faces}
            if item.face_count != 0 or seed or faces_in_span(src, item.start_ms, item.end_ms, self._frame_faces):
                blur = _face_blur(self.config.face_detector, self.config.face_min_score, seed, self._frame_faces)
        try:
            if opts.mode == "auto" and source.source_id not in self._keyframes:
                self._keyframes[source.source_id] = keyframes_ms(src)
            kf = self._keyframes.get(source.source_id)
            # A name ending in .part: BlobStore.clean_incoming() removes it if we die before adopting it.
            tmp = Path(store.incoming()) / f".cut-{item.clip_id}-{uuid.uuid4().hex[:8]}.part"
            try:
                res = cut_clip(
                    src, tmp, item.start_ms, item.end_ms, options=opts, keyframes_ms=kf, frame_filter=blur
                )
                sha = sha256_file(str(tmp))
                uri = store.adopt(tmp, sha)
            finally:
                if tmp.exists():
                    os.unlink(tmp)
        except (MediaProbeError, CutError) as exc:
            return media_failure(item.clip_id, exc)
        except av.error.FFmpegError as exc:
            err = MediaError(f"media.cut_error: FFmpeg failed while cutting ({exc})", item=item.clip_id)
            return dataclasses.replace(
                Result.failed(item.clip_id, "terminal", str(err)), reason="media.cut_error"
            )
        detail = res.to_dict()
        detail.pop("path")
        detail.update(thumb)
        if blur is not None:
            detail["faces_blurred"] = {
                "frames": blur.frames_blurred, "max_faces": blur.max_faces, "held_frames": blur.held_frames,
                "detector": blur.detector.name,
            }
        rec = item.replace(blob_uri=uri, cut_method=res.method, size_bytes=res.size_bytes, content_sha256=sha)
        return Result.kept(item.clip_id, rec, detail=detail)
