"""Visual vectors: one per clip from the shot thumbnail the analysis pass kept, one per source (the mean).

The frames come from the single analysis pass (``media.analyse`` stores a small JPEG of each shot's middle
frame, which the clip's ``thumb_uri`` names): nothing is decoded again. A clip's vector is remade only when
its thumbnail changed (``text_sha256`` holds the thumbnail's hash for visual rows); a source's vector is the
renormalised mean of its clips' vectors. Rows carry their ``source_id``, so a takedown removes them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

from . import store


def _thumbs(con, source_ids: list[str]) -> list[tuple[str, str, str]]:
    con.register("_sem_vs", pa.table({"source_id": pa.array(source_ids, pa.string())}))
    try:
        return con.execute(
            """SELECT clip_id, source_id, thumb_uri FROM clips
               WHERE thumb_uri IS NOT NULL AND source_id IN (SELECT source_id FROM _sem_vs)
               ORDER BY source_id, start_ms, clip_id"""
        ).fetchall()
    finally:
        con.unregister("_sem_vs")


def embed_visual(catalog, blobs, encoder, source_ids: list[str], *, batch: int = 32) -> dict[str, dict[str, Any]]:
    """Write the missing visual vectors of the clips of ``source_ids`` (and the sources' mean vectors);
    returns, per source, ``{"vectors": n, "encoded": n, "frames": n}``."""
    from PIL import Image

    with catalog.read() as con:
        if not store.has_table(con, "clips"):
            return {}
        rows = _thumbs(con, source_ids)
        have: dict[str, str] = {}
        if store.has_table(con):
            t, _ = store.read_vectors(con, encoder.model_id, kind="clip", item_ids=[r[0] for r in rows])
            if t.num_rows:
                have = dict(zip(t.column("item_id").to_pylist(), t.column("text_sha256").to_pylist(), strict=True))
    items = [
        {"item_id": cid, "kind": "clip", "source_id": sid, "clip_id": cid, "text_sha256": uri.rsplit(":", 1)[-1][:32],
         "uri": uri}
        for cid, sid, uri in rows
    ]
    todo = [it for it in items if have.get(it["item_id"]) != it["text_sha256"]]
    images = []
    for it in todo:
        with Image.open(blobs.path_of(it["uri"])) as im:
            images.append(im.convert("RGB"))
    vecs = encoder.encode_images(images, batch=batch) if todo else np.zeros((0, encoder.dim), np.float32)
    with catalog.write() as con:
        store.register_model(con, encoder.describe(), "visual")
        store.write_vectors(con, todo, vecs, model_id=encoder.model_id, modality="visual")
        t, allv = store.read_vectors(con, encoder.model_id, kind="clip", item_ids=[it["item_id"] for it in items])
        by_source: dict[str, list[int]] = {}
        for i, sid in enumerate(t.column("source_id").to_pylist() if t.num_rows else []):
            by_source.setdefault(sid, []).append(i)
        src_rows, src_vecs = [], []
        hashes = t.column("text_sha256").to_pylist() if t.num_rows else []
        for sid, idx in sorted(by_source.items()):
            m = allv[idx].mean(axis=0)
            src_vecs.append(m / max(float(np.linalg.norm(m)), 1e-12))
            digest = hashlib.sha256("".join(sorted(hashes[i] or "" for i in idx)).encode()).hexdigest()[:32]
            src_rows.append({"item_id": sid, "kind": "source", "source_id": sid, "clip_id": None, "text_sha256": digest})
        if src_rows:
            store.write_vectors(con, src_rows, np.stack(src_vecs), model_id=encoder.model_id, modality="visual")
    out: dict[str, dict[str, Any]] = {sid: {"vectors": 0, "encoded": 0, "frames": 0} for sid in source_ids}
    todo_ids = {it["item_id"] for it in todo}
    for it in items:
        o = out[it["source_id"]]
        o["frames"] += 1
        o["vectors"] += 1
        o["encoded"] += it["item_id"] in todo_ids
    for sid in by_source:
        out[sid]["vectors"] += 1
    return out
