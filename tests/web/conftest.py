"""A small world for the web UI tests: a catalog with two analysed synthetic sources (cut into clips, in a
build), their blob store, a source file of each and footage the catalog does not hold; and a server."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fingerprints.conftest import add_source, write_test_build
from media_synth import synth_video, transform

from clipfactory.catalog import Catalog
from clipfactory.config import load_settings
from clipfactory.fingerprints.index import index_catalog
from clipfactory.storage import BlobStore

TOKEN = "operator-token-for-tests"


@dataclass
class World:
    root: Path
    catalog: Catalog
    store: BlobStore
    settings: object
    sources: dict  # name -> (SourceRecord, [ClipRecord])
    files: dict  # name -> Path: the source files, an excerpt of "a", and an unrelated video
    build: dict


def make_world(root: Path, *, seconds: float = 6.0) -> World:
    media = root / "media"
    media.mkdir(parents=True)
    files = {}
    for name, seed in (("a", 311), ("b", 312), ("unrelated", 313)):
        files[name] = synth_video(media / f"{name}.mp4", seconds, seed=seed, size=(192, 144))
    # seconds 1.5-4.5 of "a", re-encoded: a creator's excerpt of footage that is in the build
    files["excerpt"] = transform(files["a"], media / "excerpt.mp4", start_s=1.5, end_s=4.5, bit_rate=400_000)
    catalog = Catalog(root / "catalog.duckdb")
    store = BlobStore(root / "store")
    sources = {
        "a": add_source(
            catalog, store, files["a"], url="https://example.org/a", uploader="alice", clip_s=3.0
        ),
        "b": add_source(catalog, store, files["b"], url="https://example.org/b", uploader="bob", clip_s=3.0),
    }
    build = write_test_build(catalog, store, root / "builds", sources["a"][1] + sources["b"][1], shard_size=2)
    index_catalog(catalog, store)
    record_run(catalog, sources)
    settings = load_settings(None, overrides={"catalog": str(catalog.path), "store": str(store.root)})
    return World(root, catalog, store, settings, sources, files, build)


def record_run(catalog: Catalog, sources: dict) -> str:
    """A finished run over the clips: every clip of "a" kept, the first of "b" dropped as too dark, the
    second failed with a decode error (what the dashboard and the clip browser's filters show)."""
    from clipfactory.catalog.outcomes import finish_run, outcome_row, start_run, write_outcomes

    a_clips, b_clips = sources["a"][1], sources["b"][1]
    with catalog.write() as con:
        run_id = start_run(con, "run", "local")
        rows = [outcome_row(run_id, "quality.filter", 1, "h", c.clip_id, "kept") for c in a_clips]
        rows.append(
            outcome_row(
                run_id,
                "quality.filter",
                1,
                "h",
                b_clips[0].clip_id,
                "dropped",
                reason="quality.too_dark:luma=3",
            )
        )
        rows.append(
            outcome_row(
                run_id,
                "quality.filter",
                1,
                "h",
                b_clips[1].clip_id,
                "failed",
                error_kind="media.decode",
                error="corrupt packet",
            )
        )
        write_outcomes(con, rows)
        finish_run(con, run_id, "finished")
    return run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A uvicorn server in a thread on 127.0.0.1."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    pytest.importorskip("fastapi", reason="the web UI needs the [web] extra")
    return make_world(tmp_path_factory.mktemp("web"))
