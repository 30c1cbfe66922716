"""Small test videos with known sound: speech that espeak-ng says, silence, no audio, or audio packets
that are garbage. The picture is the textured moving footage of ``media_synth`` (it passes the quality
filter)."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from media_synth import synth_frames

RATE = 16_000


def espeak(text: str, path: Path, *, speed: int = 140) -> np.ndarray:
    """16 kHz mono float32 samples of ``text`` said by espeak-ng (its WAV decoded and resampled by PyAV)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        import pytest

        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", "en-us", "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    out = []
    with av.open(str(path)) as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        for frame in c.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    return np.concatenate(out).astype(np.float32)


def make_video(
    path: Path,
    seconds: float,
    *,
    audio: np.ndarray | None = None,
    audio_at_s: float = 0.0,
    garbage_audio: bool = False,
    audio_pts_s: float = 0.0,
    seed: int = 0,
    fps: int = 25,
) -> Path:
    """An H.264 MP4 of ``seconds`` with, when ``audio`` is given, an AAC track holding it from ``audio_at_s``
    (silence around it); ``garbage_audio`` writes an AAC track whose packets are random bytes. The audio
    stream's timestamps start at ``audio_pts_s`` (a stream that starts later than the video)."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        ast = None
        if audio is not None or garbage_audio:
            ast = out.add_stream("aac", rate=RATE)
            ast.layout = "mono"
        for k, rgb in enumerate(synth_frames(seconds, fps=fps, size=(320, 240), seed=seed)):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = k
            vf.time_base = Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode())
        if ast is not None and not garbage_audio:
            track = np.zeros(int(seconds * RATE), np.float32)
            a = int(audio_at_s * RATE)
            seg = audio[: max(0, track.size - a)]
            track[a : a + seg.size] = seg
            step = 1024
            for i in range(0, track.size, step):
                af = av.AudioFrame.from_ndarray(track[None, i : i + step].copy(), format="flt", layout="mono")
                af.sample_rate = RATE
                af.pts = i + int(audio_pts_s * RATE)
                af.time_base = Fraction(1, RATE)
                out.mux(ast.encode(af))
            out.mux(ast.encode())
        elif ast is not None:
            for i in range(int(seconds * RATE) // 1024):
                pkt = av.Packet(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
                pkt.stream = ast
                pkt.pts = pkt.dts = i * 1024
                pkt.time_base = Fraction(1, RATE)
                out.mux(pkt)
    return path
