"""The fingerprint index: every usable catalog frame hash, searchable within Hamming distance 31.

**Multi-index hashing.** Each 256-bit hash is cut into 16 chunks of 16 bits. If two hashes are within
distance ``r``, then by the pigeonhole principle at least one of their 16 chunks differs in at most
``r // 16`` bits (for ``r = 31``: at most one bit). So a search probes, for every chunk of the query,
the bucket of the chunk's exact value and of its 16 one-bit neighbours (17 buckets x 16 chunks), and
verifies each candidate with a full 256-bit popcount. The search is exact: it finds every stored hash
within ``r``, never an approximation. Each chunk's buckets are a counting-sort permutation plus an
offsets array (CSR), so a probe is two array reads, and one search is a handful of vectorised numpy
operations whatever the number of query hashes.

**Persistence.** The index lives at ``<store>/index/fingerprints/v<generation>/`` as plain ``.npy``
arrays (hashes, source numbers, times, and the 16 chunk tables) plus ``meta.json``; the file
``CURRENT`` names the live version and is replaced atomically after the new version is complete.
``frame_hashes`` in the catalog is the source of truth: its ``generation`` (in ``fp_index_meta``) is
bumped on every change, and a persisted index whose generation differs is patched (new sources
appended, removed sources masked out) or rebuilt from the table.

**Completeness.** A search is only as complete as ``frame_hashes``: fingerprint blobs that sources and
clips reference but that are not loaded yet are invisible to it. :func:`require_searchable` (what a
lookup calls) loads them from the store and refuses, naming the store and the fix, when some cannot be
read there (the wrong store, or lost blobs) rather than let a search answer "no match" it cannot know.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Catalog
from ..storage import BlobStore, atomic_write
from .hashes import (
    HASH_BYTES,
    MATCH_DISTANCE,
    MIN_QUALITY,
    as_words,
    chunks16,
    hamming_pairs,
    majority_descriptor,
)

log = logging.getLogger(__name__)

N_CHUNKS = 16
CHUNK_VALUES = 1 << 16
INDEX_DIR = ("index", "fingerprints")


def _probe_masks(radius_per_chunk: int) -> np.ndarray:
    masks = [0]
    if radius_per_chunk >= 1:
        masks += [1 << b for b in range(16)]
    if radius_per_chunk >= 2:
        masks += [(1 << a) | (1 << b) for a in range(16) for b in range(a + 1, 16)]
    if radius_per_chunk >= 3:
        raise ValueError("search radius above 47 bits is not supported")
    return np.array(masks, np.uint16)


class HashIndex:
    """An in-memory multi-index over ``uint8[n, 32]`` hashes with a source number and time per row."""

    def __init__(
        self,
        hashes: np.ndarray,
        src: np.ndarray,
        time_ms: np.ndarray,
        sources: list[str],
        *,
        generation: int = 0,
        perm: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
        tag: np.ndarray | None = None,
    ):
        self.hashes = np.ascontiguousarray(hashes, np.uint8).reshape(-1, HASH_BYTES)
        self.src = np.asarray(src, np.int32)
        self.time_ms = np.asarray(time_ms, np.int64)
        #: a free int32 per row for callers (the crop-variant index keeps the variant number here)
        self.tag = np.zeros(len(self.hashes), np.int32) if tag is None else np.asarray(tag, np.int32)
        self.sources = list(sources)
        self.generation = int(generation)
        self._words = as_words(self.hashes)
        self._by_src: tuple[np.ndarray, np.ndarray] | None = None
        if perm is None or offsets is None:
            perm, offsets = self._tables(self.hashes)
        self.perm = perm
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.hashes)

    def rows_of(self, src_no: int) -> np.ndarray:
        """Index rows of one source, in time order."""
        if self._by_src is None:
            order = np.lexsort((self.time_ms, self.src))
            starts = np.zeros(len(self.sources) + 1, np.int64)
            starts[1:] = np.cumsum(np.bincount(self.src, minlength=len(self.sources)))
            self._by_src = (order, starts)
        order, starts = self._by_src
        return order[starts[src_no] : starts[src_no + 1]]

    @staticmethod
    def _tables(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(hashes)
        ch = chunks16(hashes)
        perm = np.empty((N_CHUNKS, n), np.int32)
        offsets = np.zeros((N_CHUNKS, CHUNK_VALUES + 1), np.int64)
        for j in range(N_CHUNKS):
            col = ch[:, j]
            perm[j] = np.argsort(col, kind="stable")
            offsets[j, 1:] = np.cumsum(np.bincount(col, minlength=CHUNK_VALUES))
        return perm, offsets

    @classmethod
    def empty(cls, generation: int = 0) -> HashIndex:
        return cls(
            np.zeros((0, HASH_BYTES), np.uint8), np.zeros(0, np.int32), np.zeros(0), [], generation=generation
        )

    # -- search ------------------------------------------------------------------------------------
    def search(
        self, query: np.ndarray, radius: int = MATCH_DISTANCE, *, exact: bool = True, block: int = 256
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, index row, distance) triples with distance <= ``radius``.

        ``exact`` probes every bucket the pigeonhole bound requires and finds every such pair. Without
        it only each chunk's own bucket is probed (16 probes instead of 272): every pair within 15 bits
        is still found, and most pairs up to 31 (a pair at 31 is missed only when all 16 chunks differ,
        about one time in nine for random bit flips). Dense queries use it to find candidate sources,
        then compare each candidate's frames exhaustively.
        """
        query = np.ascontiguousarray(query, np.uint8).reshape(-1, HASH_BYTES)
        out_q, out_r, out_d = [], [], []
        if not len(self) or not len(query):
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.int32)
        masks = _probe_masks(radius // N_CHUNKS) if exact else np.zeros(1, np.uint16)
        qwords = as_words(query)
        n = len(self)
        perm_flat = self.perm.reshape(-1)
        chunk_base = (np.arange(N_CHUNKS, dtype=np.int64) * n)[None, :, None]
        for b0 in range(0, len(query), block):
            qc = chunks16(query[b0 : b0 + block])  # [m, 16]
            m = len(qc)
            keys = (qc[:, :, None] ^ masks[None, None, :]).astype(np.int64)  # [m, 16, p]
            j = np.broadcast_to(np.arange(N_CHUNKS)[None, :, None], keys.shape)
            starts = self.offsets[j, keys]
            lens = (self.offsets[j, keys + 1] - starts).reshape(-1)
            starts = (starts + chunk_base).reshape(-1)
            qrow = np.broadcast_to(np.arange(m, dtype=np.int64)[:, None, None], keys.shape).reshape(-1)
            nz = lens > 0
            lens, starts, qrow = lens[nz], starts[nz], qrow[nz]
            if not len(lens):
                continue
            total = int(lens.sum())
            cum = np.cumsum(lens)
            pos = np.arange(total, dtype=np.int64) + np.repeat(starts - (cum - lens), lens)
            cand = perm_flat[pos].astype(np.int64)
            qq = np.repeat(qrow, lens)
            key = np.unique(qq * n + cand)
            qq, cand = key // n, key % n
            d = hamming_pairs(qwords[b0 + qq], self._words[cand])
            ok = d <= radius
            out_q.append(qq[ok] + b0)
            out_r.append(cand[ok])
            out_d.append(d[ok])
        if not out_q:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.int32)
        return np.concatenate(out_q), np.concatenate(out_r), np.concatenate(out_d)

    # -- changes -----------------------------------------------------------------------------------
    def extend(
        self,
        hashes: np.ndarray,
        source_ids: list[str],
        time_ms: np.ndarray,
        *,
        generation: int,
        tag: np.ndarray | None = None,
    ) -> HashIndex:
        """A new index with more rows (``source_ids`` gives each new row's source)."""
        names = {s: i for i, s in enumerate(self.sources)}
        sources = list(self.sources)
        src_new = np.empty(len(source_ids), np.int32)
        for k, s in enumerate(source_ids):
            i = names.get(s)
            if i is None:
                i = names[s] = len(sources)
                sources.append(s)
            src_new[k] = i
        return HashIndex(
            np.concatenate([self.hashes, np.asarray(hashes, np.uint8).reshape(-1, HASH_BYTES)]),
            np.concatenate([self.src, src_new]),
            np.concatenate([self.time_ms, np.asarray(time_ms, np.int64)]),
            sources,
            generation=generation,
            tag=np.concatenate(
                [self.tag, np.zeros(len(src_new), np.int32) if tag is None else np.asarray(tag, np.int32)]
            ),
        )

    @property
    def n_sources(self) -> int:
        """Sources with frames in the index (a taken-down source keeps its name in ``sources``)."""
        return int(np.unique(self.src).size)

    def without_sources(self, source_ids: set[str], *, generation: int) -> HashIndex:
        drop = np.array([s in source_ids for s in self.sources], bool)
        if not drop.any():
            return HashIndex(
                self.hashes,
                self.src,
                self.time_ms,
                self.sources,
                generation=generation,
                perm=self.perm,
                offsets=self.offsets,
            )
        keep = ~drop[self.src] if len(self.src) else np.zeros(0, bool)
        return HashIndex(
            self.hashes[keep], self.src[keep], self.time_ms[keep], self.sources, generation=generation
        )

    # -- persistence -------------------------------------------------------------------------------
    def save(self, root: Path) -> Path:
        """Write a complete new version directory, then switch ``CURRENT`` to it atomically."""
        root.mkdir(parents=True, exist_ok=True)
        name = f"v{self.generation:08d}-{os.getpid()}-{int(time.time() * 1000) % 10**9}"
        tmp = root / f".{name}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for key, arr in (
            ("hashes", self.hashes),
            ("src", self.src),
            ("time_ms", self.time_ms),
            ("perm", self.perm),
            ("offsets", self.offsets),
            ("tag", self.tag),
        ):
            with open(tmp / f"{key}.npy", "wb") as fh:
                np.save(fh, arr)
                fh.flush()
                os.fsync(fh.fileno())
        meta = {"generation": self.generation, "n": len(self), "sources": self.sources, "format": 1}
        (tmp / "meta.json").write_text(json.dumps(meta))
        final = root / name
        os.replace(tmp, final)
        with atomic_write(root / "CURRENT", "w") as fh:
            fh.write(json.dumps({"dir": name, "generation": self.generation, "n": len(self)}))
        for p in root.iterdir():  # older versions and leftovers of interrupted saves
            if p.name not in (name, "CURRENT", ".lock") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
        return final

    @classmethod
    def load(cls, root: Path) -> HashIndex | None:
        cur = root / "CURRENT"
        if not cur.exists():
            return None
        try:
            pointer = json.loads(cur.read_text())
            d = root / pointer["dir"]
            meta = json.loads((d / "meta.json").read_text())
            arrays = {
                k: np.load(d / f"{k}.npy", mmap_mode="r")
                for k in ("hashes", "src", "time_ms", "perm", "offsets")
            }
            arrays["tag"] = np.load(d / "tag.npy") if (d / "tag.npy").exists() else None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("fingerprint index at %s is unreadable (%s); it will be rebuilt", root, exc)
            return None
        return cls(
            np.asarray(arrays["hashes"]),
            np.asarray(arrays["src"]),
            np.asarray(arrays["time_ms"]),
            meta["sources"],
            generation=meta["generation"],
            perm=arrays["perm"],
            offsets=np.asarray(arrays["offsets"]),
            tag=arrays["tag"],
        )


# -- catalog side ------------------------------------------------------------------------------------
def _store(store: BlobStore | str | os.PathLike) -> BlobStore:
    return store if isinstance(store, BlobStore) else BlobStore(store)


def index_root(store: BlobStore | str | os.PathLike) -> Path:
    return _store(store).root.joinpath(*INDEX_DIR)


@contextlib.contextmanager
def _index_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def catalog_generation(con) -> int:
    row = con.execute("SELECT value FROM fp_index_meta WHERE key = 'generation'").fetchall()
    return int(row[0][0]) if row else 0


def bump_generation(con) -> int:
    gen = catalog_generation(con) + 1
    con.execute("INSERT OR REPLACE INTO fp_index_meta VALUES ('generation', ?)", [str(gen)])
    return gen


def _binary_to_array(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], pa.binary())
    if len(col) == 0:
        return np.zeros((0, HASH_BYTES), np.uint8)
    if col.null_count:
        raise ValueError("frame hash rows without a hash")
    offsets_dtype = np.int64 if pa.types.is_large_binary(col.type) else np.int32
    bufs = col.buffers()
    offsets = np.frombuffer(bufs[1], offsets_dtype)[col.offset : col.offset + len(col) + 1]
    data = np.frombuffer(bufs[2], np.uint8)[offsets[0] : offsets[-1]]
    if not np.all(np.diff(offsets) == HASH_BYTES):
        raise ValueError("PDQ hashes must be 32 bytes each")
    return data.reshape(-1, HASH_BYTES).copy()


def _frames_from_catalog(
    con, where: str = "", params: list | None = None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    tbl = con.sql(
        f"SELECT source_id, time_ms, pdq FROM frame_hashes WHERE quality >= {MIN_QUALITY} {where} "
        "ORDER BY source_id, time_ms",
        params=params or None,
    ).to_arrow_table()
    hashes = _binary_to_array(tbl.column("pdq"))
    return hashes, tbl.column("source_id").to_pylist(), tbl.column("time_ms").to_numpy().astype(np.int64)


def rebuild_index(catalog: Catalog, store: BlobStore | str | os.PathLike) -> HashIndex:
    """Build the index from ``frame_hashes`` and persist it."""
    root = index_root(store)
    with _index_lock(root):
        with catalog.read() as con:
            gen = catalog_generation(con)
            hashes, sids, times = _frames_from_catalog(con)
        idx = HashIndex.empty(gen).extend(hashes, sids, times, generation=gen)
        idx.save(root)
    _CACHE.pop(str(root), None)
    return idx


_CACHE: dict[str, HashIndex] = {}


def load_index(catalog: Catalog, store: BlobStore | str | os.PathLike) -> HashIndex:
    """The index for the catalog's current generation: from memory, from disk, or rebuilt."""
    root = index_root(store)
    with catalog.read() as con:
        gen = catalog_generation(con)
    cached = _CACHE.get(str(root))
    if cached is not None and cached.generation == gen:
        return cached
    idx = HashIndex.load(root)
    if idx is None or idx.generation != gen:
        idx = rebuild_index(catalog, store)
    _CACHE[str(root)] = idx
    return idx


@dataclass
class _Blob:
    source_id: str
    clip_id: str | None
    uri: str
    start_ms: int | None
    end_ms: int | None


def _pending_blobs(con) -> list[_Blob]:
    """Fingerprint blobs referenced by sources and clips that are not loaded yet."""
    rows = con.execute(
        """
        WITH src AS (SELECT source_id, fingerprint_uri FROM sources WHERE fingerprint_uri IS NOT NULL),
        cl AS (
            SELECT c.source_id, c.clip_id, c.fingerprint_uri, c.start_ms, c.end_ms,
                   count(*) OVER (PARTITION BY c.source_id, c.fingerprint_uri) AS n_share
            FROM clips c
            WHERE c.fingerprint_uri IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM src WHERE src.source_id = c.source_id)
        ),
        blobs AS (
            SELECT source_id, NULL::VARCHAR AS clip_id, fingerprint_uri, NULL::BIGINT AS start_ms, NULL::BIGINT AS end_ms
            FROM src
            UNION ALL
            SELECT DISTINCT source_id, NULL::VARCHAR, fingerprint_uri, NULL::BIGINT, NULL::BIGINT FROM cl WHERE n_share > 1
            UNION ALL
            SELECT source_id, clip_id, fingerprint_uri, start_ms, end_ms FROM cl WHERE n_share = 1
        )
        SELECT b.* FROM blobs b
        WHERE NOT EXISTS (
            SELECT 1 FROM fp_indexed i WHERE i.source_id = b.source_id AND i.fingerprint_uri = b.fingerprint_uri
        )
        ORDER BY source_id, clip_id NULLS FIRST
        """
    ).fetchall()
    return [_Blob(*r) for r in rows]


def _read_blob(store: BlobStore, blob: _Blob) -> tuple[pa.Table, int] | None:
    from ..errors import NotFoundError
    from .frames import read_frame_hashes

    try:
        t = read_frame_hashes(store, blob.uri)
    except NotFoundError:
        return None
    shift = 0
    if blob.clip_id is not None and blob.start_ms and len(t):
        times = t.column("time_ms").to_numpy()
        lo, hi = int(times.min()), int(times.max())
        if lo < blob.start_ms - 1500 or hi > (blob.end_ms or hi) + 1500:
            shift = int(blob.start_ms)  # a clip-relative blob: move it to source time
    return t, shift


def _blob_rows(blob: _Blob, t: pa.Table, shift: int) -> pa.Table:
    """A fingerprint blob's frames as ``frame_hashes`` rows, in source time."""
    n = len(t)
    return pa.table(
        {
            "source_id": pa.array([blob.source_id] * n, pa.string()),
            "clip_id": pa.array([blob.clip_id] * n, pa.string()),
            "frame_index": t.column("frame_index").cast(pa.int64()),
            "time_ms": pa.array(t.column("time_ms").to_numpy().astype(np.int64) + shift, pa.int64()),
            "pdq": pa.array([bytes.fromhex(h) for h in t.column("pdq").to_pylist()], pa.binary()),
            "quality": t.column("quality").cast(pa.int32()),
            "fingerprint_uri": pa.array([blob.uri] * n, pa.string()),
        }
    )


def _descriptor_rows(con, source_ids: list[str]) -> pa.Table:
    """Descriptors of the given sources and of every clip of theirs, from ``frame_hashes``."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if not source_ids:
        return pa.table({})
    con.register("_fp_sids", pa.table({"source_id": pa.array(source_ids, pa.string())}))
    try:
        frames = con.sql(
            """SELECT f.source_id, f.clip_id, f.time_ms, f.pdq, f.quality FROM frame_hashes f
               JOIN _fp_sids USING (source_id) ORDER BY f.source_id, f.time_ms"""
        ).to_arrow_table()
        clips = con.execute(
            "SELECT c.source_id, c.clip_id, c.start_ms, c.end_ms FROM clips c JOIN _fp_sids USING (source_id)"
        ).fetchall()
    finally:
        con.unregister("_fp_sids")
    # Frames are ordered by source then time: each source is one contiguous run of rows.
    f_src = frames.column("source_id").to_pylist()
    f_clip = frames.column("clip_id").to_pylist()
    f_time = frames.column("time_ms").to_numpy().astype(np.int64)
    f_q = frames.column("quality").to_numpy().astype(np.int32)
    f_hash = _binary_to_array(frames.column("pdq"))
    runs: dict[str, tuple[int, int]] = {}
    for i, sid in enumerate(f_src):
        lo, _ = runs.get(sid, (i, i))
        runs[sid] = (lo, i + 1)
    clip_rows: dict[str, list[int]] = {}
    for i, cid in enumerate(f_clip):
        if cid is not None:
            clip_rows.setdefault(cid, []).append(i)
    rows: list[dict[str, Any]] = []

    def add(kind, item_id, sid, cid, start, end, idx: np.ndarray):
        usable = idx[f_q[idx] >= MIN_QUALITY]
        rows.append(
            {
                "item_id": item_id,
                "kind": kind,
                "source_id": sid,
                "clip_id": cid,
                "start_ms": start,
                "end_ms": end,
                "n_frames": int(len(idx)),
                "n_usable": int(len(usable)),
                "descriptor": majority_descriptor(f_hash[usable]) if len(usable) else None,
                "updated_at": now,
            }
        )

    for sid in source_ids:
        if sid not in runs:
            continue
        lo, hi = runs[sid]
        add("source", sid, sid, None, int(f_time[lo:hi].min()), int(f_time[lo:hi].max()), np.arange(lo, hi))
    for sid, cid, start, end in clips:
        lo, hi = runs.get(sid, (0, 0))
        t = f_time[lo:hi]
        a = lo + int(np.searchsorted(t, start, "left"))
        b = lo + int(np.searchsorted(t, end, "left"))
        idx = np.array(
            [i for i in range(a, b) if f_clip[i] in (None, cid)]
            + [i for i in clip_rows.get(cid, []) if not (a <= i < b)],
            np.int64,
        )
        add("clip", cid, sid, cid, int(start), int(end), idx)
    schema = pa.schema(
        [
            ("item_id", pa.string()),
            ("kind", pa.string()),
            ("source_id", pa.string()),
            ("clip_id", pa.string()),
            ("start_ms", pa.int64()),
            ("end_ms", pa.int64()),
            ("n_frames", pa.int32()),
            ("n_usable", pa.int32()),
            ("descriptor", pa.binary()),
            ("updated_at", pa.timestamp("us")),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def index_catalog(
    catalog: Catalog, store: BlobStore | str | os.PathLike, *, crop_variants: bool = True
) -> dict[str, Any]:
    """Load the fingerprint blobs of new sources and clips into ``frame_hashes`` and the index.

    Incremental and idempotent: a blob already loaded for a source is skipped, so running it twice
    does nothing the second time. Clips planned after their source was loaded get their descriptors.
    With ``crop_variants``, new shot thumbnails get their crop-variant hashes (:mod:`.crops`).
    Returns counts of what was added.
    """
    store = _store(store)
    t0 = time.perf_counter()
    with catalog.read() as con:
        pending = _pending_blobs(con)
        new_clips = con.execute(
            """SELECT DISTINCT c.source_id FROM clips c
               WHERE EXISTS (SELECT 1 FROM frame_hashes f WHERE f.source_id = c.source_id)
                 AND NOT EXISTS (SELECT 1 FROM fp_descriptors d WHERE d.kind = 'clip' AND d.item_id = c.clip_id)"""
        ).fetchall()
    tables, indexed, missing = [], [], []
    for blob in pending:
        got = _read_blob(store, blob)
        if got is None:
            missing.append(
                {"source_id": blob.source_id, "clip_id": blob.clip_id, "fingerprint_uri": blob.uri}
            )
            continue
        t, shift = got
        n = len(t)
        tables.append(_blob_rows(blob, t, shift))
        q = t.column("quality").to_numpy()
        indexed.append((blob.source_id, blob.clip_id, blob.uri, n, int((q >= MIN_QUALITY).sum()), shift))
    touched = sorted({b[0] for b in indexed} | {r[0] for r in new_clips})
    if not indexed and not touched:
        if crop_variants:
            from .crops import index_variants

            index_variants(catalog, store)
        idx = load_index(catalog, store)
        return {
            "new_blobs": 0,
            "new_frames": 0,
            "missing_blobs": missing,
            "sources": idx.n_sources,
            "frames": len(idx),
            "generation": idx.generation,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    new = pa.concat_tables(tables) if tables else None
    now = datetime.now(UTC).replace(tzinfo=None)
    replaced = 0
    with catalog.write() as con:
        old_gen = catalog_generation(con)
        gen = old_gen
        # A source analysed again has a new blob: its frames replace the old ones.
        for sid, cid, uri, *_ in indexed:
            where = "source_id = ? AND fingerprint_uri <> ? AND " + (
                "clip_id IS NULL" if cid is None else "clip_id = ?"
            )
            params = [sid, uri] + ([] if cid is None else [cid])
            n_old = con.execute(f"SELECT count(*) FROM frame_hashes WHERE {where}", params).fetchall()[0][0]
            if n_old:
                con.execute(f"DELETE FROM frame_hashes WHERE {where}", params)
                con.execute(f"DELETE FROM fp_indexed WHERE {where}", params)
                replaced += int(n_old)
        if new is not None and len(new):
            con.register("_fp_new", new)
            try:
                con.execute("INSERT INTO frame_hashes BY NAME SELECT * FROM _fp_new")
            finally:
                con.unregister("_fp_new")
            gen = bump_generation(con)
        for sid, cid, uri, n, n_ok, shift in indexed:
            con.execute(
                "INSERT INTO fp_indexed VALUES (?, ?, ?, ?, ?, ?, ?)", [sid, cid, uri, n, n_ok, shift, now]
            )
        desc = _descriptor_rows(con, touched)
        if len(desc):
            con.register("_fp_desc", desc)
            try:
                con.execute(
                    "DELETE FROM fp_descriptors WHERE item_id IN (SELECT item_id FROM _fp_desc) "
                    "OR source_id IN (SELECT DISTINCT source_id FROM _fp_desc)"
                )
                con.execute("INSERT INTO fp_descriptors BY NAME SELECT * FROM _fp_desc")
            finally:
                con.unregister("_fp_desc")
    if replaced:
        with catalog.write() as con:
            gen = bump_generation(con)
        rebuild_index(catalog, store)
    elif gen != old_gen:
        _update_persisted(catalog, store, old_gen, gen, new)
    if crop_variants:
        from .crops import index_variants

        index_variants(catalog, store)
    idx = load_index(catalog, store)
    return {
        "new_blobs": len(indexed),
        "new_frames": int(len(new)) if new is not None else 0,
        "missing_blobs": missing,
        "sources": idx.n_sources,
        "frames": len(idx),
        "generation": idx.generation,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _update_persisted(
    catalog: Catalog, store: BlobStore, old_gen: int, gen: int, new: pa.Table | None
) -> None:
    root = index_root(store)
    with _index_lock(root):
        cur = _CACHE.get(str(root))
        if cur is None or cur.generation != old_gen:
            cur = HashIndex.load(root)
        if cur is not None and cur.generation == old_gen and new is not None:
            ok = new.column("quality").to_numpy() >= MIN_QUALITY
            sub = new.filter(pa.array(ok))
            idx = cur.extend(
                _binary_to_array(sub.column("pdq")),
                sub.column("source_id").to_pylist(),
                sub.column("time_ms").to_numpy(),
                generation=gen,
            )
            idx.save(root)
            _CACHE[str(root)] = idx
            return
    rebuild_index(catalog, store)


def remove_sources(
    catalog: Catalog, store: BlobStore | str | os.PathLike, source_ids: set[str], generation: int
) -> None:
    """Drop the rows of ``source_ids`` from the persisted index (after they left ``frame_hashes``)."""
    store = _store(store)
    root = index_root(store)
    with _index_lock(root):
        cur = HashIndex.load(root)
        if cur is not None and cur.generation in (generation, generation - 1):
            idx = cur.without_sources(source_ids, generation=generation)
            idx.save(root)
            _CACHE[str(root)] = idx
            return
    rebuild_index(catalog, store)


def require_searchable(
    catalog: Catalog, store: BlobStore | str | os.PathLike, *, load: bool = True
) -> dict[str, Any] | None:
    """Make sure a search of the index covers every fingerprint the catalog references, or raise.

    With ``load``, the fingerprint blobs not indexed yet are loaded first (:func:`index_catalog`, whose
    counts are returned). What is still pending then cannot be read from ``store``: the store is the wrong
    one (or does not exist) or the blobs are gone. A search would miss those sources and could answer
    "no match" for footage the catalog holds, so :class:`~clipfactory.errors.NotFoundError` is raised,
    naming the store, the sources and the fix (the store the catalog recorded, when it is another one).
    """
    store = _store(store)
    with catalog.read() as con:
        pending = _pending_blobs(con)
    if pending and load and store.root.exists():
        loaded = index_catalog(catalog, store)
        with catalog.read() as con:
            pending = _pending_blobs(con)
    elif load and not pending:
        loaded = index_catalog(catalog, store)  # clip descriptors and crop variants still to do
    else:
        loaded = None
    if pending:
        _refuse(catalog, store, pending, stale=not load)
    return loaded


def searchable_index(
    catalog: Catalog, store: BlobStore | str | os.PathLike, *, load: bool = True
) -> tuple[HashIndex, dict[str, Any]]:
    """The index a lookup searches, covering every fingerprint the catalog references, or raise.

    On a catalog this process may write, :func:`require_searchable` loads what is pending into the
    catalog and the persisted index first. A read-only catalog (a published copy, a folder without write
    access) is never written: the fingerprint blobs it references but has not loaded are read from the
    store and searched in memory beside the catalog's frames, so the answer is as complete as after
    ``clipfactory fingerprints index``. The second value says which way it went, for the lookup report.
    """
    store = _store(store)
    if not load or catalog.writable:
        loaded = require_searchable(catalog, store, load=load)
        idx = load_index(catalog, store)
        return idx, {"read_only": False, "loaded_blobs": (loaded or {}).get("new_blobs", 0)}
    with catalog.read() as con:
        gen = catalog_generation(con)
        pending = _pending_blobs(con)
    tables, missing = [], []
    for blob in pending:
        got = _read_blob(store, blob) if store.root.exists() else None
        if got is None:
            missing.append(blob)
        else:
            tables.append(_blob_rows(blob, *got))
    if missing:
        _refuse(catalog, store, missing, stale=False)
    if not tables:
        return _index_in_memory(catalog, store, gen), {"read_only": True, "loaded_blobs": 0}
    new = pa.concat_tables(tables)
    # Frames a pending blob replaces (its item analysed again) leave; the rest of the catalog's stay.
    replaced = pa.table(
        {
            "source_id": pa.array([b.source_id for b in pending], pa.string()),
            "clip_id": pa.array([b.clip_id or "" for b in pending], pa.string()),
        }
    )
    with catalog.read() as con:
        con.register("_fp_replaced", replaced)
        try:
            hashes, sids, times = _frames_from_catalog(
                con,
                "AND NOT EXISTS (SELECT 1 FROM _fp_replaced r WHERE r.source_id = frame_hashes.source_id "
                "AND r.clip_id = coalesce(frame_hashes.clip_id, ''))",
            )
        finally:
            con.unregister("_fp_replaced")
    ok = new.filter(pa.array(new.column("quality").to_numpy() >= MIN_QUALITY))
    idx = HashIndex.empty(gen).extend(
        np.concatenate([hashes.reshape(-1, HASH_BYTES), _binary_to_array(ok.column("pdq")).reshape(-1, HASH_BYTES)]),
        sids + ok.column("source_id").to_pylist(),
        np.concatenate([times, ok.column("time_ms").to_numpy().astype(np.int64)]),
        generation=gen,
    )
    usable = [
        (sid, cid, int(t))
        for sid, cid, t, q in zip(
            new.column("source_id").to_pylist(),
            new.column("clip_id").to_pylist(),
            new.column("time_ms").to_pylist(),
            new.column("quality").to_pylist(),
            strict=True,
        )
        if q >= MIN_QUALITY
    ]
    overlay = {"replaced": {(b.source_id, b.clip_id) for b in pending}, "frames": usable}
    return idx, {"read_only": True, "loaded_blobs": len(tables), "overlay": overlay}


def _index_in_memory(catalog: Catalog, store: BlobStore, gen: int) -> HashIndex:
    """The index of ``frame_hashes`` at ``gen``: the persisted one when current, else built without saving."""
    root = index_root(store)
    cached = _CACHE.get(str(root))
    if cached is not None and cached.generation == gen:
        return cached
    idx = HashIndex.load(root)
    if idx is None or idx.generation != gen:
        with catalog.read() as con:
            hashes, sids, times = _frames_from_catalog(con)
        idx = HashIndex.empty(gen).extend(hashes, sids, times, generation=gen)
    _CACHE[str(root)] = idx
    return idx


def _refuse(catalog: Catalog, store: BlobStore, pending: list[_Blob], *, stale: bool) -> None:
    from ..catalog.meta import recorded_store, store_location
    from ..errors import NotFoundError

    recorded = recorded_store(catalog)
    sources = sorted({b.source_id for b in pending})
    named = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
    use_recorded = (
        f"give --store {recorded} (the store the catalog's runs used)"
        if recorded is not None and recorded != store_location(store.root)
        else None
    )
    if stale:
        why = f"the fingerprint index is stale: {len(pending)} fingerprint blobs of {named} are not loaded"
        fix = "load them with `clipfactory fingerprints index`; a lookup loads them unless told not to"
    elif not store.root.exists():
        why = f"the blob store does not exist, so the fingerprints of {named} cannot be loaded"
        fix = use_recorded or "give --store with the blob store the catalog's runs used"
    else:
        why = (
            f"{len(pending)} fingerprint blobs of {named} are not in this blob store, so the index "
            "cannot search those sources"
        )
        fix = use_recorded or (
            "give --store with the blob store the catalog's runs used, or restore the missing blobs"
        )
    raise NotFoundError(f"cannot search the catalog's footage: {why}", item=str(store.root), fix=fix)


def index_status(catalog: Catalog, store: BlobStore | str | os.PathLike) -> dict[str, Any]:
    root = index_root(store)
    with catalog.read() as con:
        gen = catalog_generation(con)
        n_rows, n_usable, n_src = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE quality >= {MIN_QUALITY}), count(DISTINCT source_id) FROM frame_hashes"
        ).fetchall()[0]
        pending = len(_pending_blobs(con))
    pointer = None
    if (root / "CURRENT").exists():
        pointer = json.loads((root / "CURRENT").read_text())
    return {
        "catalog_generation": gen,
        "index_generation": pointer["generation"] if pointer else None,
        "index_path": str(root),
        "frames": int(n_rows),
        "usable_frames": int(n_usable),
        "sources": int(n_src),
        "pending_blobs": pending,
        "up_to_date": bool(pointer and pointer["generation"] == gen and not pending),
    }
