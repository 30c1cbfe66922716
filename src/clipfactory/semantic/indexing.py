"""``clipfactory semantic index``: compute the text vectors the catalog is missing, then refresh the index.

:func:`index_catalog` runs the ``semantic.text`` stage over every source of the catalog (or of some
datasets) in one run; the stage calls :func:`embed_sources`, which encodes only texts whose vector (for
the same model and text hash) is missing, and writes them in one transaction. The vector index beside the
catalog (:mod:`clipfactory.semantic.index`) is rebuilt afterwards when the vectors changed, and the
sources' similarities to the taxonomy's prompts are kept for the vectors that have none yet
(:func:`clipfactory.semantic.categories.cache_scores`), so that categories and plans need not read the
vectors again.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from . import store
from .texts import clip_texts, source_texts


def embed_sources(catalog, encoder, source_ids: list[str], *, max_captions: int = 3) -> dict[str, dict[str, Any]]:
    """Write the missing text vectors of ``source_ids`` (and of their captioned clips); returns, per
    source, ``{"vectors": n, "text": bool, "encoded": n}``."""
    with catalog.read() as con:
        texts = source_texts(con, source_ids, max_captions=max_captions)
        clips = clip_texts(con, source_ids)
        have: set[tuple[str, str]] = set()
        if store.has_table(con):
            con.register("_sem_q", pa.table({"item_id": pa.array(list(texts) + [c["clip_id"] for c in clips], pa.string())}))
            try:
                have = {
                    (i, h)
                    for i, h in con.execute(
                        "SELECT item_id, text_sha256 FROM embeddings WHERE model_id = ? AND item_id IN (SELECT item_id FROM _sem_q)",
                        [encoder.model_id],
                    ).fetchall()
                }
            finally:
                con.unregister("_sem_q")
    items: list[dict[str, Any]] = []
    for sid, text in texts.items():
        if text:
            items.append({"item_id": sid, "kind": "source", "source_id": sid, "clip_id": None, "text": text})
    for c in clips:
        items.append({"item_id": c["clip_id"], "kind": "clip", "source_id": c["source_id"], "clip_id": c["clip_id"], "text": c["text"]})
    for it in items:
        it["text_sha256"] = store.text_hash(it["text"])
    todo = [it for it in items if (it["item_id"], it["text_sha256"]) not in have]
    stale = [sid for sid, text in texts.items() if not text]  # a source whose text went away loses its vector
    vecs = encoder.encode([it["text"] for it in todo]) if todo else np.zeros((0, encoder.dim), np.float32)
    with catalog.write() as con:
        store.register_model(con, encoder.describe(), "text")
        store.write_vectors(con, todo, vecs, model_id=encoder.model_id, modality="text")
        if stale:
            con.register("_sem_gone", pa.table({"item_id": pa.array(stale, pa.string())}))
            try:
                con.execute(
                    "DELETE FROM embeddings WHERE model_id = ? AND item_id IN (SELECT item_id FROM _sem_gone)",
                    [encoder.model_id],
                )
                store.forget_scores(con, "_sem_gone", encoder.model_id)
            finally:
                con.unregister("_sem_gone")
    out: dict[str, dict[str, Any]] = {sid: {"vectors": 0, "text": bool(t), "encoded": 0} for sid, t in texts.items()}
    todo_ids = {it["item_id"] for it in todo}
    for it in items:
        o = out.setdefault(it["source_id"], {"vectors": 0, "text": False, "encoded": 0})
        o["vectors"] += 1
        o["encoded"] += it["item_id"] in todo_ids
    return out


def index_catalog(settings, *, datasets: list[str] | None = None, progress=None, model_dir: str | None = None) -> dict[str, Any]:
    """Compute the missing text vectors of the catalog's sources (of ``datasets``), then refresh the
    vector index. Returns a summary: sources, items with vectors, vectors encoded now, the model."""
    from .. import registry
    from ..catalog import Catalog, load_records
    from ..factory.pipeline import select_sources
    from ..pipelines import Run
    from ..records import SourceRecord
    from .categories import cache_scores
    from .index import open_index

    t0 = time.monotonic()
    catalog = Catalog(settings.catalog, create=False)
    if datasets:
        sources = select_sources(catalog, list(datasets))
    else:
        # whole records: the run writes the records its stages keep back to the catalog, so a bare id
        # would blank every other field of the source
        with catalog.read() as con:
            ids = [r[0] for r in con.execute("SELECT source_id FROM sources ORDER BY source_id").fetchall()]
            sources = load_records(con, SourceRecord, ids) if ids else []
    cfg = dict(settings.stage_config("semantic.text"))
    if model_dir:
        cfg["model_dir"] = model_dir
    with Run(settings, command="semantic index", catalog=catalog, progress=progress) as run:
        stage = registry.get("semantic.text")(cfg, run.context())
        stage.setup()
        done = run.stage(stage, sources)
        visual = registry.get("semantic.visual")(dict(settings.stage_config("semantic.visual")), run.context())
        visual.setup()
        vdone = run.stage(visual, sources)
    enc = getattr(stage, "_encoder", None)
    if enc is None:
        from ..errors import ConfigError

        raise ConfigError(stage._load_error or "no text model", item="semantic.text")
    counts = getattr(stage, "last_counts", {"encoded": 0, "vectors": 0, "without_text": 0})
    idx, meta = open_index(catalog, enc.model_id)
    scored = cache_scores(catalog, encoder=enc)
    vcounts = getattr(visual, "last_counts", None) or {"vectors": 0, "encoded": 0, "frames": 0, "skipped": visual._skip}
    venc = getattr(visual, "_encoder", None)
    vsummary: dict[str, Any] = {"skipped": vcounts.get("skipped"), "failed": vdone.summary.failed}
    if venc is not None:
        vidx, vmeta = open_index(catalog, venc.model_id)
        vsummary.update(
            model=venc.describe(), vectors=vcounts["vectors"], encoded=vcounts["encoded"],
            index={"vectors": len(vidx), "rebuilt": vmeta.get("rebuilt", False)},
        )
    return {
        "run_id": run.run_id,
        "model": enc.describe(),
        "sources": len(sources),
        "kept": done.summary.kept,
        "failed": done.summary.failed,
        "vectors": counts["vectors"],
        "encoded": counts["encoded"],
        "without_text": counts["without_text"],
        "index": {"vectors": len(idx), "rebuilt": meta.get("rebuilt", False)},
        "category_scores": scored,
        "visual": vsummary,
        "seconds": round(time.monotonic() - t0, 2),
    }
