"""A few JPEG frames of a clip's span, evenly spaced, decoded from its source with PyAV."""

from __future__ import annotations

import io
import os

import av

from clipfactory.media.probe import MediaProbeError, open_container


def clip_frames(
    path: str | os.PathLike, start_ms: int, end_ms: int, *, n: int = 3, size: int = 512, quality: int = 85
) -> list[bytes]:
    """``n`` JPEGs of the frames nearest the middles of ``n`` equal parts of ``[start_ms, end_ms)``, each at
    most ``size`` pixels on its longer side. Raises :class:`MediaProbeError` when nothing decodes."""
    if n <= 0:
        return []
    from PIL import Image

    span = max(1, end_ms - start_ms)
    targets = [start_ms + span * (2 * k + 1) / (2 * n) for k in range(n)]
    out: list[bytes] = []
    container = open_container(path)
    try:
        if not container.streams.video:
            raise MediaProbeError("media.no_video_stream", "no video stream", item=str(path))
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        for t_ms in targets:
            want = t0 + t_ms / 1000
            try:
                container.seek(int(want / tb), stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                continue
            picked = None
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except (av.error.FFmpegError, ValueError):
                        continue
                    for frame in frames:
                        picked = frame
                        if frame.pts is not None and float(frame.pts * tb) >= want - 0.001:
                            break
                    else:
                        continue
                    break
            except av.error.FFmpegError:
                pass
            if picked is None:
                continue
            img = picked.to_image()
            img.thumbnail((size, size), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=quality)
            out.append(buf.getvalue())
    finally:
        container.close()
    if not out:
        raise MediaProbeError("media.decode_error", "no frame of the clip decodes", item=str(path))
    return out
