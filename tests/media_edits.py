"""Re-upload edits of real footage for lookup tests and benchmarks: mirroring, black bars (letterbox,
pillarbox, or the picture fitted into a frame of another shape), a black leader, with any re-encode.

:func:`edit_copy` decodes the source with PyAV, edits every frame as RGB and encodes the result with
:func:`media_synth._encode`, one frame at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from media_synth import _encode, _even, _resize, frames_in_span


def edit_copy(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    mirror: bool = False,
    bars: tuple[float, float, float, float] | None = None,
    frame: tuple[int, int] | None = None,
    leader_s: float = 0.0,
    start_s: float | None = None,
    end_s: float | None = None,
    codec: str = "libx264",
    bit_rate: int | None = None,
) -> Path:
    """Write an edited copy of ``src`` (or of its ``start_s``-``end_s`` span) to ``dst``.

    ``mirror`` flips every frame left to right. ``bars`` adds black bars ``(top, bottom, left, right)``,
    each a share of the picture's height (top, bottom) or width (left, right). ``frame=(width, height)``
    fits the picture, scaled and centred, into a black frame of that size. ``leader_s`` seconds of black
    frames open the copy.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        fps = float(vs.average_rate or 25)

        def edited():
            for f in frames_in_span(inp, vs, start_s, end_s):
                yield _edit(f.to_ndarray(format="rgb24"), mirror, bars, frame)

        it = edited()
        first = next(it, None)
        if first is None:
            raise ValueError(f"no frames in the requested span of {src}")

        def chain():
            for _ in range(int(round(leader_s * fps))):
                yield np.zeros_like(first)
            yield first
            yield from it

        _encode(
            dst, chain(), fps=fps, codec=codec, bit_rate=bit_rate, width=first.shape[1], height=first.shape[0]
        )
    return dst


def _edit(rgb: np.ndarray, mirror: bool, bars, frame) -> np.ndarray:
    if mirror:
        rgb = rgb[:, ::-1]
    h, w, _ = rgb.shape
    if frame is not None:
        fw, fh = frame
        s = min(fw / w, fh / h)
        pw, ph = min(fw, _even(w * s)), min(fh, _even(h * s))
        canvas = np.zeros((fh, fw, 3), np.uint8)
        y0, x0 = (fh - ph) // 2, (fw - pw) // 2
        canvas[y0 : y0 + ph, x0 : x0 + pw] = _resize(rgb, pw, ph)
        return canvas
    if bars is not None:
        top, bottom = (_even(h * b) if b else 0 for b in bars[:2])
        left, right = (_even(w * b) if b else 0 for b in bars[2:])
        canvas = np.zeros((h + top + bottom, w + left + right, 3), np.uint8)
        canvas[top : top + h, left : left + w] = rgb
        return canvas
    return np.ascontiguousarray(rgb)
