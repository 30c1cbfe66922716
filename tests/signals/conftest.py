"""Fixtures of the signals tests (the pictures and videos are made by :mod:`signals_media`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from signals_media import astronaut, coffee, fit, write_video


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """3 s of the astronaut, then 3 s of the coffee cup (a hard cut at 3 s), 256×256, 25 fps."""
    d = tmp_path_factory.mktemp("faces")
    size = (256, 256)
    return write_video(d / "faces.mp4", [(fit(astronaut(), size), 3.0), (fit(coffee(), size), 3.0)])
