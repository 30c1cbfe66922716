"""Content categories: zero-shot from prompt ensembles, with a calibrated ``other`` threshold.

The taxonomy is a data file (``taxonomy.toml`` in this package by default; users pass their own): per
category a list of prompts, a ``threshold`` below which an item is ``other``, a ``temperature`` for the
confidence, and manifest labels that map to a category directly. Visual vectors come first where an item
has them (the same text space is needed for prompts, so a visual model is used only with its own text
tower); otherwise the text vector. An item without any vector is ``other`` with confidence 0, never
dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, NotFoundError
from . import store

DEFAULT_TAXONOMY = "taxonomy.toml"


def _number(data: dict, key: str, default: float, where: str, lo: float, hi: float | None, allowed: str) -> float:
    """``data[key]`` as a float within its range (``lo`` excluded when ``hi`` is None), else one ConfigError."""
    value = data.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = value == value and ((lo <= value <= hi) if hi is not None else (value > lo and value != float("inf")))
    if not ok:
        raise ConfigError(f"{key} = {value!r} in {where} is not {allowed}", item=f"{where}: {key}", fix=f"set {key} to {allowed}")
    return value


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
        "threshold": _number(data, "threshold", 0.3, where, -1.0, 1.0, "a number from -1 to 1 (a cosine similarity)"),
        "temperature": _number(data, "temperature", 0.05, where, 0.0, None, "a number above 0"),
        "labels": flat,
        "dataset_labels": scoped,
    }


def prompt_centroids(taxonomy: dict[str, Any], encoder) -> tuple[list[str], np.ndarray]:
    """Category names and one unit vector per category: the renormalised mean of its prompts' vectors;
    then one per prompt of each anchor of ``other`` (named ``other``).

    A category is one kind of content, so the mean of its prompts (an ensemble) is less lexical than
    any of them: a label that shares one word with one prompt ("high jump", "a view from high in the
    sky") does not win the category. An anchor of ``other`` is a union of unrelated content (music,
    athletics, board games), whose mean is close to none of it; each of its prompts stands alone."""
    names, groups = [], []
    for n, prompts in taxonomy["categories"].items():
        names.append(n)
        groups.append(prompts)
    for prompts in taxonomy.get("others", {}).values():
        for p in prompts:
            names.append(taxonomy["other"])
            groups.append([p])
    cents = []
    for prompts in groups:
        v = encoder.encode(prompts).mean(axis=0)
        cents.append(v / max(np.linalg.norm(v), 1e-12))
    return names, np.stack(cents).astype(np.float32)


def classify(vectors: np.ndarray, names: list[str], centroids: np.ndarray, taxonomy: dict[str, Any]):
    """(category index or -1 for other, confidence, scores) per row of ``vectors``."""
    if vectors.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, len(names)), np.float32)
    return classify_scores(vectors @ centroids.T, names, taxonomy)


def classify_scores(scores: np.ndarray, names: list[str], taxonomy: dict[str, Any]):
    """:func:`classify` from the similarities to the prompt centroids (one row per item)."""
    if scores.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, len(names)), np.float32)
    best = scores.argmax(axis=1)
    top = scores[np.arange(len(best)), best]
    z = (scores - top[:, None]) / taxonomy["temperature"]
    conf = 1.0 / np.exp(z).sum(axis=1)
    is_other = np.array([n == taxonomy["other"] for n in names])[best]
    cat = np.where((top >= taxonomy["threshold"]) & ~is_other, best, -1)
    # nothing close: `other`, with the best similarity (below the threshold) as a low confidence
    conf = np.where(top >= taxonomy["threshold"], conf, np.clip(top, 0.0, None))
    return cat, conf.astype(np.float32), scores


#: Vectors read per batch when categorising (the whole catalog's vectors never sit in memory at once).
BATCH_ROWS = 65_536
#: DuckDB's memory while the vectors are read: without a bound it keeps every block it has read cached,
#: up to most of the machine's memory (the vectors of 10 M sources are 15 GB).
SCAN_MEMORY = "1GB"


@contextlib.contextmanager
def _bounded_memory(con, limit: str = SCAN_MEMORY):
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{before}'")
HOW = ("label", "no text", "zero-shot")


def _scope(datasets, source_ids, col: str) -> tuple[str, list[Any]]:
    """A condition on the source id column ``col`` for the sources of ``datasets``, or ``source_ids``."""
    if datasets:
        return f"{col} IN (SELECT source_id FROM memberships WHERE dataset IN (SELECT unnest(?)))", [list(datasets)]
    if source_ids is not None:
        return f"{col} IN (SELECT unnest(?))", [list(source_ids)]
    return "TRUE", []


def centroid_names(taxonomy: dict[str, Any]) -> list[str]:
    """The names of :func:`prompt_centroids`' rows, without encoding the prompts."""
    return list(taxonomy["categories"]) + [taxonomy["other"]] * sum(len(p) for p in taxonomy.get("others", {}).values())


def _label_table(tax: dict[str, Any], order: list[str]) -> pa.Table:
    """The taxonomy's label mappings as rows (dataset or NULL for every dataset, label, category code)."""
    ds, lab, code = [], [], []
    for label, c in tax["labels"].items():
        ds.append(None), lab.append(label), code.append(order.index(c))
    for d, mapping in tax["dataset_labels"].items():
        for label, c in mapping.items():
            ds.append(d), lab.append(label), code.append(order.index(c))
    return pa.table({"dataset": pa.array(ds, pa.string()), "label": pa.array(lab, pa.string()),
                     "code": pa.array(code, pa.int16())})


def prompts_key(taxonomy: dict[str, Any], model_id: str) -> str:
    """What the columns of a row of ``category_scores`` depend on: the model and the prompt groups."""
    groups = [[n, p] for n, p in taxonomy["categories"].items()]
    groups += [[taxonomy["other"], [q]] for p in taxonomy.get("others", {}).values() for q in p]
    return hashlib.sha256(json.dumps([model_id, groups]).encode()).hexdigest()[:32]


def _list_array(flat: np.ndarray, width: int) -> pa.Array:
    n = len(flat) // width if width else 0
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * width + 1, width, dtype=np.int32)),
                                    pa.array(np.ascontiguousarray(flat, np.float32).reshape(-1)))


def _batches(con, sql: str, params: list[Any]):
    """(row numbers, float matrix) per batch of a query of two columns: an integer and a FLOAT[]."""
    for batch in con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS):
        if batch.num_rows:
            flat = batch.column(1).flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            yield batch.column(0).to_numpy(), flat.reshape(batch.num_rows, -1)


def category_columns(
    catalog,
    source_ids: list[str] | None = None,
    *,
    taxonomy=None,
    encoder=None,
    datasets=None,
    extra: str = "",
    extra_params: list[Any] | None = None,
    member_agg: str = "",
    keep_scores: bool = False,
) -> dict[str, Any]:
    """The category of every source (of ``datasets``, or ``source_ids``) as columns, in source id order:
    ``source_id`` (Arrow), and NumPy arrays ``code`` (into ``order``: the taxonomy's categories, then
    other), ``confidence``, ``how`` (into :data:`HOW`), ``hours``, ``held``, ``own_score`` (the
    similarity to the prompts of the category it got; its confidence where it has no vector) and
    ``has_vector``. ``extra`` adds SQL columns over the sources (alias ``s``) to ``table``;
    ``member_agg``, an aggregate over each source's memberships (alias ``m``), adds the column
    ``member_agg`` in the same pass over ``memberships`` as the mapped labels. With
    ``keep_scores``, ``scores`` holds every source's similarities to each of ``names`` (NaN without
    a vector).

    One SQL query reads the sources and their mapped manifest labels. The similarities come from
    ``category_scores`` where it holds them for the source's current vector (``semantic index`` keeps
    them, :func:`cache_scores`), else from the vectors, read in batches of :data:`BATCH_ROWS`; so
    memory stays a few bytes per source."""
    from .search import current_model_id
    from .text_model import shared_encoder

    tax = taxonomy if isinstance(taxonomy, dict) else load_taxonomy(taxonomy)
    order = list(tax["categories"]) + [tax["other"]]
    other = order.index(tax["other"])
    try:
        model_id = current_model_id(catalog)
    except NotFoundError:
        model_id = None
    # the prompts are encoded (the model loaded) only when some vector has no kept scores
    names, cents = (centroid_names(tax) if model_id else list(tax["categories"])), None
    m_in, m_p = _scope(datasets, source_ids, "m.source_id")
    c_in, c_p = _scope(datasets, source_ids, "source_id")
    e_in, e_p = _scope(datasets, source_ids, "item_id")
    s_in, s_p = _scope(datasets, source_ids, "s.source_id")
    with catalog.read() as con, _bounded_memory(con):
        spans = (
            f"""SELECT source_id, sum(greatest(e - b, 0)) AS ms FROM (
                    SELECT DISTINCT source_id, start_ms AS b, end_ms AS e FROM clip_spans
                    WHERE start_ms IS NOT NULL AND end_ms IS NOT NULL AND {c_in}) GROUP BY 1"""
            if store.has_table(con, "clip_spans") else "SELECT NULL::VARCHAR AS source_id, NULL::BIGINT AS ms WHERE false"
        )
        con.register("_sem_labels", _label_table(tax, order))
        # without an aggregate of every membership, only the mapped ones are read
        agg, agg_col = (f", {member_agg} AS member_agg", ", mapped.member_agg") if member_agg else ("", "")
        mwhere = "" if member_agg else "m.label IS NOT NULL AND (d.code IS NOT NULL OR f.code IS NOT NULL) AND"
        try:
            t = con.sql(
                f"""WITH mapped AS (
                        SELECT m.source_id, min(coalesce(d.code, f.code)) AS code {agg}
                        FROM memberships m
                        LEFT JOIN _sem_labels d ON d.dataset = m.dataset AND d.label = m.label
                        LEFT JOIN _sem_labels f ON f.dataset IS NULL AND f.label = m.label
                        WHERE {mwhere} {m_in}
                        GROUP BY 1),
                    spans AS ({spans})
                    SELECT s.source_id, coalesce(s.duration_ms, spans.ms, 0) / 3.6e6 AS hours,
                           s.blob_uri IS NOT NULL AS held, mapped.code AS label_code {extra} {agg_col}
                    FROM sources s LEFT JOIN mapped USING (source_id) LEFT JOIN spans USING (source_id)
                    WHERE {s_in}""",
                params=[*m_p, *(c_p if store.has_table(con, "clip_spans") else []), *(extra_params or []), *s_p],
            ).to_arrow_table()
            # in source id order (Arrow sorts 10 M ids in seconds, where DuckDB's ORDER BY under the
            # memory bound spills the whole row to disk)
            t = t.take(pc.sort_indices(t.column("source_id")))
            n_vec = (
                con.execute(f"SELECT count(*) FROM embeddings WHERE model_id = ? AND kind = 'source' AND {e_in}",
                            [model_id, *e_p]).fetchall()[0][0]
                if model_id else 0
            )
        finally:
            con.unregister("_sem_labels")
        n = t.num_rows
        label_code = t.column("label_code").to_numpy(zero_copy_only=False)
        mapped = ~np.isnan(label_code.astype(np.float64))
        code = np.where(mapped, np.nan_to_num(label_code.astype(np.float64), nan=other), other).astype(np.int16)
        conf = np.where(mapped, 1.0, 0.0)
        how = np.where(mapped, 0, 1).astype(np.int8)
        own = conf.copy()
        has_vec = np.zeros(n, bool)
        scores = np.full((n, len(names)), np.nan, np.float32) if keep_scores else None
        if model_id and n:
            name_code = np.array([order.index(x) for x in names], np.int16)
            first_of = np.array([names.index(order[c]) if order[c] in names else -1 for c in range(len(order))])

            def take(i: np.ndarray, sc: np.ndarray) -> None:
                cat, cf, _ = classify_scores(sc, names, tax)
                zs = ~mapped[i]
                code[i[zs]] = np.where(cat[zs] >= 0, name_code[np.maximum(cat[zs], 0)], other)
                conf[i[zs]] = np.round(cf[zs].astype(np.float64), 4)
                how[i[zs]] = 2
                col = first_of[code[i]]
                own[i] = np.where(col >= 0, sc[np.arange(len(i)), np.maximum(col, 0)].astype(np.float64), conf[i])
                has_vec[i] = True
                if scores is not None:
                    scores[i] = sc

            key = prompts_key(tax, model_id)
            con.register("_sem_rows", pa.table({"source_id": t.column("source_id"),
                                               "i": pa.array(np.arange(n, dtype=np.int64))}))
            try:
                if store.has_table(con, "category_scores"):
                    # a kept row is dropped whenever its source's vector is written or removed
                    for i, sc in _batches(
                        con,
                        """SELECT r.i, c.scores FROM category_scores c JOIN _sem_rows r ON r.source_id = c.source_id
                           WHERE c.model_id = ? AND c.prompts_sha256 = ?""",
                        [model_id, key],
                    ):
                        if sc.shape[1] == len(names):
                            take(i, sc)
                want = has_vec
                if int(has_vec.sum()) < n_vec:  # which sources have a vector but no kept scores
                    want = has_vec.copy()
                    want[con.sql(
                        """SELECT r.i FROM embeddings e JOIN _sem_rows r ON r.source_id = e.item_id
                           WHERE e.model_id = ? AND e.kind = 'source'""", params=[model_id],
                    ).to_arrow_table().column(0).to_numpy()] = True
            finally:
                con.unregister("_sem_rows")
            need = np.flatnonzero(want & ~has_vec)
            if len(need):  # no kept scores for these: from their vectors
                names, cents = prompt_centroids(tax, encoder or shared_encoder())
                con.register("_sem_rows", pa.table({"source_id": t.column("source_id").take(pa.array(need)),
                                                   "i": pa.array(need)}))
                try:
                    for i, vecs in _batches(
                        con,
                        """SELECT r.i, e.vector FROM embeddings e JOIN _sem_rows r ON r.source_id = e.item_id
                           WHERE e.model_id = ? AND e.kind = 'source'""",
                        [model_id],
                    ):
                        take(i, vecs @ cents.T)
                finally:
                    con.unregister("_sem_rows")
    return {"source_id": t.column("source_id"), "code": code, "confidence": conf, "how": how,
            "hours": t.column("hours").to_numpy(zero_copy_only=False).astype(np.float64),
            "held": t.column("held").to_numpy(zero_copy_only=False).astype(bool), "own_score": own,
            "has_vector": has_vec, "scores": scores, "names": names, "order": order, "taxonomy": tax,
            "model_id": model_id, "table": t}


def cache_scores(catalog, *, taxonomy=None, encoder=None) -> int:
    """Keep the similarities of the catalog's source text vectors to the taxonomy's prompts in
    ``category_scores``, for the vectors that have none for the current text; drop the rows whose vector
    changed or went. Returns how many vectors were scored now."""
    from .search import current_model_id
    from .text_model import shared_encoder

    try:
        model_id = current_model_id(catalog)
    except NotFoundError:
        return 0
    tax = taxonomy if isinstance(taxonomy, dict) else load_taxonomy(taxonomy)
    names, cents = prompt_centroids(tax, encoder or shared_encoder())
    key = prompts_key(tax, model_id)
    with catalog.write() as con, _bounded_memory(con):
        store.ensure_tables(con)
        con.execute(
            """DELETE FROM category_scores c WHERE NOT EXISTS (
                   SELECT 1 FROM embeddings e WHERE e.item_id = c.source_id AND e.model_id = c.model_id
                   AND e.kind = 'source' AND e.text_sha256 IS NOT DISTINCT FROM c.text_sha256)"""
        )
        con.execute("DELETE FROM category_scores WHERE model_id = ? AND prompts_sha256 = ? AND len(scores) <> ?",
                    [model_id, key, len(names)])
        rows = con.sql(
            """SELECT e.item_id, e.text_sha256 FROM embeddings e
               WHERE e.model_id = ? AND e.kind = 'source' AND NOT EXISTS (
                   SELECT 1 FROM category_scores c WHERE c.source_id = e.item_id AND c.model_id = e.model_id
                   AND c.prompts_sha256 = ? AND c.text_sha256 IS NOT DISTINCT FROM e.text_sha256)
               ORDER BY e.item_id""",
            params=[model_id, key],
        ).to_arrow_table()
        if rows.num_rows == 0:
            return 0
        con.register("_sem_todo", pa.table({"source_id": rows.column("item_id"),
                                            "i": pa.array(np.arange(rows.num_rows, dtype=np.int64))}))
        try:
            out = np.zeros((rows.num_rows, len(names)), np.float32)
            for i, vecs in _batches(
                con,
                """SELECT r.i, e.vector FROM embeddings e JOIN _sem_todo r ON r.source_id = e.item_id
                   WHERE e.model_id = ? AND e.kind = 'source'""",
                [model_id],
            ):
                out[i] = vecs @ cents.T
        finally:
            con.unregister("_sem_todo")
        new = pa.table({"source_id": rows.column("item_id"),
                        "model_id": pa.array([model_id] * rows.num_rows, pa.string()),
                        "prompts_sha256": pa.array([key] * rows.num_rows, pa.string()),
                        "text_sha256": rows.column("text_sha256"),
                        "scores": _list_array(out.reshape(-1), len(names))})
        con.register("_sem_new", new)
        try:
            con.execute(
                """DELETE FROM category_scores WHERE model_id = ? AND prompts_sha256 = ?
                   AND source_id IN (SELECT source_id FROM _sem_new)""",
                [model_id, key],
            )
            con.execute("INSERT INTO category_scores SELECT * FROM _sem_new")
        finally:
            con.unregister("_sem_new")
    return rows.num_rows


def categorise(catalog, source_ids: list[str] | None = None, *, taxonomy=None, encoder=None, datasets=None) -> dict[str, Any]:
    """Category of every source (of ``datasets``, or ``source_ids``): a dict with ``rows`` (source_id,
    category, confidence, how, hours, held, row) and the scores matrix (``row`` is the source's row
    in it, ``None`` without a vector). For a few sources; :func:`category_columns` gives the same as
    columns, for any number."""
    c = category_columns(catalog, source_ids, taxonomy=taxonomy, encoder=encoder, datasets=datasets,
                         keep_scores=True)
    has = c["has_vector"]
    row_of = np.cumsum(has) - 1
    out = []
    for k, sid in enumerate(c["source_id"].to_pylist()):
        out.append({"source_id": sid, "category": c["order"][c["code"][k]], "confidence": float(c["confidence"][k]),
                    "how": HOW[c["how"][k]], "hours": float(c["hours"][k]), "held": bool(c["held"][k]),
                    "row": int(row_of[k]) if has[k] else None})
    scores = c["scores"][has] if c["scores"] is not None else np.zeros((0, len(c["names"])), np.float32)
    return {"rows": out, "scores": scores, "names": c["names"], "taxonomy": c["taxonomy"], "model_id": c["model_id"]}


def check_datasets(catalog, datasets) -> None:
    """A NotFoundError naming the catalog's datasets when one of ``datasets`` has no member in it."""
    if not datasets:
        return
    with catalog.read() as con:
        known = [r[0] for r in con.execute("SELECT DISTINCT dataset FROM memberships ORDER BY 1").fetchall()]
    unknown = [d for d in datasets if d not in known]
    if unknown:
        raise NotFoundError(
            f"no dataset {unknown[0]!r} in the catalog", item=unknown[0],
            fix=f"use one of: {', '.join(known)}" if known else "ingest its manifest first (`clipfactory ingest MANIFEST`)",
        )


def category_mix(catalog, *, datasets=None, taxonomy=None, encoder=None) -> dict[str, Any]:
    """Sources and hours per category (all of the taxonomy's categories, zeros included). ``not_indexed``
    counts the sources that ``semantic index`` never saw (no vector, no mapped label, no ``semantic.text``
    outcome): they are ``other`` until it runs. ``without_hours`` (in all and per category) counts the
    sources with neither a duration nor manifest spans, whose hours are unknown (not counted); then
    ``hours_note`` says so."""
    check_datasets(catalog, datasets)
    c = category_columns(
        catalog, taxonomy=taxonomy, encoder=encoder, datasets=datasets,
        extra=""", s.source_id IN (SELECT item_id FROM latest_outcomes WHERE stage = 'semantic.text') AS indexed,
                 (s.duration_ms IS NOT NULL OR spans.ms IS NOT NULL) AS hours_known""",
    )
    order = c["order"]
    counts = np.bincount(c["code"], minlength=len(order))
    hours = np.bincount(c["code"], weights=c["hours"], minlength=len(order))
    known = c["table"].column("hours_known").to_numpy(zero_copy_only=False).astype(bool)
    unknown = np.bincount(c["code"][~known], minlength=len(order))
    n_unknown = int(np.count_nonzero(~known))
    n = len(c["code"])
    indexed = c["table"].column("indexed").to_numpy(zero_copy_only=False).astype(bool)
    no_text = c["how"] == HOW.index("no text")
    not_indexed = int(np.count_nonzero(no_text & ~indexed))
    out = {
        "sources": n,
        "datasets": list(datasets or []),
        "taxonomy": c["taxonomy"]["where"],
        "model_id": c["model_id"],
        "without_text": int(np.count_nonzero(no_text & indexed)),
        "not_indexed": not_indexed,
        "without_hours": n_unknown,
    }
    if n_unknown:
        # a manifest without durations or spans (MSR-VTT's caption files, for one): hours would read as zero
        out["hours_note"] = (f"{n_unknown} of {n} sources have no duration (none in their manifest, no spans, "
                             f"media not fetched): hours count only the {n - n_unknown} that do")
    if not_indexed:
        out["fix"] = ("run `clipfactory semantic index`" + "".join(f" --dataset {d}" for d in datasets or [])
                      + f": {not_indexed} sources have no text vector yet, so they count as other")
    return {
        **out,
        "categories": [
            {"category": name, "sources": int(counts[k]), "share": round(int(counts[k]) / n, 4) if n else 0.0,
             "hours": round(float(hours[k]), 3), "without_hours": int(unknown[k])}
            for k, name in enumerate(order)
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
    }.get(row["how"]) or _zero_shot_why(row["category"], scores, r["taxonomy"])
    return {"source_id": source_id, "category": row["category"], "confidence": row["confidence"], "how": row["how"],
            "why": why, "threshold": r["taxonomy"]["threshold"], "model_id": r["model_id"], "scores": scores}


def _zero_shot_why(category: str, scores: dict[str, float], tax: dict[str, Any]) -> str:
    """Why zero-shot gave ``category``, from the source's best score per category (``other``: its
    nearest anchor prompt)."""
    other, th = tax["other"], tax["threshold"]
    ranked = sorted(((v, n) for n, v in scores.items() if n != other), reverse=True)
    anchor = scores.get(other)
    if not ranked:
        return "(no category scores)"
    (top, best), nxt = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    if category != other:
        then = f", then {nxt[1]} {nxt[0]:.3f}" if nxt else ""
        beat = f"; nearest anchor of {other} {anchor:.3f}" if anchor is not None else ""
        return f"(nearest prompts: {best} {top:.3f}{then}{beat}; threshold {th})"
    if top < th:
        return f"(best category {best} {top:.3f} is below the threshold {th})"
    return f"(an anchor of {other} is nearer ({anchor:.3f}) than the best category, {best} {top:.3f})"


def explain_section(catalog, source_id: str) -> dict[str, Any] | None:
    """``explain``'s section: the source's category, confidence, how it was decided and its scores
    (as ``clipfactory categories --source ID --json`` gives them); nothing in a catalog without text
    vectors when no manifest label of the source maps to a category."""
    r = source_categories(catalog, source_id)
    if r["model_id"] is None and r["how"] == "no text":
        return None
    return {k: v for k, v in r.items() if k != "source_id"}
