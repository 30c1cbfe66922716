"""Finding cropped copies: PDQ crop variants of shot thumbnails, verified against the source media.

PDQ hashes the whole frame, so it does not survive cropping: removing 5% on every side moves a hash by
about 80 of 256 bits, and even a 1% difference in the crop costs about 25. A crop has to be matched by
hashing the catalog's frame *with the same crop*. Two steps make that affordable:

1. **Candidates.** Every shot thumbnail (the analysis pass stores one JPEG per shot, so no video is
   decoded) is hashed under :data:`CROP_VARIANTS`: centred crops of 1% to 12% a side in 1% steps, and
   left-and-right-only or top-and-bottom-only crops of 1% to 14% (aspect changes). These hashes form a
   small second index. A dense query that contains a shot's middle frame, cropped within about half a
   percent of one variant, finds that thumbnail (distance <= ``crop_max_distance``, 24 by default).
2. **Verification.** A thumbnail is one frame, so it is never the evidence. For each candidate, the
   source media around the candidate's time is decoded, every second of it is hashed with the candidate's
   crop, and the query is aligned against those hashes exactly as in an ordinary lookup (80% of the
   sparser side's frames, at least three). Only verified segments are reported, marked with the crop.

Limits: crops that are not symmetric (more on the left than on the right) are not found; candidates need
the source media (or a clip file) in the blob store; the thumbnail must be in the query.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Catalog
from ..storage import BlobStore
from .hashes import HASH_BYTES, MIN_QUALITY, hamming_matrix
from .index import HashIndex, _binary_to_array, _index_lock, _store

log = logging.getLogger(__name__)

#: (share cropped from the left and right, share cropped from top and bottom), by variant number.
CROP_VARIANTS: list[tuple[float, float]] = (
    [(round(c / 100, 2), round(c / 100, 2)) for c in range(1, 13)]
    + [(round(c / 100, 2), 0.0) for c in range(1, 15)]
    + [(0.0, round(c / 100, 2)) for c in range(1, 15)]
)
VARIANT_DIR = ("index", "crop_variants")
GEN_KEY = "variant_generation"


def crop_luma(y: np.ndarray, cx: float, cy: float) -> np.ndarray:
    h, w = y.shape
    dx, dy = int(round(w * cx)), int(round(h * cy))
    return np.ascontiguousarray(y[dy : h - dy, dx : w - dx])


def variant_hashes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PDQ of every crop variant of a luma image: ``(hashes, variant numbers, qualities)``."""
    from .sample import pdq_of_luma

    hs, tags, qs = [], [], []
    for k, (cx, cy) in enumerate(CROP_VARIANTS):
        h, q = pdq_of_luma(crop_luma(y, cx, cy))
        hs.append(np.frombuffer(h, np.uint8))
        tags.append(k)
        qs.append(q)
    return np.stack(hs), np.array(tags, np.int32), np.array(qs, np.int32)


def _jpeg_luma(data: bytes, width: int = 320) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("L")
    if img.width > width * 1.5:
        img = img.resize((width, max(2, round(img.height * width / img.width))))
    return np.asarray(img)


def _gen(con) -> int:
    row = con.execute("SELECT value FROM fp_index_meta WHERE key = ?", [GEN_KEY]).fetchall()
    return int(row[0][0]) if row else 0


def bump_variant_generation(con) -> int:
    g = _gen(con) + 1
    con.execute("INSERT OR REPLACE INTO fp_index_meta VALUES (?, ?)", [GEN_KEY, str(g)])
    return g


def _thumb_times(store: BlobStore, rows: list[tuple]) -> dict[tuple[str, str], int]:
    """Time of each (source, thumbnail): the middle of its shot from the analysis blob, else of its clips."""
    import json

    out: dict[tuple[str, str], int] = {}
    analyses: dict[str, dict] = {}
    for sid, thumb, shot_index, start, end, analysis_uri in rows:
        t = None
        if analysis_uri and shot_index is not None:
            if analysis_uri not in analyses:
                try:
                    analyses[analysis_uri] = json.loads(store.path_of(analysis_uri).read_bytes())
                except Exception:
                    analyses[analysis_uri] = {}
            shots = analyses[analysis_uri].get("shots") or []
            if 0 <= shot_index < len(shots):
                s = shots[shot_index]
                t = (int(s["start_ms"]) + int(s["end_ms"])) // 2
        out[(sid, thumb)] = int(t if t is not None else (start + end) // 2)
    return out


def index_variants(catalog: Catalog, store: BlobStore) -> int:
    """Hash the crop variants of shot thumbnails not seen yet (incremental). Returns how many thumbnails."""
    t = pending_variants(catalog, store)
    if t is None:
        return 0
    with catalog.write() as con:
        con.register("_fp_var", t)
        try:
            con.execute("INSERT INTO fp_variants BY NAME SELECT * FROM _fp_var")
        finally:
            con.unregister("_fp_var")
        bump_variant_generation(con)
    return len(set(zip(t.column("source_id").to_pylist(), t.column("thumb_uri").to_pylist(), strict=True)))


def pending_variants(catalog: Catalog, store: BlobStore) -> pa.Table | None:
    """``fp_variants`` rows for the shot thumbnails not hashed yet, or ``None`` when there are none."""
    with catalog.read() as con:
        rows = con.execute(
            """SELECT c.source_id, c.thumb_uri, min(c.shot_index), min(c.start_ms), max(c.end_ms), any_value(s.analysis_uri)
               FROM clips c JOIN sources s USING (source_id)
               WHERE c.thumb_uri IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM fp_variants v WHERE v.source_id = c.source_id AND v.thumb_uri = c.thumb_uri)
               GROUP BY c.source_id, c.thumb_uri ORDER BY 1, 4"""
        ).fetchall()
    if not rows:
        return None
    times = _thumb_times(store, rows)
    out = []
    for sid, thumb, *_ in rows:
        try:
            y = _jpeg_luma(store.path_of(thumb).read_bytes())
        except Exception as exc:  # a missing or unreadable thumbnail only costs crop robustness
            log.debug("no crop variants for %s: %s", thumb, exc)
            continue
        hs, tags, qs = variant_hashes(y)
        for h, tg, q in zip(hs, tags, qs, strict=True):
            cx, cy = CROP_VARIANTS[int(tg)]
            out.append((sid, thumb, times[(sid, thumb)], int(tg), cx, cy, h.tobytes(), int(q)))
    if not out:
        return None
    cols = list(zip(*out, strict=True))
    t = pa.table(
        {
            "source_id": pa.array(cols[0], pa.string()),
            "thumb_uri": pa.array(cols[1], pa.string()),
            "time_ms": pa.array(cols[2], pa.int64()),
            "variant": pa.array(cols[3], pa.int32()),
            "crop_x": pa.array(cols[4], pa.float64()),
            "crop_y": pa.array(cols[5], pa.float64()),
            "pdq": pa.array(cols[6], pa.binary()),
            "quality": pa.array(cols[7], pa.int32()),
            "indexed_at": pa.array([datetime.now(UTC).replace(tzinfo=None)] * len(out), pa.timestamp("us")),
        }
    )
    return t


_CACHE: dict[str, HashIndex] = {}


def load_variant_index(catalog: Catalog, store: BlobStore | str) -> HashIndex:
    """The crop-variant index for the catalog's current variant generation (rebuilt when it changed).

    A read-only catalog is never written and its store's index is not replaced: thumbnails it has not
    hashed yet are hashed in memory and searched beside the catalog's variants."""
    store = _store(store)
    if not catalog.writable:
        return _variant_index_in_memory(catalog, store)
    root = store.root.joinpath(*VARIANT_DIR)
    with catalog.read() as con:
        gen = _gen(con)
    cached = _CACHE.get(str(root))
    if cached is not None and cached.generation == gen:
        return cached
    idx = HashIndex.load(root)
    if idx is None or idx.generation != gen:
        with _index_lock(root):
            with catalog.read() as con:
                gen = _gen(con)
                tbl = _variant_rows(con)
            idx = _with_rows(HashIndex.empty(gen), tbl, gen)
            idx.save(root)
    _CACHE[str(root)] = idx
    return idx


def _variant_index_in_memory(catalog: Catalog, store: BlobStore) -> HashIndex:
    root = store.root.joinpath(*VARIANT_DIR)
    with catalog.read() as con:
        gen = _gen(con)
    idx = HashIndex.load(root)
    if idx is None or idx.generation != gen:
        with catalog.read() as con:
            tbl = _variant_rows(con)
        idx = _with_rows(HashIndex.empty(gen), tbl, gen)
    extra = pending_variants(catalog, store)
    if extra is None:
        return idx
    return _with_rows(idx, extra.filter(pa.array(extra.column("quality").to_numpy() >= MIN_QUALITY)), gen)


def _variant_rows(con) -> pa.Table:
    """The catalog's usable crop-variant hashes (``quality >= MIN_QUALITY``), in index order."""
    return con.sql(
        f"SELECT source_id, time_ms, variant, pdq FROM fp_variants WHERE quality >= {MIN_QUALITY} "
        "ORDER BY source_id, time_ms, variant"
    ).to_arrow_table()


def _with_rows(idx: HashIndex, tbl: pa.Table, gen: int) -> HashIndex:
    return idx.extend(
        _binary_to_array(tbl.column("pdq")),
        tbl.column("source_id").to_pylist(),
        tbl.column("time_ms").to_numpy(),
        generation=gen,
        tag=tbl.column("variant").to_numpy(),
    )


def _source_media(catalog: Catalog, store: BlobStore, source_id: str):
    rows = catalog.query("SELECT blob_uri FROM sources WHERE source_id = ?", [source_id])
    uri = rows[0]["blob_uri"] if rows else None
    if uri and store.exists(uri):
        return store.path_of(uri)
    return None


def cropped_hashes(
    path, start_ms: int, end_ms: int, cx: float, cy: float, *, every_ms: int = 1000, pdq_width: int = 320
) -> tuple[np.ndarray, np.ndarray]:
    """Hash ``path`` between two times, one frame every ``every_ms``, with the crop ``(cx, cy)``."""
    from ..media.decode import DecodeStats, PlaneReader, iter_frames
    from ..media.probe import _video_stream, open_container
    from .sample import pdq_of_luma

    hs, ts = [], []
    with open_container(path) as container:
        vs = _video_stream(container, str(path))
        vs.thread_type = "AUTO"
        tb = float(vs.time_base) if vs.time_base else 1 / 25
        start_pts = vs.start_time or 0
        fps = float(vs.average_rate or 25)
        if start_ms > 2000:
            container.seek(int((start_ms / 1000 - 1) / tb) + start_pts, stream=vs, backward=True)
        step = max(1, int(round((vs.codec_context.width or pdq_width) / pdq_width)))
        reader = None
        next_t = start_ms / 1000
        for frame in iter_frames(container, vs, DecodeStats()):
            if frame.pts is None:
                continue
            t = (frame.pts - start_pts) * tb
            if t * 1000 > end_ms:
                break
            if t + 0.5 / fps < next_t:
                continue
            if reader is None:
                reader = PlaneReader(frame.format.name, step)
            h, q = pdq_of_luma(crop_luma(reader.luma_u8(frame, step), cx, cy))
            if q >= MIN_QUALITY:
                hs.append(np.frombuffer(h, np.uint8))
                ts.append(int(round(t * 1000)))
            next_t = t + every_ms / 1000
    if not hs:
        return np.zeros((0, HASH_BYTES), np.uint8), np.zeros(0, np.int64)
    return np.stack(hs), np.array(ts, np.int64)


def crop_segments(
    catalog: Catalog,
    store: BlobStore,
    index: HashIndex,
    query,
    cfg,
    *,
    skip_sources: set[str] | frozenset = frozenset(),
) -> list:
    """Verified segments of cropped copies (see the module docstring). ``query``: usable hashes only.

    Sources in ``skip_sources`` (already matched without a crop) are not searched again.
    """
    from .match import align

    if not len(index) or not len(query.hashes):
        return []
    qi, ri, d = index.search(query.hashes, cfg.crop_max_distance)
    if not len(qi):
        return []
    cands: dict[tuple[str, int, int], tuple[int, int]] = {}
    for q, r, dist in zip(qi.tolist(), ri.tolist(), d.tolist(), strict=True):
        sid = index.sources[int(index.src[r])]
        if sid in skip_sources:
            continue
        key = (sid, int(index.time_ms[r]), int(index.tag[r]))
        if key not in cands or dist < cands[key][0]:
            cands[key] = (dist, int(query.times_ms[q]))
    ranked = sorted(cands.items(), key=lambda kv: kv[1][0])
    _, q_times_all = query.frame_times()
    q_times_all = np.sort(q_times_all)
    q_end = int(q_times_all[-1]) if len(q_times_all) else 0
    segments: list = []
    done: set[tuple[str, int]] = set()
    tried = 0
    for (sid, thumb_t, tag), (_dist, q_t) in ranked:
        if tried >= cfg.max_crop_candidates:
            break
        offset = thumb_t - q_t
        if (sid, offset // 2000) in done or any(
            x.source_id == sid and abs(x.offset_ms - offset) <= 2000 for x in segments
        ):
            continue
        done.add((sid, offset // 2000))
        path = _source_media(catalog, store, sid)
        if path is None:
            continue
        tried += 1
        cx, cy = CROP_VARIANTS[tag]
        window = int(cfg.crop_window_s * 1000)
        lo = max(0, offset, thumb_t - window)
        hi = min(offset + q_end + 1000, thumb_t + window)
        try:
            s_hashes, s_times = cropped_hashes(path, lo, hi, cx, cy)
        except Exception as exc:
            log.warning("crop verification of %s failed: %s", sid, exc)
            continue
        if not len(s_hashes):
            continue
        dm = hamming_matrix(query.hashes, s_hashes)
        a, b = np.nonzero(dm <= cfg.max_distance)
        if not len(a):
            continue
        segs = align(
            sid, query.frame[a], query.times_ms[a], s_times[b], dm[a, b], q_times_all, np.sort(s_times), cfg
        )
        for s in segs:
            s.edit = {"kind": "crop", "crop_x": cx, "crop_y": cy}
        segments += segs
    return segments


def variant_status(catalog: Catalog) -> dict[str, Any]:
    with catalog.read() as con:
        n, thumbs = con.execute("SELECT count(*), count(DISTINCT thumb_uri) FROM fp_variants").fetchall()[0]
        return {"variant_hashes": int(n), "thumbnails": int(thumbs), "generation": _gen(con)}
