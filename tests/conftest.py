from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real media and manifests beside the project; skips when absent."""
    if not (SHARED_DATA / "media").is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the shared/ folder beside the project)")
    return SHARED_DATA


@pytest.fixture
def catalog(tmp_path):
    from clipfactory.catalog import Catalog

    return Catalog(tmp_path / "catalog.duckdb")


def pytest_collection_modifyitems(config, items):
    """The Ray tests go first. pytest-xdist hands files to its workers in this order, so the Ray file
    starts on a fresh worker while the other worker is still small: Ray's own processes (about 1.1 GB)
    then never add to two fully grown workers, and the suite's peak stays under 2 GB (docs/development.md)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("ray") else 1)

