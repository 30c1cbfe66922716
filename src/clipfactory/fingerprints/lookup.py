"""Creator lookup, "was my work used?": which sources, clips and builds hold the footage of a file.

:func:`lookup` hashes the query file (:func:`~clipfactory.fingerprints.sample.sample_file`), searches the
fingerprint index, aligns the matches per source (:mod:`~clipfactory.fingerprints.match`), and resolves
each accepted segment to the catalog: the source (platform, URL, uploader, licence, datasets), the clips
whose spans overlap it, and the builds that ship those clips (with shard and member key), each with
the licence and policy decision under which it was included. An exact copy (same sha256) is reported
with confidence 1.0 even when it has no usable frames.

Answers, never false matches:

* a file that is not video raises :class:`~clipfactory.media.probe.MediaProbeError` (one clear line in
  the CLI, exit code 1);
* a video without one frame of PDQ quality >= 50 (all black, a flat colour) answers
  ``status: "no_usable_frames"``;
* otherwise ``status`` is ``"matched"`` or ``"no_match"``.

Copies are found through re-encodes, resizes, sub-clips, black bars (the query is hashed with and
without them), mirroring (``mirror_search``: the query's mirrored hashes, aligned on their own; segments
say ``mirrored``) and centred crops (``crop_search``, :mod:`~clipfactory.fingerprints.crops`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Catalog, dict_rows, table_columns
from ..errors import ConfigError, NotFoundError
from ..ids import sha256_file
from ..storage import BlobStore
from .hashes import hamming_matrix
from .index import HashIndex, searchable_index
from .match import MatchConfig, Segment, align
from .sample import QueryHashes, sample_file

log = logging.getLogger(__name__)


def _config(config: MatchConfig | dict | None) -> MatchConfig:
    if config is None:
        return MatchConfig()
    if isinstance(config, MatchConfig):
        return config
    try:
        return MatchConfig(**config)
    except Exception as exc:
        raise ConfigError(f"invalid fingerprint match settings: {exc}", item="fingerprints.match") from exc


def resolve_store(settings=None, store: BlobStore | str | os.PathLike | None = None) -> BlobStore:
    if store is not None:
        return store if isinstance(store, BlobStore) else BlobStore(store)
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    return BlobStore(settings.store)


#: Stage one leaves out a query hash within this many bits of the last one it kept of the same variant
#: (plain, without bars, mirrored): a still or slow stretch probes the index once, not at every frame.
CANDIDATE_THIN_BITS = 4


def probe_rows(query: QueryHashes, bits: int = CANDIDATE_THIN_BITS) -> np.ndarray:
    """Which hashes of ``query`` stage one probes the index with (``bool[k]``, see
    :data:`CANDIDATE_THIN_BITS`). A copy's source still has hits, from the kept hashes within 4 bits of
    the others; stage two compares every hash."""
    keep = np.zeros(len(query.hashes), bool)
    raw = np.ascontiguousarray(query.hashes, np.uint8).tobytes()
    last: dict[int, int] = {}
    for i, v in enumerate(query.variant.tolist()):
        x = int.from_bytes(raw[32 * i : 32 * i + 32], "big")
        p = last.get(v)
        if p is None or (x ^ p).bit_count() > bits:
            keep[i] = True
            last[v] = x
    return keep


def candidate_sources(index: HashIndex, query: QueryHashes, cfg: MatchConfig) -> list[int]:
    """Stage one: sources with frames near the query's, most hits first (:meth:`HashIndex.search`
    with single-bucket probes, from the hashes :func:`probe_rows` keeps)."""
    qi, ri, _d = index.search(query.hashes[probe_rows(query)], cfg.max_distance, exact=False)
    if not len(qi):
        return []
    hits = np.bincount(index.src[ri], minlength=len(index.sources))
    found = np.flatnonzero(hits)
    found = found[np.argsort(-hits[found], kind="stable")]
    return [int(s) for s in found[: cfg.max_candidates]]


def match_hashes(index: HashIndex, query: QueryHashes, cfg: MatchConfig) -> list[Segment]:
    """The matching part of a lookup: candidate sources from the index, then an exhaustive comparison of
    the query with each candidate's frames, then alignment. ``query`` must hold usable frames only.

    The query's mirrored hashes (if any) are aligned apart from the others, so a segment is either a
    plain or a mirrored copy; a mirrored segment that overlaps a plain one of the same source in the
    query (footage that looks the same flipped) is left out.
    """
    if not len(query.hashes) or not len(index):
        return []
    _, q_times_all = query.frame_times()
    q_times_all = np.sort(q_times_all)
    fps = float(query.info.get("fps") or 25.0)
    q_step = int(round(1000 / max(0.1, fps)))
    mirrored = query.mirrored
    orientations = [(np.flatnonzero(~mirrored), False)]
    if mirrored.any():
        orientations.append((np.flatnonzero(mirrored), True))
    segments: list[Segment] = []
    for s_no in candidate_sources(index, query, cfg):
        rows = index.rows_of(s_no)
        dm = hamming_matrix(query.hashes, index.hashes[rows])
        s_all = index.time_ms[rows]
        step = int(np.median(np.diff(s_all))) if len(s_all) > 1 else 1000
        found: list[Segment] = []
        for sel, mirror in orientations:
            qi, rj = np.nonzero(dm[sel] <= cfg.max_distance)
            if not len(qi):
                continue
            qi = sel[qi]
            segs = align(
                index.sources[s_no],
                query.frame[qi],
                query.times_ms[qi],
                s_all[rj],
                dm[qi, rj],
                q_times_all,
                s_all,
                cfg,
                query_step_ms=q_step,
                source_step_ms=max(1, step),
            )
            if mirror:
                segs = [s for s in segs if not any(_overlap(s, p) for p in found)]
                for s in segs:
                    s.mirrored = True
            found += segs
        segments += found
    return segments


def _overlap(a: Segment, b: Segment) -> bool:
    return a.query_start_ms < b.query_end_ms and b.query_start_ms < a.query_end_ms


def lookup(
    catalog: Catalog,
    file: str | os.PathLike,
    *,
    settings=None,
    store: BlobStore | str | os.PathLike | None = None,
    config: MatchConfig | dict | None = None,
    refresh: bool = True,
    keep_hashes: bool = False,
) -> dict[str, Any]:
    """Find the footage of ``file`` in the catalog. Returns a JSON-ready dict (see the module docstring).

    Footage that a takedown removed is no match, but the answer says so: ``removed`` holds the tombstone
    that refuses the file (by its sha256 or its frames, :func:`~.tombstones.tombstone_match`), else None.
    After a segment takedown the source stays, so its footage still matches, and ``removed`` names the
    takedown that took the segment out of the builds.
    ``keep_hashes`` adds the file's usable PDQ hashes (hex, not mirrored) as ``query.pdq`` and their times
    as ``query.pdq_time_ms``: the fingerprints a takedown request keeps instead of the file.

    ``refresh`` first loads fingerprint blobs that are not indexed yet (incremental and cheap when there
    are none). When some fingerprint of the catalog cannot be searched (not loaded, or missing from
    ``store``) it raises :class:`NotFoundError` naming the store and the fix, never answering "no match".
    """
    cfg = _config(config)
    path = Path(file)
    if not path.exists():
        raise NotFoundError("file not found", item=str(path), fix="check the path of the file to look up")
    if path.is_dir():
        raise ConfigError("a folder is not a video file", item=str(path), fix="give one video file")
    blob_store = resolve_store(settings, store)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sha = sha256_file(str(path))
    sampled = sample_file(path, fps=cfg.query_fps, max_frames=cfg.max_query_frames, mirror=cfg.mirror_search)
    timings["decode_s"] = round(time.perf_counter() - t0, 4)
    query = sampled.usable(cfg.min_quality)
    result: dict[str, Any] = {
        "query": {
            "path": str(path),
            "sha256": sha,
            "duration_ms": sampled.duration_ms,
            "frames_sampled": sampled.n_sampled,
            "frames_usable": query.n_usable_frames,
            "black_bars": list(sampled.bars) if sampled.bars else None,
        },
        "thresholds": cfg.model_dump(),
    }
    t1 = time.perf_counter()
    # refuses rather than search an incomplete index; a read-only catalog is searched without writing it
    index, freshness = searchable_index(catalog, blob_store, load=refresh)
    timings["index_load_s"] = round(time.perf_counter() - t1, 4)
    t2 = time.perf_counter()
    segments = match_hashes(index, query, cfg)
    timings["match_s"] = round(time.perf_counter() - t2, 4)
    if cfg.crop_search and len(query.hashes):
        from .crops import crop_segments, load_variant_index

        t4 = time.perf_counter()
        variants = load_variant_index(catalog, blob_store)
        segments += crop_segments(  # crop variants are searched with the query as it is, not mirrored
            catalog,
            blob_store,
            variants,
            query.select(~query.mirrored),
            cfg,
            skip_sources={s.source_id for s in segments},
        )
        timings["crop_s"] = round(time.perf_counter() - t4, 4)
    t3 = time.perf_counter()
    matches = describe(
        catalog, segments, query=query, query_sha256=sha, settings=settings, overlay=freshness.get("overlay")
    )
    timings["resolve_s"] = round(time.perf_counter() - t3, 4)
    result["matches"] = matches
    result["builds"] = _build_summary(matches)
    if matches:
        result["status"] = "matched"
    elif query.n_usable_frames == 0:
        result["status"] = "no_usable_frames"
        result["message"] = (
            f"no usable frames: none of the {sampled.n_sampled} sampled frames has PDQ quality >= "
            f"{cfg.min_quality} (black or flat video), so it cannot be compared"
        )
    else:
        result["status"] = "no_match"
        result["message"] = (
            f"no catalog footage matches the {query.n_usable_frames} usable frames of the file"
        )
    # Also with matches: a segment takedown leaves its source (and so a match) but removed the segment
    # from the builds, and the answer says so.
    result["removed"] = _removed(catalog, sha, query)
    if keep_hashes:
        plain = query.select(~query.mirrored)
        result["query"]["pdq"] = [bytes(h).hex() for h in plain.hashes]
        result["query"]["pdq_time_ms"] = [int(t) for t in plain.times_ms]
    result["index"] = {
        "frames": len(index),
        # sources with frames in the index: a takedown masks its sources' frames out but keeps their names
        "sources": index.n_sources,
        "generation": index.generation,
        # read_only: the catalog was not written; fingerprint blobs it had not loaded (loaded_blobs) were
        # read from the store and searched in memory, so the search is complete all the same
        "read_only": freshness["read_only"],
        "loaded_blobs": freshness["loaded_blobs"],
    }
    result["timings"] = timings
    return result


def lookup_url(catalog: Catalog, url: str, *, settings=None) -> dict[str, Any]:
    """The answer of :func:`lookup` for a work named by its URL: the catalog's sources at that URL (any
    spelling), each matched over its whole length, with the clips and builds that hold it. A URL the
    catalog does not hold is ``no_match`` (with ``removed`` when a takedown removed it)."""
    from .takedown import resolve_targets

    url = (url or "").strip()
    if not url:
        raise ConfigError("no URL given", item="url", fix="paste the URL of the work")
    try:
        sids, _how = resolve_targets(catalog, url=url)
    except NotFoundError:
        sids = []
    rows = (
        catalog.query(
            "SELECT source_id, coalesce(duration_ms, 0) AS d FROM sources WHERE source_id IN (SELECT unnest(?))",
            [sids],
        )
        if sids
        else []
    )
    segments = [
        Segment(r["source_id"], 0, int(r["d"]), 0, int(r["d"]), 0, 0, 0, 0, 0, 1.0, 0.0, 1.0) for r in rows
    ]
    matches = describe(catalog, segments, settings=settings)
    result: dict[str, Any] = {"query": {"url": url}, "matches": matches, "builds": _build_summary(matches)}
    if matches:
        result["status"] = "matched"
        result["removed"] = None
    else:
        result["status"] = "no_match"
        result["message"] = "the catalog holds no source at this URL"
        result["removed"] = None
        with catalog.read() as con:
            has_tomb = "tombstones" in table_columns(con)
        if has_tomb:
            from .. import ids as ids_mod

            spellings = sorted({url, ids_mod.normalise_url(url)} if "://" in url else {url})
            t = catalog.query(
                "SELECT t.tombstone_id, t.source_id, t.takedown_id, t.reason, t.created_at, d.finished_at "
                "FROM tombstones t LEFT JOIN takedowns d USING (takedown_id) "
                "WHERE t.url IN (SELECT unnest(?)) ORDER BY t.created_at LIMIT 1",
                [spellings],
            )
            if t:
                r = t[0]
                result["removed"] = {
                    "tombstone_id": r["tombstone_id"],
                    "source_id": r["source_id"],
                    "kind": "url",
                    "takedown_id": r["takedown_id"],
                    "reason": r["reason"],
                    "removed_at": str(r["finished_at"] or r["created_at"] or "") or None,
                }
    return result


def _removed(catalog: Catalog, sha: str, query: QueryHashes) -> dict[str, Any] | None:
    """The tombstone refusing this file, with its takedown, when a takedown removed its footage."""
    from .tombstones import tombstone_match

    with catalog.read() as con:
        if "tombstones" not in table_columns(con):
            return None
    plain = query.select(~query.mirrored)
    m = tombstone_match(
        catalog,
        sha256=sha,
        pdq_hashes=plain.hashes if len(plain.hashes) else None,
        pdq_seconds=plain.frame if len(plain.hashes) else None,
    )
    if m is None:
        return None
    row = catalog.query(
        "SELECT t.takedown_id, t.reason, t.created_at, d.finished_at FROM tombstones t "
        "LEFT JOIN takedowns d USING (takedown_id) WHERE t.tombstone_id = ?",
        [m.tombstone_id],
    )
    r = row[0] if row else {}
    return {
        **m.to_dict(),
        "takedown_id": r.get("takedown_id"),
        "reason": r.get("reason"),
        "removed_at": str(r.get("finished_at") or r.get("created_at") or "") or None,
    }


# -- resolving matches to the catalog ------------------------------------------------------------------
def _within(seg: dict[str, Any], query: QueryHashes | None, source_ms: int | None) -> dict[str, Any]:
    """A segment's ranges within the two files: a run ends one sample step after its last matched frame,
    which past a file's last frame would name time the file does not have."""
    q_ms = getattr(query, "duration_ms", None) if query is not None else None
    if q_ms:
        seg["query_end_ms"] = min(seg["query_end_ms"], int(q_ms))
    if source_ms:
        seg["source_end_ms"] = min(seg["source_end_ms"], int(source_ms))
    return seg


def describe(
    catalog: Catalog,
    segments: list[Segment],
    *,
    query: QueryHashes | None = None,
    query_sha256: str | None = None,
    settings=None,
    overlay: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Resolve segments (and an exact sha256 copy) to sources, clips, builds and licences.

    ``overlay`` holds frames searched in memory beside a read-only catalog's (``replaced``: the
    ``(source_id, clip_id)`` items whose catalog frames they replace; ``frames``: their usable
    ``(source_id, clip_id, time_ms)``), so clips resolve as if they had been loaded."""
    by_source: dict[str, list[Segment]] = {}
    for s in segments:
        by_source.setdefault(s.source_id, []).append(s)
    with catalog.read() as con:
        tables = table_columns(con)
        exact: set[str] = set()
        exact_clips: dict[str, set[str]] = {}
        if query_sha256:
            for (sid,) in con.execute(
                "SELECT source_id FROM sources WHERE content_sha256 = ?", [query_sha256]
            ).fetchall():
                exact.add(sid)
            for sid, cid in con.execute(
                "SELECT source_id, clip_id FROM clips WHERE content_sha256 = ?", [query_sha256]
            ).fetchall():
                exact_clips.setdefault(sid, set()).add(cid)
        sids = sorted(set(by_source) | exact | set(exact_clips))
        if not sids:
            return []
        con.register("_fp_sids", pa.table({"source_id": pa.array(sids, pa.string())}))
        try:
            sources = {
                r["source_id"]: r
                for r in dict_rows(con.execute("SELECT s.* FROM sources s JOIN _fp_sids USING (source_id)"))
            }
            clips = dict_rows(
                con.execute(
                    """SELECT c.clip_id, c.source_id, c.start_ms, c.end_ms, c.content_sha256, c.blob_uri, c.thumb_uri
                       FROM clips c JOIN _fp_sids USING (source_id) ORDER BY c.source_id, c.start_ms"""
                )
            )
            frames = con.execute(
                """SELECT f.source_id, f.clip_id, f.time_ms FROM frame_hashes f JOIN _fp_sids USING (source_id)
                   WHERE f.quality >= 50 ORDER BY f.source_id, f.time_ms"""
            ).fetchall()
            members: list[dict[str, Any]] = []
            if "build_members" in tables and "builds" in tables:
                members = dict_rows(
                    con.execute(
                        """SELECT m.build_id, m.clip_id, m.source_id, m.shard, m.member_key, m.mp4_sha256,
                                  b.name, b.version, b.purpose, b.status, b.created_at, b.out_dir
                           FROM build_members m JOIN builds b USING (build_id) JOIN _fp_sids USING (source_id)
                           ORDER BY b.name, b.version, m.clip_id"""
                    )
                )
            memberships: list[dict[str, Any]] = []
            if "memberships" in tables:
                memberships = dict_rows(
                    con.execute(
                        "SELECT m.* FROM memberships m JOIN _fp_sids USING (source_id) ORDER BY dataset"
                    )
                )
            decisions: list[dict[str, Any]] = []
            if "policy_decisions" in tables:
                decisions = dict_rows(
                    con.execute(
                        """SELECT p.source_id, p.purpose, p.decision, p.effective_class, p.attribution,
                                  p.share_alike, p.reasons, p.decided_at
                           FROM policy_decisions p JOIN _fp_sids USING (source_id)"""
                    )
                )
        finally:
            con.unregister("_fp_sids")
    if overlay:
        wanted = set(sids)
        frames = [f for f in frames if (f[0], f[1]) not in overlay["replaced"]]
        frames += [f for f in overlay["frames"] if f[0] in wanted]
        frames.sort(key=lambda f: (f[0], f[2]))
    frames_by_src: dict[str, list[tuple[str | None, int]]] = {}
    for sid, cid, t in frames:
        frames_by_src.setdefault(sid, []).append((cid, int(t)))
    clips_by_src: dict[str, list[dict[str, Any]]] = {}
    for c in clips:
        clips_by_src.setdefault(c["source_id"], []).append(c)
    members_by_clip: dict[str, list[dict[str, Any]]] = {}
    for m in members:
        members_by_clip.setdefault(m["clip_id"], []).append(m)
    ms_by_src: dict[str, list[dict[str, Any]]] = {}
    for m in memberships:
        ms_by_src.setdefault(m["source_id"], []).append(
            {k: v for k, v in m.items() if k in ("dataset", "split", "label") and v is not None}
        )
    dec_by_src: dict[tuple[str, str], dict[str, Any]] = {}
    for d in decisions:
        dec_by_src[(d["source_id"], d["purpose"])] = d

    out = []
    for sid in sids:
        src = sources.get(sid)
        if src is None:  # taken down since the index was read
            continue
        segs = by_source.get(sid, [])
        matched_times = _matched_source_times(segs)
        src_frames = frames_by_src.get(sid, [])
        clip_rows = []
        for c in clips_by_src.get(sid, []):
            in_clip = [
                t
                for cid, t in src_frames
                if (cid is None and c["start_ms"] <= t < c["end_ms"]) or cid == c["clip_id"]
            ]
            hit = [t for t in in_clip if _near(t, matched_times)]
            is_exact = c["clip_id"] in exact_clips.get(sid, set())
            if not hit and not is_exact:
                continue
            share = (len(hit) / len(in_clip)) if in_clip else (1.0 if is_exact else 0.0)
            seg = _segment_for(segs, c["start_ms"], c["end_ms"])
            clip_rows.append(
                {
                    "clip_id": c["clip_id"],
                    "start_ms": c["start_ms"],
                    "end_ms": c["end_ms"],
                    "share_matched": round(1.0 if is_exact else share, 4),
                    "exact_copy": is_exact,
                    "thumb_uri": c["thumb_uri"],
                    "query_start_ms": None
                    if seg is None
                    else max(0, max(c["start_ms"], seg.source_start_ms) - seg.offset_ms),
                    "query_end_ms": None
                    if seg is None
                    else max(0, min(c["end_ms"], seg.source_end_ms) - seg.offset_ms),
                    "builds": [
                        _member_view(m, src, dec_by_src) for m in members_by_clip.get(c["clip_id"], [])
                    ],
                }
            )
        conf = max([s.confidence for s in segs], default=0.0)
        if sid in exact or sid in exact_clips:
            conf = 1.0
        out.append(
            {
                "source_id": sid,
                "confidence": round(conf, 4),
                "exact_copy": sid in exact,
                "platform": src.get("platform"),
                "url": src.get("url"),
                "uploader": src.get("uploader"),
                "title": src.get("title"),
                "rights_holder": src.get("rights_holder"),
                "content_license": src.get("content_license"),
                "content_sha256": src.get("content_sha256"),
                "datasets": ms_by_src.get(sid, []),
                "policy": [_decision_view(d) for (s, _p), d in sorted(dec_by_src.items()) if s == sid],
                "matched_query_frames": sum(s.matched_query_frames for s in segs),
                "segments": [_within(s.to_dict(), query, src.get("duration_ms")) for s in segs],
                "clips": clip_rows,
            }
        )
    out.sort(key=lambda m: (-m["confidence"], m["source_id"]))
    return out


def _matched_source_times(segs: list[Segment]) -> list[tuple[int, int]]:
    return [(s.source_start_ms, s.source_end_ms) for s in segs]


def _near(t: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= t < hi for lo, hi in ranges)


def _segment_for(segs: list[Segment], start: int, end: int) -> Segment | None:
    best, overlap = None, 0
    for s in segs:
        o = min(end, s.source_end_ms) - max(start, s.source_start_ms)
        if o > overlap:
            best, overlap = s, o
    return best


def _decision_view(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "purpose": d["purpose"],
        "decision": d["decision"],
        "effective_class": d["effective_class"],
        "attribution": d["attribution"],
        "share_alike": d["share_alike"],
        "reasons": list(d["reasons"] or []),
    }


def _member_view(
    m: dict[str, Any], src: dict[str, Any], decisions: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    d = decisions.get((m["source_id"], m["purpose"]))
    return {
        "build_id": m["build_id"],
        "name": m["name"],
        "version": m["version"],
        "status": m["status"],
        "purpose": m["purpose"],
        "shard": m["shard"],
        "member_key": m["member_key"],
        "mp4_sha256": m["mp4_sha256"],
        "included_under": {
            "content_license": src.get("content_license"),
            "effective_class": d["effective_class"] if d else None,
            "decision": d["decision"] if d else None,
        },
    }


def _build_summary(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    builds: dict[str, dict[str, Any]] = {}
    for m in matches:
        for c in m["clips"]:
            for b in c["builds"]:
                e = builds.setdefault(
                    b["build_id"],
                    {
                        "build_id": b["build_id"],
                        "name": b["name"],
                        "version": b["version"],
                        "status": b["status"],
                        "purpose": b["purpose"],
                        "clips": 0,
                        "sources": set(),
                    },
                )
                e["clips"] += 1
                e["sources"].add(m["source_id"])
    out = []
    for e in builds.values():
        e["sources"] = sorted(e["sources"])
        out.append(e)
    return sorted(out, key=lambda e: (e["name"], e["version"]))
