"""The tombstone guard that acquisition and analysis stages consult.

A stage loads the guard once per batch (one read of the catalog), then asks it per item by source id and
content hash; the analysis stage also asks by PDQ hashes through :func:`~.tombstones.is_tombstoned`. A
tombstoned item is dropped with the reason ``takedown.tombstoned:<tombstone_id>`` and its bytes are not kept.
Stages only read the catalog; without a catalog path (or before any takedown) the guard refuses nothing.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..catalog import Catalog

REASON = "takedown.tombstoned"


class TombstoneGuard:
    """Tombstoned source ids and content hashes, read once from the catalog."""

    def __init__(self, catalog_path: str | None):
        self.catalog_path = catalog_path
        self.by_source: dict[str, str] = {}
        self.by_sha: dict[str, str] = {}
        self.has_pdq = False
        if catalog_path:
            self.refresh()

    def refresh(self) -> None:
        cat = Catalog(self.catalog_path)
        if not cat.path.exists():
            return
        try:
            with cat.read() as con:
                rows = con.execute(
                    "SELECT tombstone_id, source_id, content_sha256, coalesce(n_pdq, 0) FROM tombstones"
                ).fetchall()
                hashes = con.execute("SELECT tombstone_id, sha256 FROM tombstone_hashes").fetchall()
        except duckdb.CatalogException:  # a catalog from before fingerprints existed
            return
        self.by_source = {sid: tid for tid, sid, _sha, _n in rows if sid}
        self.by_sha = {sha: tid for tid, _sid, sha, _n in rows if sha}
        self.by_sha.update({sha: tid for tid, sha in hashes if sha})
        self.has_pdq = any(n for *_, n in rows)

    def __bool__(self) -> bool:
        return bool(self.by_source or self.by_sha)

    def check(self, *, source_id: str | None = None, sha256: str | None = None) -> str | None:
        """The drop reason if the source id or content hash is tombstoned, else ``None``."""
        tid = (source_id and self.by_source.get(source_id)) or (sha256 and self.by_sha.get(sha256.lower()))
        return f"{REASON}:{tid}" if tid else None

    def check_pdq(self, pdq_hashes: Any) -> str | None:
        """The drop reason if these frame hashes match tombstoned footage (re-encodes, resizes, sub-clips;
        crops are not caught here)."""
        if not self.has_pdq or not self.catalog_path:
            return None
        from .tombstones import is_tombstoned

        tid = is_tombstoned(self.catalog_path, pdq_hashes=pdq_hashes)
        return f"{REASON}:{tid}" if tid else None
