"""A re-encoded copy of taken-down footage that is refused at analysis does not stay in the blob store: its
bytes move to the store's quarantine under the tombstone id, and the catalog says why."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

from clipfactory.catalog import Catalog
from clipfactory.config import load_settings
from clipfactory.factory.add import add_owned
from clipfactory.factory.pipeline import run_pipeline
from clipfactory.fingerprints.takedown import takedown
from clipfactory.records import SourceRecord
from clipfactory.storage import BlobStore

from .conftest import add_source


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reencode(src: Path, dst: Path, scale: float = 0.75) -> Path:
    """The same footage with another codec, bit rate and frame size."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = Fraction(vin.average_rate)
        vout = out.add_stream("mpeg4", rate=rate)
        vout.width = int(vin.codec_context.width * scale) // 2 * 2
        vout.height = int(vin.codec_context.height * scale) // 2 * 2
        vout.pix_fmt = "yuv420p"
        vout.bit_rate = 400_000
        vout.codec_context.time_base = 1 / rate
        for i, frame in enumerate(inp.decode(vin)):
            small = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
            small.pts, small.time_base = i, 1 / rate
            out.mux(vout.encode(small))
        out.mux(vout.encode(None))
    return dst


def _settings(tmp_path: Path, inputs: list[Path], license: str = "CC-BY-4.0"):
    return load_settings(
        overrides={
            "catalog": str(tmp_path / "catalog.duckdb"),
            "store": str(tmp_path / "store"),
            "purpose": "research",
            "inputs": [str(p) for p in inputs],
            "license": license,
            "rights_holder": "clipfactory tests",
            "build": {"name": "q", "out": str(tmp_path / "builds")},
        }
    )


def test_a_refused_re_encode_moves_to_quarantine(tmp_path, shared_data):
    original = shared_data / "media" / "bikes.mp4"
    catalog = Catalog(tmp_path / "catalog.duckdb")
    store = BlobStore(tmp_path / "store")
    src, _ = add_source(catalog, store, original, cut_clips=False)
    takedown(catalog, store=store, source_id=src.source_id, reason="creator request")
    (tid,) = [r["tombstone_id"] for r in catalog.query("SELECT tombstone_id FROM tombstones")]

    again = tmp_path / "again"
    again.mkdir()
    copy = reencode(original, again / "reupload.mp4")
    sha = _sha256(copy)
    summary = run_pipeline(_settings(tmp_path, [again]))
    assert summary["clips_planned"] == 0

    # the bytes are gone from the blob store, and kept once in the tombstone's quarantine folder
    assert not store.path(sha).exists()
    folder = store.root / "quarantine" / tid / sha
    media = [p for p in folder.iterdir() if p.name.startswith("media")]
    assert len(media) == 1 and _sha256(media[0]) == sha
    refusal = json.loads((folder / "refusal.json").read_text())
    assert refusal["tombstone_id"] == tid and refusal["takedown_reason"] == "creator request"
    assert refusal["source_id"] == f"sha256:{sha}" and refusal["match"]["kind"] == "pdq"
    assert refusal["match"]["share"] >= 0.8

    # the catalog says why, and no longer points at bytes it does not keep
    (row,) = catalog.query("SELECT * FROM quarantine")
    assert row["source_id"] == f"sha256:{sha}" and row["tombstone_id"] == tid
    assert row["reason"] == "creator request" and row["content_sha256"] == sha
    assert row["path"] == f"quarantine/{tid}/{sha}" and row["stage"] == "media.analyse"
    assert catalog.scalar("SELECT blob_uri FROM sources WHERE source_id = ?", [f"sha256:{sha}"]) is None
    (outcome,) = catalog.query(
        "SELECT status, reason FROM latest_outcomes WHERE stage = 'media.analyse' AND item_id = ?",
        [f"sha256:{sha}"],
    )
    assert outcome == {"status": "dropped", "reason": f"takedown.tombstoned:{tid}"}

    # the same bytes added again (under another licence) are refused by hash before they are stored
    third = tmp_path / "third"
    third.mkdir()
    shutil.copy(copy, third / "same-bytes.mp4")
    report, kept = add_owned(
        catalog,
        _settings(tmp_path, [], license="CC0-1.0"),
        [str(third)],
        license="CC0-1.0",
        rights_holder="someone else",
    )
    assert kept == []
    assert not store.path(sha).exists()
    refused = catalog.query(
        "SELECT reason FROM latest_outcomes WHERE stage = 'acquire.local' AND item_id LIKE ? "
        "ORDER BY recorded_at DESC LIMIT 1",
        [f"sha256:{sha}@%"],
    )
    assert refused and refused[0]["reason"] == f"takedown.tombstoned:{tid}"


def test_quarantine_media_is_idempotent_and_keeps_shared_bytes(tmp_path):
    from clipfactory.fingerprints.tombstones import TombstoneMatch, quarantine_media

    store = BlobStore(tmp_path / "store")
    uri = store.put_bytes(b"not really a video, but bytes in the store")
    sha = uri.rsplit(":", 1)[1]
    src = SourceRecord(
        source_id=f"sha256:{sha}", platform="owned", content_sha256=sha, blob_uri=uri, origin_uri="/in/a.MOV"
    )
    m = TombstoneMatch("tomb-0123", "sha256:gone", "pdq", 0.9, 7)
    shared = quarantine_media(store, src, m, keep_blob=True)
    assert store.exists(uri) and shared["blob_kept"] is True
    first = quarantine_media(store, src, m, takedown_reason="creator request")
    assert not store.exists(uri)
    assert first["media"] == f"quarantine/tomb-0123/{sha}/media.mov"
    again = quarantine_media(store, src, m)  # a retry after the move
    assert again["media"] == first["media"]
    store.put_bytes(b"not really a video, but bytes in the store")  # stored again meanwhile
    quarantine_media(store, src, m)
    assert not store.exists(uri)
    assert _sha256(store.root / first["media"]) == sha
