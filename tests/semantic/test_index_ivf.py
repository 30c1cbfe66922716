"""Large collections go to a FAISS inverted file: built, saved, loaded and searched like the others."""

from __future__ import annotations

import sys

import numpy as np
import pytest

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
lazy.module("faiss")

from clipfactory.semantic import index as vi  # noqa: E402


def test_an_ivf_index_finds_each_stored_vector_first_and_survives_a_reload(tmp_path, monkeypatch):
    monkeypatch.setattr(vi, "EXACT_BELOW", 500)
    monkeypatch.setattr(vi, "IVF_ABOVE", 1000)
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((3000, 32), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    keys = (np.arange(3000, dtype=np.uint64) * 7919 + (1 << 63)).astype(np.uint64)  # keys above 2^63 too
    path = tmp_path / "x.usearch"
    built = vi.VectorIndex.build(path, keys, vecs)
    assert built.ivf is not None and len(built) == 3000
    assert path.read_bytes()[:4] in vi._FAISS_MAGIC
    loaded = vi.VectorIndex.load(path, 32)
    for idx in (built, loaded):
        for i in (0, 1234, 2999):
            found, sims = idx.search(vecs[i], 5)
            # a stored vector lies in the cell of its nearest centroid, which is probed first: it is found,
            # with cosine similarity 1, ahead of every other vector
            assert found[0] == keys[i] and sims[0] == pytest.approx(1.0, abs=1e-5)
            assert list(sims) == sorted(sims, reverse=True) and len(found) == 5
    # under the threshold the same call keeps HNSW / exact search
    monkeypatch.setattr(vi, "IVF_ABOVE", 10_000)
    assert vi.VectorIndex.build(None, keys, vecs).ivf is None
