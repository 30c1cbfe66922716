"""Re-create the bundled example media in ``examples/media/`` (needs ``../shared/data`` for the BBB excerpts).

    python examples/make_examples.py

* ``bbb_trailer_excerpt.mp4``: 16 s of the Big Buck Bunny trailer (hard cuts, a dissolve), 640x360;
* ``bbb_meadow.mp4``: the 5 s Big Buck Bunny excerpt, 640x360;
* ``synthetic_bars.mp4``: generated here: three 3-second shots (scrolling colour bars, moving rings, a
  pan over a random texture) joined by hard cuts, with a tone on the audio track. Its keyframes are
  every 5 s regardless of the cuts, so the clips of its second and third shots must be re-encoded
  rather than stream-copied.
"""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"
SHARED = HERE.parent.parent / "shared" / "data" / "media"

BBB = {
    "license": "CC-BY-3.0",
    "rights_holder": "Blender Foundation",
    "title": "Big Buck Bunny",
    "url": "https://peach.blender.org/",
}


def transcode(src: Path, dst: Path, start_s: float, end_s: float, width: int = 640, crf: int = 27) -> None:
    """Re-encode a span of ``src`` at ``width`` with x264's scene-cut keyframes, audio to AAC."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate
        height = int(round(vin.height * width / vin.width / 2)) * 2
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": str(crf), "preset": "medium"}
        aout = resampler = None
        if ain is not None:
            aout = out.add_stream("aac", rate=44100)
            aout.layout = "stereo"
            aout.bit_rate = 64000
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
        inp.seek(int(start_s / vin.time_base), stream=vin, backward=True)
        n = 0
        samples = 0
        streams = [vin] + ([ain] if ain else [])
        for packet in inp.demux(streams):
            for frame in packet.decode():
                t = float(frame.pts * frame.time_base)
                if t < start_s - 1e-3 or t >= end_s:
                    continue
                if packet.stream.type == "video":
                    img = frame.reformat(width=width, height=height, format="yuv420p")
                    img.pts, img.time_base = n, Fraction(1) / rate
                    n += 1
                    for p in vout.encode(img):
                        out.mux(p)
                else:
                    for f in resampler.resample(frame):
                        f.pts, f.time_base = samples, Fraction(1, 44100)
                        samples += f.samples
                        for p in aout.encode(f):
                            out.mux(p)
        for p in vout.encode(None):
            out.mux(p)
        if aout is not None:
            for p in aout.encode(None):
                out.mux(p)


def synthetic(
    dst: Path, fps: int = 25, seconds_per_shot: int = 3, width: int = 640, height: int = 360
) -> None:
    """Three generated shots with hard cuts between them, and a 440/660/880 Hz tone per shot."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (height // 8 + 1, (width + 2 * fps * seconds_per_shot) // 8 + 1, 3))
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height].astype(np.uint8)
    bars = np.array(
        [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
        np.uint8,
    )
    with av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {
            "crf": "30",
            "preset": "medium",
            "x264-params": f"keyint={5 * fps}:min-keyint={5 * fps}:scenecut=0",
        }
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        a.bit_rate = 48000
        n_frames = fps * seconds_per_shot * 3
        for i in range(n_frames):
            shot, t = divmod(i, fps * seconds_per_shot)
            if shot == 0:  # colour bars scrolling to the left
                idx = ((xx + 6 * t) // (width / 7)).astype(int) % 7
                img = bars[idx]
            elif shot == 1:  # concentric rings moving outwards
                r = np.hypot(xx - width / 2, yy - height / 2)
                g = (127 + 120 * np.sin(r / 3.0 - t / 2.0)).astype(np.uint8)
                img = np.stack([g, 255 - g, np.full_like(g, 90)], axis=2)
            else:  # a camera pan over a fixed random texture
                img = texture[:, 2 * t : 2 * t + width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        total = int(44100 * n_frames / fps)
        done = 0
        while done < total:
            k = min(1024, total - done)
            ts = (done + np.arange(k)) / 44100
            shot = np.minimum((ts // seconds_per_shot).astype(int), 2)
            wave = (0.2 * np.sin(2 * math.pi * np.array([440, 660, 880])[shot] * ts)).astype(np.float32)
            f = av.AudioFrame.from_ndarray(wave[None, :], format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 44100, done, Fraction(1, 44100)
            for p in a.encode(f):
                out.mux(p)
            done += k
        for p in a.encode(None):
            out.mux(p)


def main() -> int:
    MEDIA.mkdir(parents=True, exist_ok=True)
    if not SHARED.is_dir():
        print(f"{SHARED} is missing: only the synthetic clip is made", file=sys.stderr)
    else:
        transcode(SHARED / "trailer_bbb.mp4", MEDIA / "bbb_trailer_excerpt.mp4", 32.0, 48.1)
        (MEDIA / "bbb_trailer_excerpt.mp4.json").write_text(json.dumps(BBB, indent=2) + "\n")
        transcode(SHARED / "bbb_5s.mp4", MEDIA / "bbb_meadow.mp4", 0.0, 10.0)
        (MEDIA / "bbb_meadow.mp4.json").write_text(json.dumps(BBB, indent=2) + "\n")
    synthetic(MEDIA / "synthetic_bars.mp4")
    side = {
        "license": "CC0-1.0",
        "rights_holder": "clipfactory contributors",
        "title": "Synthetic colour bars",
    }
    (MEDIA / "synthetic_bars.mp4.json").write_text(json.dumps(side, indent=2) + "\n")
    for p in sorted(MEDIA.glob("*.mp4")):
        print(f"{p.name}: {p.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
