"""Fingerprints: recall over edits, false matches, lookup at scale, takedown at scale.

Parts (each in a fresh subprocess, so that peak memory is that part's own):

* **recall**: real media (``../shared/data/media``) in a catalog through the real analysis pass; each
  file is edited (mpeg4 at a low bitrate, half size, letterbox, letterbox at a low bitrate or after a
  black leader, pillarbox, mirrored, mirrored and letterboxed or at a low bitrate, a 10% crop on every
  side, sub-clips of 3 s and more, a re-encoded half-size sub-clip) and looked up. Recall = share of
  edits whose source is found, also per edit. Target >= 0.95 (the crop is reported on its own; see
  docs/fingerprints.md).
* **false**: 10,000 queries of footage that is not in the catalog (frames of held-out real videos,
  synthetic footage, noise images; windows of 2 to 20 s of dense frames, and unordered mixtures), each
  frame with its mirrored hash as a lookup hashes it, are matched against the same catalog plus
  ``--synthetic`` synthetic clip fingerprints. Target: fewer than 1 false match in 10,000.
* **scale**: ``--synthetic`` (default 100,000) synthetic clip fingerprints beside the real sources and
  the full Big Buck Bunny film; a 5-minute query (a re-encoded half-size excerpt of the film) is looked
  up. Timed: decode+hash (excluded from the target), cold index load, the matching (median of 5), the
  catalog resolution. Targets: matching <= 1 s, peak RSS <= 2 GB.
* **takedown**: a build of ``--clips`` (default 10,000) tiny synthetic clips over 100 sources; one source
  is taken down (new build version, shard rewrites, tombstone, receipt), then ``verify`` scans the new
  version. Target: takedown <= 60 s and verify clean.

    python bench/bench_fingerprints.py [--parts recall,false,scale,takedown] [--synthetic N] [--clips N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The synthetic media and the copy edits are shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MEDIA = SHARED / "media"
CATALOG_MEDIA = [
    "bikes.mp4",
    "bbb_5s.mp4",
    "trailer_bbb.mp4",
    "box.mp4",
    "vtest.avi",
    "carphone_pristine.mp4",
]
HELD_OUT = ["cup.mp4", "Megamind_bugy.avi"]  # carphone_distorted is a copy of carphone_pristine


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def find_bbb() -> str | None:
    try:
        out = subprocess.run(
            ["bash", str(SHARED / "get-bbb.sh")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=600,
        ).stdout
        return out.strip().splitlines()[-1]
    except Exception:
        return None


# -- catalog -----------------------------------------------------------------------------------------
def add_real(catalog, store, path: Path, license: str = "CC-BY-4.0") -> str:
    from datetime import UTC, datetime

    from clipfactory import ids
    from clipfactory.catalog import upsert_records
    from clipfactory.fingerprints.frames import write_frame_hashes
    from clipfactory.media.analyse import analyse
    from clipfactory.records import ClipRecord, SourceRecord

    uri, size = store.put_file(path)
    sha = uri.split(":")[-1]
    sid = ids.content_source_id(sha)
    res = analyse(path)
    fp = write_frame_hashes(store, [(p.frame_index, p.time_ms, p.hash_hex, p.quality) for p in res.pdq])
    src = SourceRecord(
        source_id=sid,
        platform="owned",
        content_sha256=sha,
        blob_uri=uri,
        content_license=license,
        title=path.name,
        size_bytes=size,
        duration_ms=res.duration_ms,
        width=res.probe.width,
        height=res.probe.height,
        fingerprint_uri=fp,
        analysis_uri=store.put_bytes(res.to_json().encode()),
        acquired_at=datetime.now(UTC).isoformat(),
    )
    clips = [
        ClipRecord(
            clip_id=ids.clip_id(sid, s.start_ms, s.end_ms),
            source_id=sid,
            start_ms=s.start_ms,
            end_ms=s.end_ms,
            shot_index=s.index,
            thumb_uri=store.put_bytes(s.thumbnail) if s.thumbnail else None,
            fingerprint_uri=fp,
        )
        for s in res.shots
        if s.end_ms > s.start_ms
    ]
    with catalog.write() as con:
        upsert_records(con, [src, *clips])
    return sid


def add_synthetic(catalog, n: int, seed: int = 7) -> int:
    """``n`` synthetic clips (one source each), 6-12 frame hashes at 1 fps drifting ~20 bits a frame."""
    import pyarrow as pa

    from clipfactory.fingerprints.index import bump_generation

    rng = np.random.default_rng(seed)
    lens = rng.integers(6, 13, n)
    total = int(lens.sum())
    hashes = np.empty((total, 32), np.uint8)
    owner = np.repeat(np.arange(n), lens)
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    pos = np.arange(total) - np.repeat(first, lens)
    base = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    hashes[:] = base[owner]
    # cumulative drift: flip 20 random bits per step
    bits = np.unpackbits(hashes, axis=1)
    for step in range(1, 13):
        rows = np.flatnonzero(pos >= step)
        flips = rng.integers(0, 256, (len(rows), 20))
        for k in range(20):
            bits[rows, flips[:, k]] ^= 1
    hashes = np.packbits(bits, axis=1)
    sids = [f"synth:{i:06d}" for i in range(n)]
    frames = pa.table(
        {
            "source_id": pa.array([sids[i] for i in owner], pa.string()),
            "clip_id": pa.array([None] * total, pa.string()),
            "frame_index": pa.array(pos * 25, pa.int64()),
            "time_ms": pa.array(pos * 1000, pa.int64()),
            "pdq": pa.array([h.tobytes() for h in hashes], pa.binary()),
            "quality": pa.array(np.full(total, 100), pa.int32()),
            "fingerprint_uri": pa.array([None] * total, pa.string()),
        }
    )
    sources = pa.table(
        {"source_id": sids, "platform": ["synthetic"] * n, "content_license": ["CC-BY-4.0"] * n}
    )
    clips = pa.table(
        {
            "clip_id": [f"synthclip{i:011d}" for i in range(n)],
            "source_id": sids,
            "start_ms": pa.array(np.zeros(n, np.int64)),
            "end_ms": pa.array(lens * 1000),
        }
    )
    with catalog.write() as con:
        for name, t in (("_b_f", frames), ("_b_s", sources), ("_b_c", clips)):
            con.register(name, t)
        con.execute("INSERT INTO frame_hashes BY NAME SELECT * FROM _b_f")
        con.execute("INSERT INTO sources BY NAME SELECT * FROM _b_s")
        con.execute("INSERT INTO clips BY NAME SELECT * FROM _b_c")
        bump_generation(con)
    return total


def build_catalog(work: Path, n_synth: int, with_bbb: bool) -> dict:
    from clipfactory.catalog import Catalog
    from clipfactory.fingerprints.index import index_catalog
    from clipfactory.storage import BlobStore

    cat = Catalog(work / "cat.duckdb")
    store = BlobStore(work / "store")
    ids_ = {}
    t0 = time.perf_counter()
    for name in CATALOG_MEDIA:
        if (MEDIA / name).exists():
            ids_[name] = add_real(cat, store, MEDIA / name)
    bbb = find_bbb() if with_bbb else None
    if bbb:
        ids_["bbb.mp4"] = add_real(cat, store, Path(bbb))
    t_real = time.perf_counter() - t0
    n_frames = add_synthetic(cat, n_synth) if n_synth else 0
    t1 = time.perf_counter()
    info = index_catalog(cat, store)
    return {
        "ids": ids_,
        "bbb": bbb,
        "synthetic_clips": n_synth,
        "synthetic_frames": n_frames,
        "index_frames": info["frames"],
        "analyse_real_s": round(t_real, 1),
        "index_build_s": round(time.perf_counter() - t1, 2),
    }


# -- parts ---------------------------------------------------------------------------------------------
EDITS = {
    "mpeg4_200k": dict(codec="mpeg4", bit_rate=200_000),
    "half_size": dict(scale=0.5),
    "letterbox": dict(letterbox=0.12),
    "letterbox_mpeg4": dict(bars=(0.12, 0.12, 0, 0), codec="mpeg4", bit_rate=250_000),
    "letterbox_black_leader": dict(bars=(0.12, 0.12, 0, 0), leader_s=3.0),
    "pillarbox": dict(bars=(0, 0, 0.15, 0.15)),
    "mirror": dict(mirror=True),
    "mirror_letterbox": dict(mirror=True, bars=(0.12, 0.12, 0, 0)),
    "mirror_mpeg4": dict(mirror=True, codec="mpeg4", bit_rate=250_000),
    "sub_3s": dict(start_s=1.7, end_s=4.7),
    "sub_5s_mpeg4_half": dict(start_s=2.35, end_s=7.35, codec="mpeg4", bit_rate=250_000, scale=0.5),
    "crop_10pct": dict(crop=(0.1, 0.1, 0.1, 0.1)),
}
#: Edits made with tests/media_edits.py (mirroring, bars in shares of the picture, a black leader).
EDIT_COPY_KEYS = {"mirror", "bars", "leader_s", "frame"}


def _duration(path: Path) -> float:
    from clipfactory.media.probe import probe

    return (probe(path).duration_ms or 0) / 1000.0


def part_recall(work: Path, n_synth: int) -> dict:
    from media_edits import edit_copy
    from media_synth import transform

    from clipfactory.catalog import Catalog
    from clipfactory.fingerprints.lookup import lookup
    from clipfactory.storage import BlobStore

    info = build_catalog(work, n_synth, with_bbb=False)
    cat, store = Catalog(work / "cat.duckdb"), BlobStore(work / "store")
    rows = []
    for name, sid in info["ids"].items():
        duration = _duration(MEDIA / name)
        for edit, kw in EDITS.items():
            kw = dict(kw)
            if "start_s" in kw:  # sub-clips of at least 3 s that fit in the file
                length = kw["end_s"] - kw["start_s"]
                if duration < length + 0.2:
                    continue
                kw["start_s"] = min(kw["start_s"], duration - length - 0.1)
                kw["end_s"] = kw["start_s"] + length
            make = edit_copy if EDIT_COPY_KEYS & set(kw) else transform
            q = make(MEDIA / name, work / f"q_{edit}.mp4", **kw)
            res = lookup(cat, q, store=store)
            found = sid in [m["source_id"] for m in res["matches"]]
            conf = next((m["confidence"] for m in res["matches"] if m["source_id"] == sid), None)
            rows.append(
                {
                    "media": name,
                    "edit": edit,
                    "found": found,
                    "confidence": conf,
                    "others": sorted({m["source_id"] for m in res["matches"]} - {sid}),
                    "mirrored": any(
                        s.get("mirrored")
                        for m in res["matches"]
                        if m["source_id"] == sid
                        for s in m["segments"]
                    ),
                    "decode_s": res["timings"]["decode_s"],
                    "match_s": res["timings"]["match_s"],
                }
            )
    by_edit = {}
    for e in EDITS:
        r = [x for x in rows if x["edit"] == e]
        confs = [x["confidence"] for x in r if x["found"]]
        by_edit[e] = {
            "found": sum(x["found"] for x in r),
            "total": len(r),
            "recall": round(sum(x["found"] for x in r) / max(1, len(r)), 4),
            "min_confidence": min(confs) if confs else None,
            "found_mirrored": sum(x["mirrored"] for x in r),
        }
    core = [x for x in rows if x["edit"] != "crop_10pct"]
    return {
        "catalog": info,
        "by_edit": by_edit,
        "recall_without_crop": round(sum(x["found"] for x in core) / len(core), 4),
        "recall_all": round(sum(x["found"] for x in rows) / len(rows), 4),
        "misses": [x for x in rows if not x["found"]],
        "other_sources_matched": [x for x in rows if x["others"]],
        "peak_rss_mb": round(peak_rss_mb()),
    }


def _pools(work: Path, seed: int = 11) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Dense hash sequences of footage that is not in the catalog: (hashes, mirrored hashes, times)."""
    from media_synth import synth_frames

    from clipfactory.fingerprints.sample import pdq_and_mirror_of_luma, sample_file

    pools = []
    for name in HELD_OUT:
        if (MEDIA / name).exists():
            q = sample_file(MEDIA / name, mirror=True).usable()
            plain, mirrored = q.select(~q.mirrored), q.select(q.mirrored)  # one row each per frame image
            pools.append((plain.hashes, mirrored.hashes, plain.times_ms))
    rng = np.random.default_rng(seed)
    for s in range(24):
        hs, ms, ts = [], [], []
        for k, f in enumerate(synth_frames(10.0, fps=25, size=(320, 240), seed=5000 + s)):
            y = (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]).astype(np.uint8)
            h, hm, q = pdq_and_mirror_of_luma(y)
            if q >= 50:
                hs.append(np.frombuffer(h, np.uint8))
                ms.append(np.frombuffer(hm, np.uint8))
                ts.append(k * 40)
        pools.append((np.stack(hs), np.stack(ms), np.array(ts)))
    hs, ms = [], []
    for _ in range(600):
        kind = rng.integers(0, 3)
        if kind == 0:
            img = rng.integers(0, 256, (180, 320), dtype=np.uint8)
        elif kind == 1:
            small = rng.integers(0, 256, (rng.integers(3, 20), rng.integers(3, 30)), dtype=np.uint8)
            img = np.kron(small, np.ones((12, 12), np.uint8))
        else:
            x = np.linspace(0, rng.uniform(1, 20), 320)[None, :]
            yv = np.linspace(0, rng.uniform(1, 20), 180)[:, None]
            img = (127 + 120 * np.sin(x + rng.uniform(0, 6)) * np.cos(yv * rng.uniform(0.2, 2))).astype(
                np.uint8
            )
        h, hm, q = pdq_and_mirror_of_luma(img)
        if q >= 50:
            hs.append(np.frombuffer(h, np.uint8))
            ms.append(np.frombuffer(hm, np.uint8))
    pools.append((np.stack(hs), np.stack(ms), np.arange(len(hs)) * 40))
    return pools


def part_false(work: Path, n_synth: int, n_queries: int) -> dict:
    from clipfactory.catalog import Catalog
    from clipfactory.fingerprints.crops import crop_segments, load_variant_index
    from clipfactory.fingerprints.index import load_index
    from clipfactory.fingerprints.lookup import match_hashes
    from clipfactory.fingerprints.match import MatchConfig
    from clipfactory.fingerprints.sample import MIRRORED, QueryHashes
    from clipfactory.storage import BlobStore

    info = build_catalog(work, n_synth, with_bbb=False)
    cat, store = Catalog(work / "cat.duckdb"), BlobStore(work / "store")
    index = load_index(cat, store)
    variants = load_variant_index(cat, store)
    n_crop_checked = 0
    pools = _pools(work)
    rng = np.random.default_rng(3)
    cfg = MatchConfig()
    false, frames_total = [], 0
    t0 = time.perf_counter()
    for i in range(n_queries):
        if i % 4 == 3:  # an unordered mixture of frames from several pools
            parts = [pools[j] for j in rng.choice(len(pools), size=3, replace=False)]
            picks = [(p, rng.integers(0, len(p[0]), 30)) for p in parts]
            hs = np.concatenate([p[0][k] for p, k in picks])
            ms = np.concatenate([p[1][k] for p, k in picks])
            ts = np.arange(len(hs)) * 40
        else:
            h, m, t = pools[int(rng.integers(0, len(pools)))]
            w = int(rng.integers(50, 500))
            s = int(rng.integers(0, max(1, len(h) - w)))
            hs, ms, ts = h[s : s + w], m[s : s + w], t[s : s + w] - t[s]
        frames_total += len(hs)
        n = len(hs)
        q = QueryHashes(  # every frame plain and mirrored, as lookup hashes it (mirror_search)
            "bench",
            int(ts[-1]) + 40,
            n,
            np.concatenate([ts, ts]).astype(np.int64),
            np.tile(np.arange(n, dtype=np.int32), 2),
            np.concatenate([hs, ms]),
            np.full(2 * n, 100, np.int32),
            np.repeat(np.array([0, MIRRORED], np.int8), n),
            info={"fps": 25.0},
        )
        segs = match_hashes(index, q, cfg)
        if not segs:
            segs = crop_segments(cat, store, variants, q.select(~q.mirrored), cfg)
            n_crop_checked += 1
        if segs:
            false.append(
                {
                    "query": i,
                    "sources": sorted({s.source_id for s in segs})[:3],
                    "confidence": max(s.confidence for s in segs),
                    "mirrored": any(s.mirrored for s in segs),
                }
            )
    dt = time.perf_counter() - t0
    return {
        "catalog": {k: v for k, v in info.items() if k != "ids"},
        "queries": n_queries,
        "false_matches": len(false),
        "false_matches_mirrored": sum(f["mirrored"] for f in false),
        "rate": len(false) / n_queries,
        "examples": false[:5],
        "mean_query_frames": round(frames_total / n_queries, 1),
        "crop_variant_hashes": len(variants),
        "queries_crop_searched": n_crop_checked,
        "index_frames": len(index),
        "match_ms_per_query": round(1000 * dt / n_queries, 2),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def part_scale(work: Path, n_synth: int) -> dict:
    from media_synth import synth_video, transform

    from clipfactory.catalog import Catalog
    from clipfactory.fingerprints import index as index_mod
    from clipfactory.fingerprints.lookup import describe, match_hashes
    from clipfactory.fingerprints.match import MatchConfig
    from clipfactory.fingerprints.sample import sample_file
    from clipfactory.storage import BlobStore

    info = build_catalog(work, n_synth, with_bbb=True)
    cat, store = Catalog(work / "cat.duckdb"), BlobStore(work / "store")
    if info["bbb"]:
        query = transform(
            info["bbb"],
            work / "query5min.mp4",
            start_s=120.0,
            end_s=420.0,
            scale=0.5,
            codec="mpeg4",
            bit_rate=800_000,
        )
        expect = info["ids"]["bbb.mp4"]
    else:  # no film: five minutes of synthetic footage (nothing to find, timing only)
        query = synth_video(work / "query5min.mp4", 300.0, size=(320, 240), seed=77)
        expect = None
    cfg = MatchConfig()
    t0 = time.perf_counter()
    q = sample_file(query, max_frames=cfg.max_query_frames, mirror=cfg.mirror_search).usable()
    t_sample = time.perf_counter() - t0
    index_mod._CACHE.clear()
    t1 = time.perf_counter()
    idx = index_mod.HashIndex.load(index_mod.index_root(store))
    t_load = time.perf_counter() - t1
    times, segs = [], []
    for _ in range(5):
        t2 = time.perf_counter()
        segs = match_hashes(idx, q, cfg)
        times.append(time.perf_counter() - t2)
    plain_q = q.select(~q.mirrored)  # the same query without its mirrored hashes
    plain_times = []
    for _ in range(5):
        t2 = time.perf_counter()
        match_hashes(idx, plain_q, cfg)
        plain_times.append(time.perf_counter() - t2)
    # Baselines: PyAV decode-only of the query (the floor under decode+hash), and vPDQ's linear scan
    # (every query hash against every catalog hash), timed on 256 query hashes and scaled up.
    import av

    from clipfactory.fingerprints.hashes import hamming_matrix

    tb = time.perf_counter()
    with av.open(str(query)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        for _ in c.decode(vs):
            pass
    t_decode_only = time.perf_counter() - tb
    sample = plain_q.hashes[:256]
    tl = time.perf_counter()
    for i in range(0, len(idx.hashes), 200_000):
        hamming_matrix(sample, idx.hashes[i : i + 200_000])
    t_linear = (time.perf_counter() - tl) * len(plain_q.hashes) / max(1, len(sample))
    t3 = time.perf_counter()
    matches = describe(cat, segs, query=q)
    t_resolve = time.perf_counter() - t3
    top = matches[0] if matches else None
    return {
        "catalog": {k: v for k, v in info.items() if k != "ids"},
        "query_frames": q.n_usable_frames,
        "query_hashes": int(len(q.hashes)),
        "query_duration_s": round(q.duration_ms / 1000, 1),
        "decode_hash_s": round(t_sample, 2),
        "index_load_s": round(t_load, 3),
        "decode_only_s": round(t_decode_only, 2),
        "decode_hash_over_decode_only": round(t_sample / t_decode_only, 2),
        "linear_scan_s_estimate": round(t_linear, 1),
        "match_s_median": round(statistics.median(times), 3),
        "match_s_all": [round(x, 3) for x in times],
        "match_s_median_without_mirror": round(statistics.median(plain_times), 3),
        "linear_scan_over_index": round(t_linear / statistics.median(plain_times), 1),
        "resolve_s": round(t_resolve, 3),
        "found": (top is not None and top["source_id"] == expect) if expect else None,
        "top_confidence": top["confidence"] if top else None,
        "segments": len(top["segments"]) if top else 0,
        "mirrored_segments": sum(bool(s.get("mirrored")) for s in top["segments"]) if top else 0,
        "peak_rss_mb": round(peak_rss_mb()),
    }


def _tiny_clip(path: Path, rng, frames: int = 6) -> None:
    from media_synth import _encode

    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = np.kron(small, np.ones((12, 12, 1), np.uint8))
    imgs = [np.roll(base, k * 2, axis=1) for k in range(frames)]
    _encode(path, imgs, fps=25.0, codec="mpeg4", bit_rate=None, width=96, height=72)


def part_takedown(work: Path, n_clips: int) -> dict:
    import hashlib

    import pyarrow as pa
    from media_synth import synth_video

    from clipfactory import ids
    from clipfactory.catalog import Catalog, upsert_records
    from clipfactory.factory.export import ShardMember, assign_shards, write_shard
    from clipfactory.fingerprints.frames import write_frame_hashes
    from clipfactory.fingerprints.index import index_catalog
    from clipfactory.fingerprints.takedown import takedown
    from clipfactory.fingerprints.verify import verify_build
    from clipfactory.media.analyse import analyse
    from clipfactory.records import ClipRecord, SourceRecord
    from clipfactory.storage import BlobStore

    cat, store = Catalog(work / "cat.duckdb"), BlobStore(work / "store")
    rng = np.random.default_rng(5)
    n_sources = 100
    per = n_clips // n_sources
    t0 = time.perf_counter()
    # one real (small) source media for the source that will be taken down; the rest are metadata only
    victim_video = synth_video(work / "victim.mp4", 6.0, size=(160, 120), seed=9)
    res = analyse(victim_video)
    vuri, _ = store.put_file(victim_video)
    vfp = write_frame_hashes(store, [(p.frame_index, p.time_ms, p.hash_hex, p.quality) for p in res.pdq])
    records, clip_recs = [], []
    tmp = work / "tiny.mp4"
    for s in range(n_sources):
        sid = f"bench:{s:03d}"
        records.append(
            SourceRecord(
                source_id=sid,
                platform="owned",
                content_license="CC-BY-4.0",
                blob_uri=vuri if s == 0 else None,
                fingerprint_uri=vfp if s == 0 else None,
                content_sha256=vuri.split(":")[-1] if s == 0 else None,
            )
        )
        for k in range(per):
            _tiny_clip(tmp, rng)
            uri, size = store.put_file(tmp)
            c = ClipRecord(
                clip_id=ids.clip_id(sid, k * 1000, k * 1000 + 240),
                source_id=sid,
                start_ms=k * 1000,
                end_ms=k * 1000 + 240,
                blob_uri=uri,
                content_sha256=uri.split(":")[-1],
                size_bytes=size,
            )
            clip_recs.append(c)
    with cat.write() as con:
        upsert_records(con, records + clip_recs)
    t_make = time.perf_counter() - t0
    t1 = time.perf_counter()
    out_dir = work / "builds" / "big" / "v1"
    out_dir.mkdir(parents=True)
    rows = []
    for shard, group in assign_shards(clip_recs, 100):
        members = []
        for c in group:
            js = json.dumps(
                {"clip_id": c.clip_id, "source_id": c.source_id, "sha256": c.content_sha256}
            ).encode()
            members.append(ShardMember(c.clip_id, {"mp4": store.path_of(c.blob_uri), "json": js}))
            rows.append(
                {
                    "build_id": "big-v1",
                    "clip_id": c.clip_id,
                    "source_id": c.source_id,
                    "shard": shard,
                    "member_key": c.clip_id,
                    "mp4_sha256": c.content_sha256,
                    "json_sha256": hashlib.sha256(js).hexdigest(),
                    "jpg_sha256": None,
                }
            )
        write_shard(out_dir / shard, members)
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_pylist(
            [{"clip_id": r["clip_id"], "shard": r["shard"], "source_id": r["source_id"]} for r in rows]
        ),
        out_dir / "index.parquet",
    )
    n_shards = len({r["shard"] for r in rows})
    (out_dir / "build.json").write_text(
        json.dumps(
            {
                "build_id": "big-v1",
                "name": "big",
                "version": 1,
                "shards": [{"name": n} for n in sorted({r["shard"] for r in rows})],
                "index": "index.parquet",
                "n_clips": len(rows),
            }
        )
    )
    with cat.write() as con:
        con.execute(
            "INSERT INTO builds VALUES ('big-v1', 'big', 1, 'research', 'complete', now(), ?, ?, ?, NULL, '{}')",
            [str(out_dir), len(rows), n_shards],
        )
        con.register("_m", pa.Table.from_pylist(rows))
        con.execute("INSERT INTO build_members BY NAME SELECT * FROM _m")
    index_catalog(cat, store)
    t_build = time.perf_counter() - t1
    t2 = time.perf_counter()
    receipt = takedown(cat, store=store, source_id="bench:000", reason="benchmark")
    t_td = time.perf_counter() - t2
    t3 = time.perf_counter()
    v = verify_build(cat, "big-v2", frames_per_clip=3)
    t_verify = time.perf_counter() - t3
    b = receipt["builds"][0]
    return {
        "clips": len(rows),
        "shards": n_shards,
        "make_clips_s": round(t_make, 1),
        "build_s": round(t_build, 1),
        "takedown_s": round(t_td, 2),
        "removed_members": b["removed_members"],
        "affected_shards": len(b["affected_shards"]),
        "new_build": b["new_build_id"],
        "verify_s": round(t_verify, 2),
        "verify_ok": v["ok"],
        "verify_members": v["members_scanned"],
        "verify_frames": v["frames_checked"],
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_part(name: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-fp-{name}-") as d:
        work = Path(d)
        if name == "recall":
            return part_recall(work, args.synthetic_recall)
        if name == "false":
            return part_false(work, args.synthetic, args.queries)
        if name == "scale":
            return part_scale(work, args.synthetic)
        if name == "takedown":
            return part_takedown(work, args.clips)
    raise SystemExit(f"unknown part {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="recall,false,scale,takedown")
    ap.add_argument(
        "--synthetic", type=int, default=100_000, help="synthetic clip fingerprints (false, scale)"
    )
    ap.add_argument(
        "--synthetic-recall", type=int, default=0, help="synthetic clip fingerprints in the recall part"
    )
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_part(args.child, args), default=str))
        return
    results = {}
    for part in args.parts.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            part,
            "--synthetic",
            str(args.synthetic),
            "--synthetic-recall",
            str(args.synthetic_recall),
            "--queries",
            str(args.queries),
            "--clips",
            str(args.clips),
        ]
        t0 = time.perf_counter()
        out = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
        if out.returncode:
            results[part] = {"error": out.stderr[-3000:]}
        else:
            results[part] = json.loads(out.stdout.strip().splitlines()[-1])
        results[part]["wall_s"] = round(time.perf_counter() - t0, 1)
        if not args.json:
            print(f"== {part} ==\n{json.dumps(results[part], indent=1, default=str)}", flush=True)
    if args.json:
        print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
