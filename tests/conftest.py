from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# glibc gives each thread that allocates its own heap arena (up to eight per core) and keeps what is freed
# there; two arenas hold a worker of this suite 120-170 MB lower (docs/development.md). Set here, before
# pytest-xdist starts its workers, it reaches them and the CLI runs they start.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_DATA = ROOT / "tests" / "data"

# optional packages imported at a test's first use (tests/lazy_import.py), as sys.modules["cf_lazy"]
_spec = importlib.util.spec_from_file_location("cf_lazy", ROOT / "tests" / "lazy_import.py")
_lazy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lazy)
sys.modules.setdefault("cf_lazy", _lazy)


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



@pytest.fixture(scope="module", autouse=True)
def _release_models_after_each_file():
    """A worker drops the models a test file loaded (OCR, NSFW, text and visual encoders, TransNetV2)
    when the file is done, so that it does not carry every model of every file it ran (docs/development.md)."""
    yield
    from clipfactory.model_cache import release_models

    release_models()


def pytest_collection_modifyitems(config, items):
    """The Ray tests go first: pytest-xdist hands files to its workers in this order, so the Ray file
    starts while the other worker is still small (see ``_ray_runs_alone``)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("ray") else 1)


@pytest.fixture(scope="module", autouse=True)
def _ray_runs_alone(request, tmp_path_factory):
    """Under pytest-xdist, a file of Ray tests runs while no other worker is inside a test file: Ray's own
    processes (about 1.1 GB) never add to a second busy worker, and the suite's peak stays under 2 GB
    (docs/development.md). Other files share a lock that a Ray file takes alone; a turnstile lock first
    lets a waiting Ray file in before the next other file starts."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import fcntl

    base = tmp_path_factory.getbasetemp().parent  # shared by the workers of one run
    ray_file = request.node.get_closest_marker("ray") is not None
    with open(base / "ray-turnstile.lock", "a+") as gate, open(base / "ray-alone.lock", "a+") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if ray_file:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the other files in progress to finish
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)
