"""Core pieces: ids, records, errors, config precedence, catalog locking."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import pickle
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pytest

from clipfactory import ids
from clipfactory.catalog import Catalog, load_records, upsert_records
from clipfactory.config import load_settings
from clipfactory.errors import CatalogBusyError, ConfigError, MissingExtraError, TerminalError, TransientError
from clipfactory.records import ClipRecord, Result, SourceRecord
from clipfactory.storage import BlobStore, atomic_write

SPELLINGS = [
    "dQw4w9WgXcQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=43s",
    "http://youtube.com/watch?feature=share&v=dQw4w9WgXcQ",
    "youtube.com/watch?v=dQw4w9WgXcQ#t=1",
    "https://youtu.be/dQw4w9WgXcQ",
    "https://youtu.be/dQw4w9WgXcQ?t=10",
    "https://m.youtube.com/shorts/dQw4w9WgXcQ",
    "https://www.youtube.com/embed/dQw4w9WgXcQ?start=3",
    "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
    "HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ",
    "  dQw4w9WgXcQ  ",
]
NOT_IDS = [
    "",
    "dQw4w9WgXc",
    "dQw4w9WgXcQQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXc",
    "https://vimeo.com/12345678901",
    "https://www.youtube.com/channel/UCabcdefghijk",
    "dQw4w9Wg!cQ",
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_youtube_spellings_canonicalise(text):
    assert ids.youtube_id(text) == "dQw4w9WgXcQ"
    assert ids.youtube_source_id(text) == "youtube:dQw4w9WgXcQ"


@pytest.mark.parametrize("text", NOT_IDS)
def test_youtube_rejects_non_ids(text):
    assert ids.youtube_id(text) is None


def test_youtube_sql_twin_agrees_with_python():
    con = duckdb.connect()
    for text in SPELLINGS + NOT_IDS:
        t = text.strip()
        got = con.execute(
            "SELECT coalesce(nullif(regexp_extract(?, ?, 1), ''), nullif(regexp_extract(?, ?, 1), ''))",
            [t, ids.YOUTUBE_BARE_RE, t, ids.YOUTUBE_URL_RE],
        ).fetchone()[0]
        assert got == ids.youtube_id(text), text


def test_clip_id_deterministic_and_sql_twin():
    a = ids.clip_id("youtube:dQw4w9WgXcQ", 1000, 5000)
    assert a == ids.clip_id("youtube:dQw4w9WgXcQ", 1000, 5000)
    assert a != ids.clip_id("youtube:dQw4w9WgXcQ", 1000, 5001)
    con = duckdb.connect()
    got = con.execute(
        f"SELECT {ids.CLIP_ID_SQL} FROM (SELECT 'youtube:dQw4w9WgXcQ' AS source_id, 1000 AS start_ms, 5000 AS end_ms)"
    ).fetchone()[0]
    assert got == a


def test_platform_and_content_ids():
    assert ids.platform_source_id("YouTube", "https://youtu.be/dQw4w9WgXcQ") == "youtube:dQw4w9WgXcQ"
    with pytest.raises(ValueError):
        ids.platform_source_id("youtube", "nope")
    assert ids.content_source_id("a" * 64) == "sha256:" + "a" * 64
    with pytest.raises(ValueError):
        ids.content_source_id("xyz")
    assert ids.url_source_id("HTTP://Example.com:80/a.mp4#frag") == ids.url_source_id(
        "http://example.com/a.mp4"
    )


def test_records_round_trip_through_arrow_and_parquet(tmp_path):
    clips = [
        ClipRecord(ids.clip_id("s", 0, 1000), "s", 0, 1000, motion=1.5, caption="a cat"),
        ClipRecord(ids.clip_id("s", 1000, 2000), "s", 1000, 2000),
    ]
    table = ClipRecord.to_table(clips)
    pq.write_table(table, tmp_path / "c.parquet")
    back = ClipRecord.from_table(pq.read_table(tmp_path / "c.parquet"))
    assert back == clips
    with pytest.raises(dataclasses.FrozenInstanceError):
        clips[0].start_ms = 5  # type: ignore[misc]


def test_result_validation():
    assert Result.dropped("x", "quality.too_dark").reason == "quality.too_dark"
    with pytest.raises(ValueError):
        Result.dropped("x", "too_dark")
    with pytest.raises(ValueError):
        Result.failed("x", "oops", "e")


def test_errors_pickle_and_format():
    e = TransientError("busy", item="a.mp4", fix="retry later")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is TransientError and back.transient and str(back) == str(e)
    assert "a.mp4" in str(e) and "retry later" in str(e)
    m = pickle.loads(pickle.dumps(MissingExtraError("ray", "ray")))
    assert "pip install 'clipfactory[ray]'" in str(m)
    assert not TerminalError("x").transient


def test_config_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text('catalog = "from_toml.duckdb"\npurpose = "commercial"\nworkers = 3\n')
    s = load_settings(cfg)
    assert s.catalog == str(tmp_path / "from_toml.duckdb") and s.purpose == "commercial" and s.workers == 3
    monkeypatch.setenv("CLIPFACTORY_PURPOSE", "research")
    s = load_settings(cfg)
    assert s.purpose == "research" and s.workers == 3  # env beats the file
    s = load_settings(cfg, overrides={"purpose": "custom", "workers": None})
    assert s.purpose == "custom" and s.workers == 3  # flags beat env; None flags are ignored
    s = load_settings(cfg, sets=["workers=5"])
    assert s.workers == 5


def test_config_errors_name_the_item(tmp_path):
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text("catalgo = 'x'\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "clipfactory.toml" in str(exc.value)
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "missing.toml")
    cfg.write_text("[no.such_stage]\nx = 1\n")
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_catalog_upsert_and_load(catalog):
    with catalog.write() as con:
        upsert_records(con, [SourceRecord("youtube:dQw4w9WgXcQ", "youtube", platform_id="dQw4w9WgXcQ")])
    with catalog.write() as con:
        upsert_records(con, [SourceRecord("youtube:dQw4w9WgXcQ", "youtube", title="t")])
    assert catalog.scalar("SELECT count(*) FROM sources") == 1
    with catalog.read() as con:
        (rec,) = load_records(con, SourceRecord, ["youtube:dQw4w9WgXcQ"])
    assert rec.title == "t"


def test_catalog_write_is_atomic(catalog):
    with catalog.write() as con:
        upsert_records(con, [SourceRecord("a:1", "web")])
    with pytest.raises(RuntimeError):
        with catalog.write() as con:
            upsert_records(con, [SourceRecord("a:2", "web")])
            raise RuntimeError("crash mid-write")
    assert [r["source_id"] for r in catalog.query("SELECT source_id FROM sources")] == ["a:1"]


def _hold_write(path, seconds, ready):
    cat = Catalog(path)
    with cat.write() as con:
        con.execute("SELECT 1").fetchall()
        ready.set()
        time.sleep(seconds)


def test_catalog_readers_wait_for_writer_in_another_process(tmp_path):
    path = tmp_path / "c.duckdb"
    Catalog(path).query("SELECT 1")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_write, args=(str(path), 1.5, ready))
    p.start()
    try:
        assert ready.wait(30)
        t0 = time.monotonic()
        assert Catalog(path).scalar("SELECT count(*) FROM runs") == 0
        assert time.monotonic() - t0 > 0.5  # waited for the writer instead of failing on DuckDB's lock
        ready.clear()
    finally:
        p.join(30)


def test_catalog_busy_error_after_timeout(tmp_path):
    path = tmp_path / "c.duckdb"
    Catalog(path).query("SELECT 1")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_write, args=(str(path), 1.5, ready))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(CatalogBusyError):
            with Catalog(path, lock_timeout=0.3).write():
                pass
    finally:
        p.join(30)


def test_blob_store_is_content_addressed_and_atomic(tmp_path):
    store = BlobStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello" * 1000)
    uri, size = store.put_file(src)
    assert size == 5000 and store.exists(uri)
    assert uri == store.put_bytes(b"hello" * 1000)
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "out.tar") as fh:
            fh.write(b"partial")
            raise RuntimeError("killed")
    assert not (tmp_path / "out.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_the_nsfw_scorer_without_onnxruntime_names_the_extra(monkeypatch):
    """A missing onnxruntime is the one-line error with the install command, not a ModuleNotFoundError."""
    from clipfactory.signals.nsfw import NsfwScorer

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(MissingExtraError) as exc:
        NsfwScorer()
    assert "pip install 'clipfactory[signals]'" in str(exc.value)
