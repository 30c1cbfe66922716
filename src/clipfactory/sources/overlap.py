"""Cross-dataset overlap: how many canonical sources each pair of datasets shares.

Sources are deduplicated at ingest (one ``sources`` row per canonical video), so overlap is a self-join
of ``memberships`` on ``source_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog


@dataclass
class OverlapMatrix:
    datasets: list[str]
    sources: dict[str, int]  # sources each dataset lists
    unique: dict[str, int]  # sources no other dataset lists
    shared: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # shared[a][b], symmetric; [a][a] = sources[a]
    total_sources: int = 0  # distinct sources over the datasets shown

    def to_dict(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "sources": self.sources,
            "unique": self.unique,
            "shared": self.shared,
            "pairs": [
                {"a": a, "b": b, "shared": self.shared[a][b]}
                for i, a in enumerate(self.datasets)
                for b in self.datasets[i + 1 :]
            ],
            "total_sources": self.total_sources,
        }


def overlap_matrix(catalog: Catalog, datasets: list[str] | None = None) -> OverlapMatrix:
    """The overlap of every pair of datasets (or of ``datasets`` only), and each one's unique count."""
    where = ""
    params: list[Any] = []
    if datasets:
        where = "WHERE dataset IN (" + ", ".join("?" for _ in datasets) + ")"
        params = list(datasets)
    with catalog.read() as con:
        names = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT dataset FROM memberships {where} ORDER BY dataset", params
            ).fetchall()
        ]
        pairs = con.execute(
            f"""WITH m AS (SELECT dataset, source_id FROM memberships {where})
                SELECT a.dataset, b.dataset, count(*) FROM m a JOIN m b USING (source_id)
                WHERE a.dataset <= b.dataset GROUP BY ALL""",
            params,
        ).fetchall()
        uniq = con.execute(
            f"""WITH m AS (SELECT dataset, source_id FROM memberships {where}),
                     n AS (SELECT source_id, count(*) AS k FROM m GROUP BY source_id)
                SELECT m.dataset, count(*) FILTER (WHERE n.k = 1) FROM m JOIN n USING (source_id) GROUP BY ALL""",
            params,
        ).fetchall()
        total = con.execute(f"SELECT count(DISTINCT source_id) FROM memberships {where}", params).fetchall()[
            0
        ][0]
    shared = {a: dict.fromkeys(names, 0) for a in names}
    for a, b, n in pairs:
        shared[a][b] = shared[b][a] = int(n)
    return OverlapMatrix(
        datasets=names,
        sources={a: shared[a][a] for a in names},
        unique={a: 0 for a in names} | {d: int(n) for d, n in uniq},
        shared=shared,
        total_sources=int(total),
    )
