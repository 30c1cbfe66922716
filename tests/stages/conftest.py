from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("cf_synth", Path(__file__).with_name("synth.py"))
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_synth", synth)
_spec.loader.exec_module(synth)


@pytest.fixture(scope="session")
def three_shots(tmp_path_factory) -> Path:
    """9 s: bars, rings, checker (3 s each, hard cuts at 3 s and 6 s), keyframes every 1 s, AAC audio."""
    d = tmp_path_factory.mktemp("synth")
    return synth.make_video(
        d / "three.mp4", [("bars", 3), ("rings", 3), ("checker", 3)], keyint=25, scenecut=False
    )
