"""Where vectors live: the ``embeddings`` table of the catalog, one row per item and model.

Each row names its item (``item_id``: a source id or a clip id), the ``source_id`` it derives from (so the
takedown cascade, which removes every row with a ``source_id`` or ``clip_id`` of a taken-down source, removes
its vectors too), the model (``model_id``: name and hash of the weight files), the hash of the text it was
made from, and the vector. ``embedding_models`` describes each model once (licence, dimension, runtime).
``vkey`` is the item's key in the vector index (:mod:`clipfactory.semantic.index`): the first 8 bytes of
sha256(item_id) as a signed 64-bit integer.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

DDL = """
CREATE TABLE IF NOT EXISTS embeddings (
    item_id VARCHAR NOT NULL,     -- source_id or clip_id
    kind VARCHAR NOT NULL,        -- source | clip
    source_id VARCHAR NOT NULL,   -- lineage: the source the item derives from
    clip_id VARCHAR,
    modality VARCHAR NOT NULL,    -- text | visual
    model_id VARCHAR NOT NULL,    -- <model name>@sha256:<hash of the weight files>
    text_sha256 VARCHAR,          -- of the text the vector was made from (text vectors)
    vkey BIGINT NOT NULL,         -- key in the vector index
    vector FLOAT[] NOT NULL,
    created_at TIMESTAMP
);
-- Each source text vector's similarity to the prompts of a taxonomy (semantic.categories), kept so that
-- categories and plans read a few numbers per source instead of its vector. A row holds while the
-- source's vector of that model was made from the same text; a takedown removes it with the source.
CREATE TABLE IF NOT EXISTS category_scores (
    source_id VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    prompts_sha256 VARCHAR NOT NULL,  -- of the model id and the taxonomy's prompts, in order
    text_sha256 VARCHAR,              -- of the text of the vector scored
    scores FLOAT[] NOT NULL           -- cosine similarity to each prompt centroid, in the taxonomy's order
);
CREATE TABLE IF NOT EXISTS embedding_models (
    model_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    sha256 VARCHAR,               -- of the model files, by name and bytes
    license VARCHAR,              -- of the weights
    dim INTEGER,
    modality VARCHAR,
    runtime VARCHAR,
    registered_at TIMESTAMP
);
"""


def vkey(item_id: str) -> int:
    """The item's key in the vector index (signed 64-bit; the index stores it as unsigned)."""
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big", signed=True)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ensure_tables(con) -> None:
    con.execute(DDL)


def has_table(con, name: str = "embeddings") -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0]
    )


def register_model(con, info: dict[str, Any], modality: str) -> None:
    ensure_tables(con)
    con.execute("DELETE FROM embedding_models WHERE model_id = ?", [info["model_id"]])
    con.execute(
        "INSERT INTO embedding_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            info["model_id"],
            info.get("model"),
            info.get("sha256"),
            info.get("license"),
            int(info["dim"]),
            modality,
            info.get("runtime"),
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


def write_vectors(
    con,
    rows: list[dict[str, Any]],
    vectors: np.ndarray,
    *,
    model_id: str,
    modality: str,
) -> int:
    """Replace the vectors of the items in ``rows`` (dicts with item_id, kind, source_id, clip_id,
    text_sha256) for ``model_id``; returns the number written."""
    if not rows:
        return 0
    ensure_tables(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    dim = int(vectors.shape[1])
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    table = pa.table(
        {
            "item_id": pa.array([r["item_id"] for r in rows], pa.string()),
            "kind": pa.array([r["kind"] for r in rows], pa.string()),
            "source_id": pa.array([r["source_id"] for r in rows], pa.string()),
            "clip_id": pa.array([r.get("clip_id") for r in rows], pa.string()),
            "modality": pa.array([modality] * len(rows), pa.string()),
            "model_id": pa.array([model_id] * len(rows), pa.string()),
            "text_sha256": pa.array([r.get("text_sha256") for r in rows], pa.string()),
            "vkey": pa.array([vkey(r["item_id"]) for r in rows], pa.int64()),
            "vector": pa.ListArray.from_arrays(pa.array(np.arange(0, len(rows) * dim + 1, dim, dtype=np.int32)), flat),
            "created_at": pa.array([now] * len(rows), pa.timestamp("us")),
        }
    )
    con.register("_sem_new", table)
    try:
        con.execute(
            "DELETE FROM embeddings WHERE model_id = ? AND item_id IN (SELECT item_id FROM _sem_new)", [model_id]
        )
        forget_scores(con, "_sem_new", model_id)
        con.execute("INSERT INTO embeddings SELECT * FROM _sem_new")
    finally:
        con.unregister("_sem_new")
    return len(rows)


def forget_scores(con, items: str, model_id: str) -> None:
    """Drop the kept category scores (``category_scores``) of the items of the registered table
    ``items`` (column ``item_id``) for ``model_id``: their vectors are being rewritten or removed."""
    if has_table(con, "category_scores"):
        con.execute(
            f"DELETE FROM category_scores WHERE model_id = ? AND source_id IN (SELECT item_id FROM {items})",
            [model_id],
        )


def read_vectors(
    con, model_id: str, *, kind: str | None = None, item_ids: list[str] | None = None
) -> tuple[pa.Table, np.ndarray]:
    """(item rows, vectors) of ``model_id``, in item id order. Rows: item_id, kind, source_id, clip_id,
    vkey, text_sha256."""
    empty = pa.table({"item_id": pa.array([], pa.string())})
    if not has_table(con):
        return empty, np.zeros((0, 0), np.float32)
    where, params = ["model_id = ?"], [model_id]
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if item_ids is not None:
        con.register("_sem_ask", pa.table({"item_id": pa.array(sorted(set(item_ids)), pa.string())}))
        where.append("item_id IN (SELECT item_id FROM _sem_ask)")
    try:
        t = con.sql(
            f"""SELECT item_id, kind, source_id, clip_id, vkey, text_sha256, vector FROM embeddings
                WHERE {" AND ".join(where)} ORDER BY item_id""",
            params=params,
        ).to_arrow_table()
    finally:
        if item_ids is not None:
            con.unregister("_sem_ask")
    if t.num_rows == 0:
        return t.drop(["vector"]), np.zeros((0, 0), np.float32)
    col = t.column("vector").combine_chunks()
    vecs = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(t.num_rows, -1)
    return t.drop(["vector"]), vecs


def models(con) -> list[dict[str, Any]]:
    from ..catalog.db import dict_rows

    if not has_table(con, "embedding_models"):
        return []
    cur = con.execute(
        """SELECT m.*, (SELECT count(*) FROM embeddings e WHERE e.model_id = m.model_id) AS vectors
           FROM embedding_models m ORDER BY registered_at DESC, model_id"""
    )
    return dict_rows(cur)
