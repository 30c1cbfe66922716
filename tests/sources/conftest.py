from __future__ import annotations

from pathlib import Path

import pytest

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


@pytest.fixture
def manifests() -> Path:
    """The small example manifests written from each dataset's documented format."""
    return MANIFESTS
