"""Tombstones: what a takedown leaves behind so that the same work is refused when it comes back.

A tombstone holds the source id, every exact content hash of the removed artefacts (source file, clip
files, thumbnails, shard members; table ``tombstone_hashes``) and the PDQ hashes of the footage. The PDQ
hashes are *dense*: the takedown decodes the source once more before deleting it and hashes every frame,
so that a re-upload sampled at any phase (the analysis pass hashes about one frame a second, starting
wherever the copy starts) lands on a tombstoned frame. Without the source media, the catalog's own frame
hashes are used.

:func:`is_tombstoned` is what acquisition and analysis call: by id, by sha256, or by PDQ hashes. PDQ
hashes are refused when, as in vPDQ, the shorter side is mostly matched: at least ``min_share`` of the
candidate's usable frames match a tombstone's frames, or at least ``min_share`` of the tombstone's
seconds are matched by the candidate (a compilation that contains the work); and at least ``min_frames``
frames match (all of them for a shorter candidate).

**Quarantine.** Media refused after its bytes were stored (the analysis pass refuses by frame hashes) is
not kept in the blob store: :func:`quarantine_media` moves it to
``<store>/quarantine/<tombstone_id>/<sha256>/`` beside ``refusal.json`` (which source, which tombstone,
the takedown's reason, how it matched), and the refusing stage's outcome row carries the same record,
which the catalog view ``quarantine`` reads back. The quarantined bytes' hash is refused from then on
like the tombstone's own hashes, so the same file is refused before it is stored again. Someone who
reviews the folder deletes it, or moves the file back to add it again (after removing the tombstone).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..storage import BLOB_PREFIX, BlobStore, atomic_write
from .hashes import HASH_BYTES, MATCH_DISTANCE, MIN_QUALITY, hex_to_array, unpack_many
from .index import HashIndex


@dataclass(frozen=True)
class TombstoneMatch:
    tombstone_id: str
    source_id: str | None
    kind: str  # source_id | sha256 | pdq
    share: float = 1.0
    matched_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tombstone_id": self.tombstone_id,
            "source_id": self.source_id,
            "kind": self.kind,
            "share": round(self.share, 4),
            "matched_frames": self.matched_frames,
        }


def _catalog(catalog) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else Catalog(catalog)


def as_hash_array(pdq_hashes: Any, min_quality: int = MIN_QUALITY) -> np.ndarray:
    """Normalise the many shapes callers have: hex strings, ``(frame, time, hex, quality)`` rows,
    :class:`~clipfactory.media.analyse.PdqHash` objects, 32-byte values, or a ``uint8[n, 32]`` array.
    Frames below ``min_quality`` are left out."""
    if pdq_hashes is None:
        return np.zeros((0, HASH_BYTES), np.uint8)
    if isinstance(pdq_hashes, np.ndarray):
        return np.ascontiguousarray(pdq_hashes, np.uint8).reshape(-1, HASH_BYTES)
    out: list[str] = []
    for h in pdq_hashes:
        if isinstance(h, str):
            out.append(h)
        elif isinstance(h, bytes | bytearray | memoryview):
            out.append(bytes(h).hex())
        elif hasattr(h, "hash_hex"):
            if getattr(h, "quality", 100) >= min_quality:
                out.append(h.hash_hex)
        elif isinstance(h, tuple | list) and len(h) >= 3:
            quality = h[3] if len(h) > 3 else 100
            if quality >= min_quality:
                out.append(h[2])
        else:
            raise TypeError(f"cannot read a PDQ hash from {type(h).__name__}")
    return hex_to_array(out)


class _TombIndex:
    def __init__(
        self, key, index: HashIndex, ids: list[str], sources: list[str | None], seconds: list[np.ndarray]
    ):
        self.key = key
        self.index = index
        self.ids = ids
        self.sources = sources
        self.seconds = seconds  # per tombstone: the time bucket of each of its hashes


_CACHE: dict[str, _TombIndex] = {}
_LOCK = threading.Lock()


def _load_pdq(con, catalog: Catalog) -> _TombIndex:
    key = con.execute("SELECT count(*), max(created_at), sum(n_pdq) FROM tombstones").fetchall()[0]
    cached = _CACHE.get(str(catalog.path))
    if cached is not None and cached.key == key:
        return cached
    rows = con.execute(
        "SELECT tombstone_id, source_id, pdq, pdq_time_ms FROM tombstones WHERE n_pdq > 0 ORDER BY tombstone_id"
    ).fetchall()
    hashes, src, ids, sources, seconds = [], [], [], [], []
    for k, (tid, sid, blob, times) in enumerate(rows):
        arr = unpack_many(blob)
        hashes.append(arr)
        src.append(np.full(len(arr), k, np.int32))
        ids.append(tid)
        sources.append(sid)
        t = np.asarray(times if times is not None and len(times) == len(arr) else np.arange(len(arr)) * 1000)
        seconds.append(t // 1000)
    if hashes:
        idx = HashIndex(
            np.concatenate(hashes), np.concatenate(src), np.zeros(sum(len(h) for h in hashes)), ids
        )
    else:
        idx = HashIndex.empty()
    t = _TombIndex(key, idx, ids, sources, seconds)
    with _LOCK:
        _CACHE[str(catalog.path)] = t
    return t


def tombstone_match(
    catalog: Catalog | str,
    *,
    source_id: str | None = None,
    sha256: str | None = None,
    pdq_hashes: Any = None,
    pdq_seconds: np.ndarray | None = None,
    max_distance: int = MATCH_DISTANCE,
    min_share: float = 0.8,
    min_frames: int = 2,
) -> TombstoneMatch | None:
    """The tombstone that refuses this content, with how it matched, or ``None``.

    ``pdq_seconds`` (optional, one per hash) groups the candidate's hashes into frames: hashes with the
    same value count as one frame (variants of one frame).
    """
    cat = _catalog(catalog)
    with cat.read() as con:
        if source_id:
            row = con.execute(
                "SELECT tombstone_id FROM tombstones WHERE source_id = ? ORDER BY created_at LIMIT 1",
                [source_id],
            ).fetchall()
            if row:
                return TombstoneMatch(row[0][0], source_id, "source_id")
        if sha256:
            sha = sha256.lower().removeprefix("blob:sha256:").removeprefix("sha256:")
            row = con.execute(
                """SELECT t.tombstone_id, t.source_id FROM tombstones t
                   WHERE t.content_sha256 = ?
                   UNION ALL
                   SELECT h.tombstone_id, t.source_id FROM tombstone_hashes h JOIN tombstones t USING (tombstone_id)
                   WHERE h.sha256 = ?
                   UNION ALL
                   SELECT q.tombstone_id, t.source_id FROM quarantine q JOIN tombstones t USING (tombstone_id)
                   WHERE q.content_sha256 = ? LIMIT 1""",
                [sha, sha, sha],
            ).fetchall()
            if row:
                return TombstoneMatch(row[0][0], row[0][1], "sha256")
        arr = as_hash_array(pdq_hashes)
        if not len(arr):
            return None
        tomb = _load_pdq(con, cat)
    if not len(tomb.index):
        return None
    frames = np.asarray(pdq_seconds) if pdq_seconds is not None else np.arange(len(arr))
    n_q = len(np.unique(frames))
    qi, ri, _d = tomb.index.search(arr, max_distance)
    if not len(qi):
        return None
    best: TombstoneMatch | None = None
    t_of = tomb.index.src[ri]
    # row numbers within each tombstone: the index keeps every tombstone's rows contiguous, in order
    first_row = np.searchsorted(tomb.index.src, np.arange(len(tomb.ids)))
    for t in np.unique(t_of):
        t = int(t)
        sel = t_of == t
        m_q = len(np.unique(frames[qi[sel]]))
        secs = tomb.seconds[t]
        matched_secs = np.unique(secs[ri[sel] - first_row[t]])
        share_t = len(matched_secs) / max(1, len(np.unique(secs)))
        share = max(m_q / n_q, share_t)
        if share >= min_share and m_q >= min(min_frames, n_q):
            cand = TombstoneMatch(tomb.ids[t], tomb.sources[t], "pdq", float(share), int(m_q))
            if best is None or cand.share > best.share:
                best = cand
    return best


def is_tombstoned(
    catalog: Catalog | str,
    *,
    source_id: str | None = None,
    sha256: str | None = None,
    pdq_hashes: Any = None,
) -> str | None:
    """The id of the tombstone that refuses this content, or ``None``.

    For acquisition (``source_id``, ``sha256`` of the bytes) and analysis (``pdq_hashes`` of the analysis
    pass: hex strings, ``(frame_index, time_ms, hex, quality)`` rows or ``PdqHash`` objects). Cheap: the
    tombstones' hashes are indexed once per process and reloaded only when tombstones change.
    """
    m = tombstone_match(catalog, source_id=source_id, sha256=sha256, pdq_hashes=pdq_hashes)
    return m.tombstone_id if m else None


# -- quarantine ----------------------------------------------------------------------------------------
QUARANTINE_DIR = "quarantine"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def quarantine_dir(store: BlobStore | str | os.PathLike, tombstone_id: str) -> Path:
    """``<store>/quarantine/<tombstone_id>``: the refused media of one tombstone."""
    root = store.root if isinstance(store, BlobStore) else Path(store)
    return root / QUARANTINE_DIR / _SAFE.sub("_", tombstone_id)


def _suffix(*names: str | None) -> str:
    for n in names:
        suffix = Path(str(n or "").split("?")[0]).suffix.lower()
        if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
            return suffix
    return ""


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:  # the quarantine on another filesystem than the blobs
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        src.unlink()


def quarantine_media(
    store: BlobStore,
    source: Any,
    match: TombstoneMatch,
    *,
    takedown_reason: str | None = None,
    stage: str | None = None,
    keep_blob: bool = False,
) -> dict[str, Any]:
    """Move the media of ``source`` (a :class:`~clipfactory.records.SourceRecord`) out of the blob store
    into :func:`quarantine_dir` ``/<sha256>/media<ext>`` and write ``refusal.json`` beside it. With
    ``keep_blob`` (another live source holds the same bytes) the bytes are copied instead. Idempotent:
    media already moved stays where it is. Returns the refusal record (what ``refusal.json`` holds)."""
    uri = source.blob_uri or ""
    sha = (source.content_sha256 or uri.removeprefix(BLOB_PREFIX) or "unknown").lower()
    folder = quarantine_dir(store, match.tombstone_id) / _SAFE.sub("_", sha)
    folder.mkdir(parents=True, exist_ok=True)
    media = folder / (
        "media" + _suffix(source.origin_uri, source.url, source.container and "." + source.container)
    )
    blob = store.path(sha) if uri.startswith(BLOB_PREFIX) or source.content_sha256 else None
    if blob is not None and blob.exists() and not media.exists():
        if keep_blob:
            tmp = media.with_name(f".{media.name}.part")
            shutil.copyfile(blob, tmp)
            os.replace(tmp, media)
        else:
            _move(blob, media)
    elif blob is not None and blob.exists() and not keep_blob:
        blob.unlink()  # moved by an earlier attempt, then stored again
    root = store.root
    record = {
        "tombstone_id": match.tombstone_id,
        "takedown_reason": takedown_reason,
        "source_id": source.source_id,
        "sha256": sha,
        "size_bytes": media.stat().st_size if media.exists() else None,
        "path": str(folder.relative_to(root)),
        "media": str(media.relative_to(root)) if media.exists() else None,
        "blob_uri": uri or None,
        "blob_kept": bool(keep_blob),
        "origin_uri": source.origin_uri,
        "url": source.url,
        "platform": source.platform,
        "match": match.to_dict(),
        "stage": stage,
        "refused_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with atomic_write(folder / "refusal.json", "w") as fh:
        fh.write(json.dumps(record, indent=2, sort_keys=True))
    return record


def list_quarantine(catalog: Catalog, tombstone_id: str | None = None) -> list[dict[str, Any]]:
    """The refused sources whose media is in quarantine (the catalog view ``quarantine``)."""
    sql = "SELECT * FROM quarantine"
    params: list[Any] = []
    if tombstone_id:
        sql += " WHERE tombstone_id = ?"
        params.append(tombstone_id)
    return catalog.query(sql + " ORDER BY refused_at, source_id", params)


def list_tombstones(catalog: Catalog, source_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT tombstone_id, source_id, content_sha256, n_pdq, url, uploader, reason, takedown_id, created_at FROM tombstones"
    params: list[Any] = []
    if source_id:
        sql += " WHERE source_id = ?"
        params.append(source_id)
    return catalog.query(sql + " ORDER BY created_at", params)
