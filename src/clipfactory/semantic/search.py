"""``clipfactory search "someone slicing bread"``: sources and clips ranked by meaning.

The query is encoded by the same text model as the catalog's vectors; the vector index beside the catalog
(:mod:`clipfactory.semantic.index`) gives the nearest items, which are read back from the catalog (an item
that has left it is never returned). Each result carries its licence decision for the purpose: the stored
decision of the policy gate (``clipfactory policy check --purpose P``), with its reasons.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConfigError, NotFoundError, PolicyError
from . import store
from .index import open_index


def current_model_id(catalog, modality: str = "text") -> str:
    """The model of the catalog's newest vectors of ``modality``."""
    with catalog.read() as con:
        ms = [m for m in store.models(con) if m["modality"] == modality and m["vectors"]]
    if not ms:
        raise NotFoundError(
            f"the catalog has no {modality} vectors",
            item=str(catalog.where),
            fix="run `clipfactory semantic index` first"
            if modality == "text"
            else "set semantic.visual.model to a visual model (docs/semantic.md), then run "
            "`clipfactory semantic index` (without a model it makes no visual vectors)",
        )
    return ms[0]["model_id"]


def decisions_for(catalog, purpose: str, source_ids: list[str]) -> dict[str, dict[str, Any]]:
    """source_id → {decision, use_ok, acquire_ok, reasons} of the stored gate decisions for ``purpose``."""
    from ..policy.gate import evaluation_info

    if evaluation_info(catalog, purpose) is None:
        raise PolicyError(
            f"purpose {purpose!r} was never evaluated in this catalog",
            item=purpose,
            fix=f"run `clipfactory policy check --purpose {purpose}`",
        )
    with catalog.read() as con:
        con.register("_sem_d", pa.table({"source_id": pa.array(sorted(set(source_ids)), pa.string())}))
        try:
            rows = con.execute(
                """SELECT source_id, decision, use_ok, acquire_ok, reasons FROM policy_decisions
                   WHERE purpose = ? AND source_id IN (SELECT source_id FROM _sem_d)""",
                [purpose],
            ).fetchall()
        finally:
            con.unregister("_sem_d")
    out = {
        sid: {"decision": d, "use_ok": u, "acquire_ok": a, "reasons": list(r or [])} for sid, d, u, a, r in rows
    }
    for sid in source_ids:
        out.setdefault(sid, {"decision": "undecided", "use_ok": None, "acquire_ok": None, "reasons": []})
    return out


def search(
    catalog,
    query: str,
    *,
    k: int = 10,
    purpose: str = "research",
    kind: str | None = None,
    encoder=None,
    modality: str = "text",
    visual_model: str | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """The ``k`` items nearest to ``query``, nearest first, each with its licence decision for ``purpose``.

    ``modality="visual"`` ranks by the visual vectors (of the shot thumbnails), the query going through the
    visual model's own text tower (``visual_model``: what ``semantic.visual.model`` names)."""
    if isinstance(k, bool) or int(k) != k or k <= 0:
        raise ConfigError(f"--k {k} is not allowed", item="--k", fix="give a positive integer")
    if kind is not None and kind not in ("source", "clip"):
        raise ConfigError(f"unknown kind {kind!r}", item="--kind", fix="source or clip")
    if not query or not query.strip():
        raise ConfigError("the search query is empty", item="QUERY", fix="give some text to search for")
    if modality not in ("text", "visual"):
        raise ConfigError(f"unknown modality {modality!r}", item="--modality", fix="text or visual")
    model_id = current_model_id(catalog, modality)
    if modality == "visual":
        from .visual_model import shared_visual_encoder

        if encoder is None:
            if not visual_model:
                raise ConfigError(
                    "searching the visual vectors needs their model",
                    item="semantic.visual.model",
                    fix="set semantic.visual.model to the model that made them (docs/semantic.md)",
                )
            encoder = shared_visual_encoder(visual_model)
        encode = encoder.encode_text
    else:
        from .text_model import shared_encoder

        encoder = encoder or shared_encoder()
        encode = encoder.encode
    if encoder.model_id != model_id:
        raise NotFoundError(
            f"the catalog's {modality} vectors were made by {model_id}, not by {encoder.model_id}",
            item=model_id,
            fix="run `clipfactory semantic index` to compute vectors with this model",
        )
    idx, meta = open_index(catalog, model_id)
    qv = encode([query])[0]
    want = max(1, int(k))
    fetch = want if kind is None else want * 4
    results: list[dict[str, Any]] = []
    while True:
        keys, sims = idx.search(qv, fetch)
        signed = np.asarray(keys, np.uint64).view(np.int64).tolist()
        with catalog.read() as con:
            con.register("_sem_k", pa.table({"vkey": pa.array(signed, pa.int64())}))
            try:
                rows = con.execute(
                    """SELECT e.vkey, e.item_id, e.kind, e.source_id, e.clip_id, s.title, s.url, s.platform,
                              (SELECT string_agg(DISTINCT m.dataset || coalesce(':' || m.label, ''), ', ')
                               FROM memberships m WHERE m.source_id = e.source_id) AS datasets
                       FROM embeddings e LEFT JOIN sources s ON s.source_id = e.source_id
                       WHERE e.model_id = ? AND e.vkey IN (SELECT vkey FROM _sem_k)""",
                    [model_id],
                ).fetchall()
            finally:
                con.unregister("_sem_k")
        by_key = {r[0]: r for r in rows}
        results = []
        for key, sim in zip(signed, sims.tolist(), strict=True):
            r = by_key.get(key)
            if r is None or (kind and r[2] != kind):
                continue
            results.append(
                {"item_id": r[1], "kind": r[2], "source_id": r[3], "clip_id": r[4], "score": round(float(sim), 4),
                 "title": r[5], "url": r[6], "platform": r[7], "datasets": r[8]}
            )
        if len(results) >= want or fetch >= len(idx):
            break
        fetch = min(len(idx), fetch * 4)
    results = results[:want]
    from ..policy.gate import check_decisions, evaluation_info

    # The ranking stands whatever the decisions: a purpose never evaluated, or decisions made under other
    # policy, registry or permissions files, are said in a note beside the results.
    note, dec = None, {}
    ids = [r["source_id"] for r in results]
    if evaluation_info(catalog, purpose) is None:
        note = str(PolicyError(f"purpose {purpose!r} was never evaluated in this catalog", item=purpose,
                               fix=f"run `clipfactory policy check --purpose {purpose}`"))
    else:
        if settings is not None and ids:
            try:
                check_decisions(catalog, purpose, settings=settings, source_ids=ids)
            except PolicyError as exc:
                note = str(exc)
        dec = decisions_for(catalog, purpose, ids)
        undecided = sorted({i for i in ids if dec[i]["decision"] == "undecided"})
        if undecided and note is None:
            n = len(undecided)
            note = (f"{n} of the results {'has' if n == 1 else 'have'} no {purpose!r} decision (added to the "
                    f"catalog after the last policy check, e.g. {undecided[0]}): run "
                    f"`clipfactory policy check --purpose {purpose}`")
    for r in results:
        d = dec.get(r["source_id"], {"decision": "not evaluated", "use_ok": None, "acquire_ok": None, "reasons": []})
        r["decision"], r["reasons"] = d["decision"], d["reasons"]
        r["use_ok"], r["acquire_ok"] = d["use_ok"], d["acquire_ok"]
    return {"query": query, "purpose": purpose, "modality": modality, "model_id": model_id, "k": want,
            "index_vectors": len(idx), "decisions_note": note,
            "results": results}
