"""The vector index beside the catalog: usearch (HNSW, cosine), one file per model.

``<catalog>.semantic/<model hash>.usearch`` holds the vectors of one model; ``.json`` beside it says which
catalog state it reflects (the number of vectors and the XOR of their keys). A search first compares that
with the catalog and rebuilds a stale index, so vectors removed from the catalog (by a takedown) leave the
index too; results are always read back from the catalog, so a removed item is never returned.

Small collections (under :data:`EXACT_BELOW` vectors) are searched exactly, from an array of the vectors;
from :data:`IVF_ABOVE` vectors, where FAISS is installed, through a FAISS inverted file (k-means cells of
the vectors, a share of the cells probed per query, exact inner products inside them); without FAISS,
through usearch's HNSW graph, whose vectors are stored as half floats.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import store

#: Below this many vectors a query compares against every vector (exact and still sub-millisecond).
EXACT_BELOW = 50_000
#: From this many vectors, where FAISS is installed, the index is an inverted file (IVF, k-means cells,
#: exact inner products inside the cells probed). At 100,000 clustered 384-d vectors it built in 1.3 CPU-s
#: against HNSW's 47, with recall@10 1.00 against 0.96 (BENCHMARKS.md), so HNSW is the index only
#: without FAISS.
IVF_ABOVE = 50_000
#: Cells probed per query, as a share of the cells (at least 16).
IVF_PROBE_SHARE = 1 / 32
#: k-means of the inverted file: iterations, and training points per cell (a sample of the vectors; the
#: cells of 1 M vectors are as good from 64 points each as from all of them, at a fraction of the time).
IVF_ITERATIONS = 10
IVF_POINTS_PER_CELL = 64
_FAISS_MAGIC = (b"IwFl", b"IvFl")


def _faiss():
    try:
        import faiss
    except ModuleNotFoundError:
        return None
    return faiss


def ivf_cells(n: int) -> int:
    """k-means cells of an inverted file over ``n`` vectors: about sqrt(n) (1,000 for 1 M vectors), so
    that assigning the vectors to cells (n × cells inner products) stays a few seconds per million."""
    return int(min(65_536, max(16, round(np.sqrt(n)))))


def ivf_probes(nlist: int) -> int:
    """Cells probed per query: :data:`IVF_PROBE_SHARE` of them, at least 16."""
    return min(nlist, max(16, int(nlist * IVF_PROBE_SHARE)))


def _faiss_threads(faiss) -> None:
    """FAISS (OpenMP) threads: the cores this process may run on, not the machine's."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, cores))


def _usearch():
    try:
        from usearch.index import Index
    except ModuleNotFoundError:
        raise ConfigError(
            "vector search needs usearch, which is not installed", fix="pip install 'clipfactory[semantic]'"
        ) from None
    return Index


class VectorIndex:
    """A usearch index of unit vectors with 64-bit keys. Under :data:`EXACT_BELOW` vectors no graph is
    built: the vectors are kept as an array (``.npy`` beside the index path) and searched exactly."""

    def __init__(self, index, dim: int, flat: tuple[np.ndarray, np.ndarray] | None = None, *, ivf=None):
        self.index = index
        self.dim = dim
        self.flat = flat
        self.ivf = ivf

    @classmethod
    def new(cls, dim: int, capacity: int = 0) -> VectorIndex:
        Index = _usearch()
        idx = Index(ndim=dim, metric="cos", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
        return cls(idx, dim)

    @classmethod
    def build(cls, path: str | os.PathLike | None, keys: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        if len(keys) < EXACT_BELOW:
            keys = np.asarray(keys, dtype=np.uint64)
            vectors = np.asarray(vectors, dtype=np.float32)
            vectors = vectors.reshape(len(keys), -1) if len(keys) else np.zeros((0, 1), np.float32)
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(str(path) + ".tmp.npz")
                with open(tmp, "wb") as f:
                    np.savez(f, keys=keys, vectors=vectors)
                os.replace(tmp, path)
            return cls(None, int(vectors.shape[1]) if vectors.size else 1, (keys, vectors))
        faiss = _faiss() if len(keys) >= IVF_ABOVE else None
        if faiss is not None:
            return cls._build_ivf(
                faiss, path, np.ascontiguousarray(keys, np.uint64), np.ascontiguousarray(vectors, np.float32)
            )
        self = cls.new(int(vectors.shape[1]) if vectors.size else 1, len(keys))
        if len(keys):
            self.index.add(np.asarray(keys, dtype=np.uint64), np.asarray(vectors, dtype=np.float32), threads=0)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(path) + ".tmp")
            self.index.save(str(tmp))
            os.replace(tmp, path)
        return self

    @classmethod
    def _build_ivf(cls, faiss, path, keys: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        n, dim = vectors.shape
        nlist = ivf_cells(n)
        _faiss_threads(faiss)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = IVF_ITERATIONS
        index.cp.max_points_per_centroid = IVF_POINTS_PER_CELL
        index.cp.seed = 1234
        rng = np.random.default_rng(0)  # the same cells for the same vectors
        take = min(n, IVF_POINTS_PER_CELL * nlist)
        sample = vectors if take == n else vectors[np.sort(rng.choice(n, size=take, replace=False))]
        index.train(sample)
        del sample
        index.add_with_ids(vectors, keys.view(np.int64))
        index.nprobe = ivf_probes(nlist)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(path) + ".tmp")
            faiss.write_index(index, str(tmp))
            os.replace(tmp, path)
        return cls(None, dim, ivf=index)

    @classmethod
    def load(cls, path: str | os.PathLike, dim: int) -> VectorIndex:
        with open(path, "rb") as f:
            head = f.read(4)
        flat = head == b"PK\x03\x04"  # an .npz (exact search), not a usearch file
        if head in _FAISS_MAGIC:
            faiss = _faiss()
            if faiss is None:
                raise ConfigError("this vector index was built with FAISS, which is not installed",
                                  item=str(path), fix="pip install 'clipfactory[semantic]'")
            index = faiss.read_index(str(path))
            index.nprobe = ivf_probes(int(index.nlist))
            return cls(None, dim, ivf=index)
        if flat:
            with np.load(path) as z:
                return cls(None, dim, (z["keys"], z["vectors"]))
        self = cls.new(dim)
        self.index.load(str(path))
        return self

    def __len__(self) -> int:
        if self.ivf is not None:
            return int(self.ivf.ntotal)
        return len(self.flat[0]) if self.flat is not None else len(self.index)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, cosine similarities) of the ``k`` nearest vectors, nearest first."""
        if self.ivf is not None:
            k = min(int(k), len(self))
            if k == 0:
                return np.zeros(0, np.uint64), np.zeros(0, np.float32)
            sims, ids = self.ivf.search(np.asarray(query, np.float32).reshape(1, -1), k)
            keep = ids[0] != -1
            return ids[0][keep].view(np.uint64), sims[0][keep].astype(np.float32)
        if self.flat is not None:
            keys, vecs = self.flat
            if not len(keys):
                return np.zeros(0, np.uint64), np.zeros(0, np.float32)
            sims = vecs @ np.asarray(query, np.float32)
            k = min(int(k), len(keys))
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.lexsort((keys[top], -sims[top]))]
            return keys[top], sims[top]
        if len(self.index) == 0:
            return np.zeros(0, np.uint64), np.zeros(0, np.float32)
        k = min(int(k), len(self.index))
        m = self.index.search(np.asarray(query, np.float32), k, exact=len(self.index) < EXACT_BELOW)
        return np.asarray(m.keys, np.uint64), 1.0 - np.asarray(m.distances, np.float32)


def index_dir(catalog_path: str | os.PathLike) -> Path:
    p = Path(catalog_path)
    return p.with_name(p.name + ".semantic")


def _paths(catalog_path, model_id: str) -> tuple[Path, Path]:
    stem = model_id.split("@sha256:")[-1][:16] if "@sha256:" in model_id else model_id.replace("/", "_")
    d = index_dir(catalog_path)
    return d / f"{stem}.usearch", d / f"{stem}.json"


def _state(con, model_id: str) -> dict[str, Any]:
    if not store.has_table(con):
        return {"model_id": model_id, "n": 0, "xor": 0}
    n, x = con.execute(
        "SELECT count(*), coalesce(bit_xor(vkey), 0) FROM embeddings WHERE model_id = ?", [model_id]
    ).fetchall()[0]
    return {"model_id": model_id, "n": int(n), "xor": int(x)}


def open_index(catalog, model_id: str, *, rebuild: bool = False) -> tuple[VectorIndex, dict[str, Any]]:
    """The persisted index of ``model_id`` for ``catalog``, rebuilt first when it is missing or stale."""
    ipath, mpath = _paths(catalog.path, model_id)
    with catalog.read() as con:
        state = _state(con, model_id)
        meta = json.loads(mpath.read_text()) if mpath.is_file() else None
        fresh = not rebuild and ipath.is_file() and meta is not None and {k: meta.get(k) for k in state} == state
        if fresh:
            return VectorIndex.load(ipath, int(meta["dim"])), {**meta, "rebuilt": False}
        rows, vecs = store.read_vectors(con, model_id)
    keys = np.asarray(rows.column("vkey").to_numpy(), dtype=np.int64).view(np.uint64) if rows.num_rows else np.zeros(0, np.uint64)
    dim = int(vecs.shape[1]) if vecs.size else 1
    idx = VectorIndex.build(ipath, keys, vecs)
    meta = {**state, "dim": dim}
    tmp = mpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, mpath)
    return idx, {**meta, "rebuilt": True}


def drop_index(catalog_path, model_id: str | None = None) -> list[str]:
    """Remove the persisted index files (of one model, or all); returns the removed paths."""
    d = index_dir(catalog_path)
    if not d.is_dir():
        return []
    removed = []
    for p in sorted(d.iterdir()):
        if model_id is None or p.name.startswith(_paths(catalog_path, model_id)[0].stem + "."):
            p.unlink()
            removed.append(str(p))
    return removed
