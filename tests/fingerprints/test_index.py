"""The multi-index over PDQ hashes, its persistence, and loading catalog fingerprints incrementally."""

from __future__ import annotations

import numpy as np
import pytest

from clipfactory.fingerprints.hashes import (
    array_to_hex,
    hamming_matrix,
    hex_to_array,
    majority_descriptor,
)
from clipfactory.fingerprints.index import HashIndex, index_catalog, index_root, index_status, load_index
from clipfactory.storage import BlobStore

from .conftest import add_source


def _flip(rng, h: np.ndarray, n: int) -> np.ndarray:
    out = h.copy()
    for b in rng.choice(256, size=n, replace=False):
        out[b // 8] ^= 1 << (b % 8)
    return out


def test_search_is_exact_up_to_31_bits():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    idx = HashIndex(base, np.arange(5000) % 7, np.arange(5000), [f"s{i}" for i in range(7)])
    queries = np.stack([_flip(rng, base[i], i % 40) for i in range(200)])
    qi, ri, d = idx.search(queries, 31)
    got = set(zip(qi.tolist(), ri.tolist(), strict=True))
    brute = hamming_matrix(queries, base)
    want = set(zip(*[a.tolist() for a in np.nonzero(brute <= 31)], strict=True))
    assert got == want
    # every query with at most 31 flipped bits finds its origin; 32 and more do not
    assert all((i, i) in got for i in range(200) if i % 40 <= 31)
    assert not any((i, i) in got for i in range(200) if i % 40 > 31)
    assert d.max() <= 31


def test_fast_search_finds_close_pairs_and_most_far_ones():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    idx = HashIndex(base, np.zeros(3000), np.arange(3000), ["s"])
    close = np.stack([_flip(rng, base[i], 15) for i in range(300)])
    qi, ri, _ = idx.search(close, 31, exact=False)
    assert {(i, i) for i in range(300)} <= set(zip(qi.tolist(), ri.tolist(), strict=True))


def test_hex_round_trip_and_majority():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    assert (hex_to_array(array_to_hex(arr)) == arr).all()
    same = np.repeat(arr[:1], 3, axis=0)
    assert majority_descriptor(same) == arr[0].tobytes()
    with pytest.raises(ValueError):
        hex_to_array(["zz" * 32])


def test_persisted_index_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    h = rng.integers(0, 256, (100, 32), dtype=np.uint8)
    idx = HashIndex(h, np.arange(100) % 3, np.arange(100) * 1000, ["a", "b", "c"], generation=5)
    idx.save(tmp_path)
    again = HashIndex.load(tmp_path)
    assert again.generation == 5 and again.sources == ["a", "b", "c"]
    assert (again.hashes == h).all()
    q = _flip(rng, h[42], 20)[None]
    assert 42 in again.search(q)[1].tolist()
    smaller = again.without_sources({"a"}, generation=6)
    assert "a" not in {smaller.sources[s] for s in smaller.src}
    assert len(smaller) == 100 - 34


def test_index_catalog_is_incremental_and_idempotent(catalog, tmp_path, synth_dir):
    store = BlobStore(tmp_path / "store")
    src_a, clips_a = add_source(catalog, store, synth_dir / "A.mp4", cut_clips=False)
    first = index_catalog(catalog, store)
    assert first["new_blobs"] == 1 and first["new_frames"] >= 9
    assert index_catalog(catalog, store)["new_blobs"] == 0  # idempotent
    add_source(catalog, store, synth_dir / "B.mp4", cut_clips=False)
    second = index_catalog(catalog, store)
    assert second["new_blobs"] == 1
    assert second["generation"] == first["generation"] + 1
    status = index_status(catalog, store)
    assert status["up_to_date"] and status["sources"] == 2
    idx = load_index(catalog, store)
    assert set(idx.sources) == {src_a.source_id, second and idx.sources[1]}
    # lineage: every clip has a descriptor with its own frame count
    rows = catalog.query("SELECT item_id, kind, n_usable FROM fp_descriptors WHERE kind = 'clip'")
    assert {r["item_id"] for r in rows} >= {c.clip_id for c in clips_a}
    assert all(r["n_usable"] >= 2 for r in rows)
    # a lost index is rebuilt from the catalog table
    import shutil

    shutil.rmtree(index_root(store))
    from clipfactory.fingerprints import index as index_mod

    index_mod._CACHE.clear()
    assert len(load_index(catalog, store)) == len(idx)


def test_a_source_analysed_again_replaces_its_frames(catalog, tmp_path, synth_dir):
    from clipfactory.catalog import upsert_records
    from clipfactory.fingerprints.frames import write_frame_hashes

    store = BlobStore(tmp_path / "store")
    src, _ = add_source(catalog, store, synth_dir / "A.mp4", cut_clips=False)
    index_catalog(catalog, store)
    before = catalog.scalar("SELECT count(*) FROM frame_hashes WHERE source_id = ?", [src.source_id])
    rows = catalog.query(
        "SELECT frame_index, time_ms, pdq, quality FROM frame_hashes WHERE source_id = ?", [src.source_id]
    )
    again = write_frame_hashes(
        store, [(r["frame_index"], r["time_ms"], bytes(r["pdq"]).hex(), r["quality"]) for r in rows[:4]]
    )
    with catalog.write() as con:
        upsert_records(con, [src.replace(fingerprint_uri=again)])
    index_catalog(catalog, store)
    assert (
        catalog.scalar("SELECT count(*) FROM frame_hashes WHERE source_id = ?", [src.source_id]) == 4 < before
    )
    assert len(load_index(catalog, store)) == 4
