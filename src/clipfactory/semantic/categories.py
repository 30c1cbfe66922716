"""Content categories: zero-shot from prompt ensembles, with a calibrated ``other`` threshold.

The taxonomy is a data file (``taxonomy.toml`` in this package by default; users pass their own): per
category a list of prompts, a ``threshold`` below which an item is ``other``, a ``temperature`` for the
confidence, and manifest labels that map to a category directly. Visual vectors come first where an item
has them (the same text space is needed for prompts, so a visual model is used only with its own text
tower); otherwise the text vector. An item without any vector is ``other`` with confidence 0, never
dropped.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConfigError, NotFoundError
from . import store

DEFAULT_TAXONOMY = "taxonomy.toml"


def load_taxonomy(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The taxonomy file as a dict: categories (name → prompts), other, threshold, temperature, labels.
    Without a path: the file ``CLIPFACTORY_TAXONOMY`` names, else the packaged one."""
    path = path if path is not None else (os.environ.get("CLIPFACTORY_TAXONOMY") or None)
    if path is None:
        text = resources.files("clipfactory.semantic").joinpath(DEFAULT_TAXONOMY).read_text()
        where = "the packaged taxonomy"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no taxonomy file at {p}", item=str(p), fix="give an existing TOML file with --taxonomy")
        text, where = p.read_text(), str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}", item=where, fix="fix the TOML syntax") from None
    cats = data.get("categories") or {}
    if not cats:
        raise ConfigError(f"{where} defines no [categories.NAME] tables", item=where, fix="add categories with prompts")
    for name, c in cats.items():
        if not isinstance(c, dict) or not c.get("prompts"):
            raise ConfigError(f"category {name!r} of {where} has no prompts", item=name, fix='add prompts = ["...", ...]')
    other = str(data.get("other", "other"))
    names = list(cats) + [other]
    flat: dict[str, str] = {}
    scoped: dict[str, dict[str, str]] = {}
    for key, value in (data.get("labels") or {}).items():
        if isinstance(value, dict):
            scoped[key] = {str(k): str(v) for k, v in value.items()}
        else:
            flat[str(key)] = str(value)
    for mapping in [flat, *scoped.values()]:
        for label, cat in mapping.items():
            if cat not in names:
                raise ConfigError(
                    f"label {label!r} maps to {cat!r}, which is not a category of {where}",
                    item=label,
                    fix=f"use one of: {', '.join(names)}",
                )
    others = {}
    for name, c in (data.get("others") or {}).items():
        if not isinstance(c, dict) or not c.get("prompts"):
            raise ConfigError(f"anchor others.{name} of {where} has no prompts", item=name, fix='add prompts = ["...", ...]')
        others[name] = [str(p) for p in c["prompts"]]
    return {
        "where": where,
        "categories": {n: [str(p) for p in c["prompts"]] for n, c in cats.items()},
        "others": others,
        "other": other,
        "threshold": float(data.get("threshold", 0.3)),
        "temperature": float(data.get("temperature", 0.05)),
        "labels": flat,
        "dataset_labels": scoped,
    }


def prompt_centroids(taxonomy: dict[str, Any], encoder) -> tuple[list[str], np.ndarray]:
    """Category names and one unit vector per category: the renormalised mean of its prompts' vectors;
    then one per anchor of ``other`` (named ``other``)."""
    names, groups = [], []
    for n, prompts in taxonomy["categories"].items():
        names.append(n)
        groups.append(prompts)
    for prompts in taxonomy.get("others", {}).values():
        names.append(taxonomy["other"])
        groups.append(prompts)
    cents = []
    for prompts in groups:
        v = encoder.encode(prompts).mean(axis=0)
        cents.append(v / max(np.linalg.norm(v), 1e-12))
    return names, np.stack(cents).astype(np.float32)


def classify(vectors: np.ndarray, names: list[str], centroids: np.ndarray, taxonomy: dict[str, Any]):
    """(category index or -1 for other, confidence, scores) per row of ``vectors``."""
    if vectors.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, len(names)), np.float32)
    scores = vectors @ centroids.T
    best = scores.argmax(axis=1)
    top = scores[np.arange(len(best)), best]
    z = (scores - top[:, None]) / taxonomy["temperature"]
    conf = 1.0 / np.exp(z).sum(axis=1)
    is_other = np.array([n == taxonomy["other"] for n in names])[best]
    cat = np.where((top >= taxonomy["threshold"]) & ~is_other, best, -1)
    # nothing close: `other`, with the best similarity (below the threshold) as a low confidence
    conf = np.where(top >= taxonomy["threshold"], conf, np.clip(top, 0.0, None))
    return cat, conf.astype(np.float32), scores


def _labels(con, source_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    con.register("_sem_l", pa.table({"source_id": pa.array(source_ids, pa.string())}))
    try:
        rows = con.execute(
            """SELECT source_id, dataset, label FROM memberships
               WHERE label IS NOT NULL AND source_id IN (SELECT source_id FROM _sem_l)"""
        ).fetchall()
    finally:
        con.unregister("_sem_l")
    out: dict[str, list[tuple[str, str]]] = {}
    for sid, ds, lab in rows:
        out.setdefault(sid, []).append((ds, lab))
    return out


def categorise(catalog, source_ids: list[str] | None = None, *, taxonomy=None, encoder=None, datasets=None) -> dict[str, Any]:
    """Category of every source (of ``datasets``, or ``source_ids``): a dict with ``rows`` (source_id,
    category, confidence, how, hours) and the scores matrix."""
    from .search import current_model_id
    from .text_model import shared_encoder

    tax = taxonomy if isinstance(taxonomy, dict) else load_taxonomy(taxonomy)
    with catalog.read() as con:
        where, params = "", []
        if datasets:
            where = "WHERE s.source_id IN (SELECT source_id FROM memberships WHERE dataset IN (SELECT unnest(?)))"
            params = [list(datasets)]
        elif source_ids is not None:
            where = "WHERE s.source_id IN (SELECT unnest(?))"
            params = [list(source_ids)]
        has_spans = store.has_table(con, "clip_spans")
        span_ms = (
            "(SELECT sum(greatest(e - b, 0)) FROM (SELECT DISTINCT start_ms AS b, end_ms AS e FROM clip_spans c "
            "WHERE c.source_id = s.source_id))"
            if has_spans else "NULL"
        )
        rows = con.execute(
            f"""SELECT s.source_id, coalesce(s.duration_ms, {span_ms}, 0) AS ms, s.blob_uri IS NOT NULL AS held
                FROM sources s {where} ORDER BY s.source_id""",
            params,
        ).fetchall()
        ids = [r[0] for r in rows]
        labels = _labels(con, ids)
    try:
        model_id = current_model_id(catalog)
    except NotFoundError:
        model_id = None
    vecs_by_id: dict[str, int] = {}
    vecs = np.zeros((0, 0), np.float32)
    names = list(tax["categories"])
    cents = None
    if model_id:
        with catalog.read() as con:
            t, vecs = store.read_vectors(con, model_id, kind="source", item_ids=ids)
        vecs_by_id = {s: i for i, s in enumerate(t.column("item_id").to_pylist())} if t.num_rows else {}
        encoder = encoder or shared_encoder()
        names, cents = prompt_centroids(tax, encoder)
    cat, conf, scores = (
        classify(vecs, names, cents, tax) if cents is not None else (np.zeros(0), np.zeros(0), np.zeros((0, len(names))))
    )
    out = []
    for sid, ms, held in rows:
        mapped = None
        for ds, lab in labels.get(sid, []):
            mapped = tax["dataset_labels"].get(ds, {}).get(lab) or tax["labels"].get(lab) or mapped
        i = vecs_by_id.get(sid)
        if mapped:
            c, cf, how = mapped, 1.0, "label"
        elif i is None:
            c, cf, how = tax["other"], 0.0, "no text"
        else:
            c = names[cat[i]] if cat[i] >= 0 else tax["other"]
            cf, how = round(float(conf[i]), 4), "zero-shot"
        out.append({"source_id": sid, "category": c, "confidence": cf, "how": how, "hours": (ms or 0) / 3.6e6,
                    "held": bool(held), "row": i})
    return {"rows": out, "scores": scores, "names": names, "taxonomy": tax, "model_id": model_id}


def category_mix(catalog, *, datasets=None, taxonomy=None, encoder=None) -> dict[str, Any]:
    """Sources and hours per category (all of the taxonomy's categories, zeros included)."""
    r = categorise(catalog, taxonomy=taxonomy, encoder=encoder, datasets=datasets)
    tax = r["taxonomy"]
    order = list(tax["categories"]) + [tax["other"]]
    counts = {c: [0, 0.0] for c in order}
    for row in r["rows"]:
        counts.setdefault(row["category"], [0, 0.0])
        counts[row["category"]][0] += 1
        counts[row["category"]][1] += row["hours"]
    n = len(r["rows"])
    return {
        "sources": n,
        "datasets": list(datasets or []),
        "taxonomy": tax["where"],
        "model_id": r["model_id"],
        "without_text": sum(1 for x in r["rows"] if x["how"] == "no text"),
        "categories": [
            {"category": c, "sources": v[0], "share": round(v[0] / n, 4) if n else 0.0, "hours": round(v[1], 3)}
            for c, v in counts.items()
        ],
    }


def source_categories(catalog, source_id: str, *, taxonomy=None, encoder=None) -> dict[str, Any]:
    """One source's category, confidence and score per category."""
    r = categorise(catalog, [source_id], taxonomy=taxonomy, encoder=encoder)
    if not r["rows"]:
        raise NotFoundError("no such source in the catalog", item=source_id, fix="see `clipfactory sources list`")
    row = r["rows"][0]
    scores = {}
    if row["row"] is not None and len(r["scores"]):
        for n, v in zip(r["names"], r["scores"][row["row"]], strict=True):
            scores[n] = max(scores.get(n, -1.0), round(float(v), 4))
    why = {
        "label": "(its manifest label maps to it in the taxonomy file)",
        "no text": "(no text or vector: other, with zero confidence)",
        "zero-shot": f"(nearest prompts; other below {r['taxonomy']['threshold']})",
    }[row["how"]]
    return {"source_id": source_id, "category": row["category"], "confidence": row["confidence"], "how": row["how"],
            "why": why, "threshold": r["taxonomy"]["threshold"], "model_id": r["model_id"], "scores": scores}
