"""``media.probe``: read what a source's media file holds and prove that it decodes."""

from __future__ import annotations

import dataclasses

from pydantic import Field

from ...errors import NotFoundError
from ...media.probe import MediaProbeError, probe
from ...records import Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig


def media_failure(item_id: str, exc) -> Result:
    """A terminal failure row whose error starts with the stable ``media.*`` reason code of ``exc`` (a
    :class:`MediaProbeError` or :class:`~clipfactory.media.cut.CutError`)."""
    res = Result.failed(item_id, "terminal", f"{exc.reason}: {exc.detail}", detail={"fix": exc.fix})
    return dataclasses.replace(res, reason=exc.reason)


def source_path(stage: Stage, source: SourceRecord):
    """The blob store path of ``source``'s media, or raise :class:`NotFoundError`."""
    if not source.blob_uri:
        raise NotFoundError(
            "media.not_acquired: the source has no media in the blob store",
            item=source.source_id,
            fix="acquire it first (`clipfactory add` for owned media)",
        )
    return stage.context.store().path_of(source.blob_uri)


@register
class ProbeStage(Stage):
    """Probe each source's media file.

    Reads: a :class:`SourceRecord` with ``blob_uri`` (media in the blob store).

    Writes: the same record with ``container``, ``video_codec``, ``audio_codec``, ``width``, ``height``,
    ``fps``, ``variable_fps``, ``rotation``, ``n_audio_streams``, ``duration_ms`` and ``size_bytes``.

    Drops: ``media.too_long`` when ``max_duration_s`` is set and exceeded. Fails (``terminal``) with the
    reason of :mod:`clipfactory.media.probe`: ``media.empty_file``, ``media.not_media``,
    ``media.no_video_stream``, ``media.truncated``, ``media.unsupported_codec``,
    ``media.unsupported_pixel_format``, ``media.decode_error``; and ``media.not_acquired`` without a blob.

    Resources: one CPU; reads headers and decodes one frame.
    """

    name = "media.probe"
    version = 1
    resources = Resources(cpus=1, memory_gb=0.5)
    batch_size = 16
    input_type = SourceRecord
    output_type = SourceRecord

    class Config(StageConfig):
        max_duration_s: float | None = Field(
            None, description="Drop sources longer than this many seconds (media.too_long); none by default."
        )

    def process(self, item: SourceRecord) -> Result:
        path = source_path(self, item)
        try:
            info = probe(path)
        except MediaProbeError as exc:
            return media_failure(item.source_id, exc)
        if (
            self.config.max_duration_s is not None
            and info.duration_ms is not None
            and info.duration_ms > self.config.max_duration_s * 1000
        ):
            return Result.dropped(item.source_id, "media.too_long", {"duration_ms": info.duration_ms})
        rec = item.replace(
            container=info.container,
            video_codec=info.video_codec,
            audio_codec=info.audio_codecs[0] if info.audio_codecs else None,
            width=info.display_size[0],
            height=info.display_size[1],
            fps=round(info.fps, 6),
            variable_fps=info.is_vfr,
            rotation=info.rotation,
            n_audio_streams=info.n_audio_streams,
            duration_ms=info.duration_ms,
            size_bytes=info.size_bytes,
        )
        return Result.kept(item.source_id, rec, detail={"pix_fmt": info.pix_fmt, "n_frames": info.n_frames})
