from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_path = Path(__file__).parents[1] / "stages" / "synth.py"
_spec = importlib.util.spec_from_file_location("cf_synth", _path)
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_synth", synth)
_spec.loader.exec_module(synth)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Two small owned videos with sidecars: one CC-BY-4.0, one CC-BY-NC-4.0."""
    d = tmp_path_factory.mktemp("owned")
    synth.make_video(d / "a.mp4", [("bars", 3), ("rings", 3), ("flat", 3)], keyint=25, scenecut=False)
    synth.make_video(d / "b.mp4", [("checker", 4), ("dark", 3)], keyint=50, scenecut=False)
    (d / "b.mp4.json").write_text(
        '{"license": "CC-BY-NC-4.0", "rights_holder": "Someone Else", "title": "B"}'
    )
    return d
