"""The tombstone guard that acquisition and analysis stages consult.

A stage loads the guard once per batch (one read of the catalog), then asks it per item by source id and
content hash; the analysis stage also asks by PDQ hashes through :func:`~.tombstones.tombstone_match`. A
tombstoned item is dropped with the reason ``takedown.tombstoned:<tombstone_id>`` and its bytes are not
kept: acquisition refuses before storing them or deletes what it just stored, and media refused after it
was stored (by frame hashes at analysis) goes through :meth:`TombstoneGuard.quarantine`, which moves it
to the store's quarantine and records the refusal in the outcome row (the catalog view ``quarantine``).
The hashes of quarantined media are refused like the tombstones' own. Stages only read the catalog;
without a catalog path (or before any takedown) the guard refuses nothing.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..catalog import Catalog
from ..records import Result

REASON = "takedown.tombstoned"


class TombstoneGuard:
    """Tombstoned source ids and content hashes, read once from the catalog."""

    def __init__(self, catalog_path: str | None):
        self.catalog_path = catalog_path
        self.by_source: dict[str, str] = {}
        self.by_sha: dict[str, str] = {}
        self.reasons: dict[str, str | None] = {}
        self.has_pdq = False
        #: the match behind the last refusal of :meth:`check_pdq` (how much of the footage matched)
        self.last_match = None
        if catalog_path:
            self.refresh()

    def refresh(self) -> None:
        cat = Catalog(self.catalog_path)
        if not cat.path.exists():
            return
        try:
            with cat.read() as con:
                rows = con.execute(
                    "SELECT tombstone_id, source_id, content_sha256, coalesce(n_pdq, 0), reason FROM tombstones"
                ).fetchall()
                hashes = con.execute("SELECT tombstone_id, sha256 FROM tombstone_hashes").fetchall()
                try:
                    quarantined = con.execute(
                        "SELECT tombstone_id, content_sha256 FROM quarantine WHERE content_sha256 IS NOT NULL"
                    ).fetchall()
                except duckdb.CatalogException:
                    quarantined = []
        except duckdb.CatalogException:  # a catalog from before fingerprints existed
            return
        self.by_source = {sid: tid for tid, sid, _sha, _n, _r in rows if sid}
        self.by_sha = {sha: tid for tid, sha in quarantined}
        self.by_sha.update({sha: tid for tid, _sid, sha, _n, _r in rows if sha})
        self.by_sha.update({sha: tid for tid, sha in hashes if sha})
        self.reasons = {tid: r for tid, *_, r in rows}
        self.has_pdq = any(n for *_, n, _r in rows)

    def __bool__(self) -> bool:
        return bool(self.by_source or self.by_sha)

    def check(self, *, source_id: str | None = None, sha256: str | None = None) -> str | None:
        """The drop reason if the source id or content hash is tombstoned, else ``None``."""
        tid = (source_id and self.by_source.get(source_id)) or (sha256 and self.by_sha.get(sha256.lower()))
        return f"{REASON}:{tid}" if tid else None

    def check_pdq(self, pdq_hashes: Any) -> str | None:
        """The drop reason if these frame hashes match tombstoned footage (re-encodes, resizes, sub-clips;
        crops are not caught here)."""
        self.last_match = None
        if not self.has_pdq or not self.catalog_path:
            return None
        from .tombstones import tombstone_match

        m = tombstone_match(self.catalog_path, pdq_hashes=pdq_hashes)
        self.last_match = m
        return f"{REASON}:{m.tombstone_id}" if m else None

    def quarantine(
        self,
        store,
        source,
        reason: str,
        detail: dict[str, Any] | None = None,
        *,
        stage: str | None = None,
        item_id: str | None = None,
    ) -> Result:
        """Refuse ``source`` (a stored :class:`~clipfactory.records.SourceRecord`) for ``reason`` (from
        :meth:`check` or :meth:`check_pdq`): move its media from the blob store into the quarantine
        (:func:`~.tombstones.quarantine_media`) and return the dropped result. The result carries the
        source without ``blob_uri`` (the catalog no longer points at bytes it does not keep), and its
        detail holds the refusal record under ``quarantine``. Bytes that another live source of the
        catalog also uses are copied, not moved."""
        from .tombstones import TombstoneMatch, quarantine_media

        tid = reason.partition(":")[2]
        m = self.last_match if self.last_match and self.last_match.tombstone_id == tid else None
        if m is None:
            kind = "source_id" if self.by_source.get(source.source_id) == tid else "sha256"
            m = TombstoneMatch(tid, None, kind)
        record = quarantine_media(
            store,
            source,
            m,
            takedown_reason=self.reasons.get(tid),
            stage=stage,
            keep_blob=self._shared(source),
        )
        refused = source.replace(blob_uri=None)
        return Result(
            item_id or source.source_id,
            Result.DROPPED,
            (refused,),
            reason=reason,
            detail=_json({**(detail or {}), "quarantine": record}),
        )

    def _shared(self, source) -> bool:
        """Whether a source other than ``source`` that is not refused holds the same blob."""
        if not self.catalog_path or not source.blob_uri:
            return False
        cat = Catalog(self.catalog_path)
        if not cat.path.exists():
            return False
        n = cat.scalar(
            """SELECT count(*) FROM sources s WHERE s.blob_uri = ? AND s.source_id <> ?
               AND s.source_id NOT IN (SELECT source_id FROM quarantine)""",
            [source.blob_uri, source.source_id],
        )
        return bool(n)


def _json(detail: dict[str, Any]) -> str:
    import json

    return json.dumps(detail, sort_keys=True, default=str)


def tombstoned_sources(catalog, source_ids: list[str]) -> dict[str, str]:
    """``{source_id: "takedown.tombstoned:<id>"}`` for the sources among ``source_ids`` that a tombstone
    refuses by id or content hash, or whose frame hashes in the catalog match tombstoned footage.

    The build's last check (``build.export``): a source analysed before a takedown is not analysed again
    when a run resumes, so the analysis stage's own frame-hash check never sees it; a near-copy of
    footage taken down after it was analysed is refused here. Sources whose frame hashes are not loaded
    into the catalog are checked by id and content hash only."""
    ids_ = sorted(set(source_ids))
    guard = TombstoneGuard(str(catalog.path))
    if not ids_ or not guard:  # no tombstone at all
        return {}
    import numpy as np
    import pyarrow as pa

    from .tombstones import tombstone_match

    with catalog.read() as con:
        con.register("_tomb_ask", pa.table({"source_id": pa.array(ids_, pa.string())}))
        try:
            shas = dict(
                con.execute(
                    "SELECT source_id, content_sha256 FROM sources WHERE source_id IN (SELECT source_id FROM _tomb_ask)"
                ).fetchall()
            )
            rows = []
            if guard.has_pdq:
                rows = con.execute(
                    """SELECT source_id, pdq, time_ms FROM frame_hashes
                       WHERE source_id IN (SELECT source_id FROM _tomb_ask) AND pdq IS NOT NULL AND quality >= 50
                       ORDER BY source_id, time_ms"""
                ).fetchall()
        finally:
            con.unregister("_tomb_ask")
    hashes: dict[str, list[tuple[bytes, int]]] = {}
    for sid, pdq, t in rows:
        hashes.setdefault(sid, []).append((bytes(pdq), int(t or 0)))
    out: dict[str, str] = {}
    for sid in ids_:
        why = guard.check(source_id=sid, sha256=shas.get(sid))
        if why is None and sid in hashes:
            hs = hashes[sid]
            m = tombstone_match(
                catalog, pdq_hashes=[h for h, _ in hs], pdq_seconds=np.array([t // 1000 for _, t in hs])
            )
            why = f"{REASON}:{m.tombstone_id}" if m else None
        if why:
            out[sid] = why
    return out
