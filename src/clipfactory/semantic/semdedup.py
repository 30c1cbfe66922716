"""SemDeDup: semantic near-duplicates of clips, from their vectors (the ``dedup.semantic`` stage).

Two clips are semantic duplicates when the cosine similarity of their vectors (of one model: text now,
visual when a visual model is configured) is above ``1 - epsilon``. Comparing every pair is quadratic, so,
as in SemDeDup (Abbas et al., 2023), the vectors are first grouped by spherical k-means (FAISS's ``Kmeans``,
``clusters`` of them, by default the square root of the number of clips) and pairs are compared only
within a cluster. A pair split across two clusters is missed; more clusters are faster and miss more.

**Which clip is kept** follows ``dedup.near``: the clips are ranked by its ``keep_order`` (the use class
of the footage, the sharpest, the largest picture, the earliest acquired; clip id breaks ties), and,
walking that ranking, a clip is dropped when a clip kept before it is its duplicate. A dropped clip names
the kept one (reason ``dedup.semantic_duplicate_of:<clip_id>``); its detail gives the similarity, the
cluster and the first ranking key that decided.

**The licence rule of near-duplicates applies.** Footage carries the most restrictive licence known for
any copy of it: each clip's use class is the most restrictive of its own and its duplicates', and with a
purpose, a clip whose vector is a duplicate of a clip of a source the purpose may not use is dropped with
``dedup.restricted_copy:<clip_id>``, naming that copy and the chain to its terms. The restricted copies
are looked up among every clip vector of the catalog, and that check is exact (every clip against every
restricted clip, not only within a cluster).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from ..errors import ConfigError, NotFoundError, describe_invalid
from ..fingerprints.dedup import CLASS_RANK, KEEP_KEYS, RESTRICTED_PREFIX, RULE, _Clip, _use_class, why_kept
from ..records import ClipRecord, Result
from ..stage import StageConfig
from . import store

STAGE_NAME = "dedup.semantic"
STAGE_VERSION = 1
REASON_PREFIX = "dedup.semantic_duplicate_of:"
MODALITIES = ("auto", "text", "visual")


class SemDedupConfig(StageConfig):
    """Settings of ``dedup.semantic`` (section ``[dedup.semantic]``)."""

    enabled: bool = Field(
        False, description="Run this stage in `clipfactory run` (needs pip install 'clipfactory[semantic]')."
    )
    epsilon: float = Field(
        0.05, gt=0, lt=1, description="Two clips are duplicates when their cosine similarity is above 1 - epsilon."
    )
    clusters: int = Field(0, ge=0, description="k-means clusters (0: the square root of the number of clips).")
    modality: str = Field(
        "auto", description="Vectors compared: text, visual, or auto (visual when the catalog has any, else text)."
    )
    embed_missing: bool = Field(
        True, description="Compute the missing text vectors of the clips' sources first (text modality)."
    )
    keep_order: tuple[str, ...] = Field(
        ("license", "quality", "resolution", "earliest"),
        description="Ranking of duplicates, first key first (the keys of dedup.near: license, quality, "
        "resolution, earliest, longest).",
    )
    purpose: str | None = Field(
        None, description="Purpose whose policy decisions give each clip's use class (default: the run's)."
    )
    seed: int = Field(0, description="Seed of the k-means initialisation (the result is deterministic).")
    threads: int = Field(
        1, ge=1, description="Threads for k-means and the similarity products (1: the same clusters on any machine)."
    )


def config_of(config: SemDedupConfig | dict | None) -> SemDedupConfig:
    if isinstance(config, SemDedupConfig):
        cfg = config
    else:
        try:
            cfg = SemDedupConfig(**dict(config or {}))
        except Exception as exc:
            raise ConfigError(
                f"invalid config for stage {STAGE_NAME}: {describe_invalid(exc)}", item=f"[{STAGE_NAME}]"
            ) from exc
    bad = [k for k in cfg.keep_order if k not in KEEP_KEYS]
    if bad:
        raise ConfigError(f"unknown keep_order key(s): {', '.join(bad)}", item=f"[{STAGE_NAME}] keep_order",
                          fix=f"use {', '.join(KEEP_KEYS)}")
    if cfg.modality not in MODALITIES:
        raise ConfigError(f"unknown modality {cfg.modality!r}", item=f"[{STAGE_NAME}] modality",
                          fix=f"use {', '.join(MODALITIES)}")
    return cfg


# -- the algorithm (pure) --------------------------------------------------------------------------------


def normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def cluster(vectors: np.ndarray, clusters: int = 0, seed: int = 0) -> np.ndarray:
    """The spherical k-means cluster of each row of (unit) ``vectors`` (FAISS): ``clusters`` of them
    (0: ``round(sqrt(n))``)."""
    n = len(vectors)
    k = clusters or max(1, round(math.sqrt(n)))
    k = min(k, n)
    if k <= 1:
        return np.zeros(n, np.int64)
    from ..errors import require

    faiss = require("faiss", "semantic", feature="semantic dedup (dedup.semantic)")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


def similar_pairs(
    vectors: np.ndarray, labels: np.ndarray, epsilon: float, block: int = 2048
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)`` with ``i < j`` of one cluster whose cosine similarity is above ``1 - epsilon``, and
    their similarities. ``vectors`` are unit rows."""
    out_i, out_j, out_s = [], [], []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        members = np.sort(members)
        v = vectors[members]
        for a in range(0, len(members), block):
            s = v[a : a + block] @ v.T
            r, c = np.nonzero(s > 1.0 - epsilon)
            r_abs = r + a
            keep = c > r_abs
            out_i.append(members[r_abs[keep]])
            out_j.append(members[c[keep]])
            out_s.append(s[r[keep], c[keep]])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s).astype(np.float32)


def restricted_hits(
    vectors: np.ndarray, restricted: np.ndarray, epsilon: float, block: int = 4096
) -> dict[int, tuple[int, float]]:
    """For each row of ``vectors`` whose similarity to a row of ``restricted`` is above ``1 - epsilon``:
    the most similar restricted row and its similarity (exact: every row against every restricted row)."""
    out: dict[int, tuple[int, float]] = {}
    if not len(vectors) or not len(restricted):
        return out
    for a in range(0, len(vectors), block):
        s = vectors[a : a + block] @ restricted.T
        best = s.argmax(axis=1)
        top = s[np.arange(len(best)), best]
        for r in np.flatnonzero(top > 1.0 - epsilon):
            out[a + int(r)] = (int(best[r]), float(top[r]))
    return out


def _threads(n: int):
    """At most ``n`` threads for FAISS's OpenMP and the BLAS of the matrix products (threadpoolctl). With one
    thread the k-means result does not depend on the machine, and the many small per-cluster products do
    not pay for waking a pool."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the semantic extra
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n))


def plan(clips: list[_Clip], vectors: np.ndarray, cfg: SemDedupConfig, *, model_id: str | None = None,
         modality: str | None = None) -> tuple[list[Result], dict[str, Any]]:
    """Keep or drop every clip that is not a reference; ``vectors[k]`` is the vector of ``clips[k]``.
    References (``reference=True``) are the restricted copies from elsewhere in the catalog: compared
    against, never given an outcome. Pure: no catalog access."""
    t0 = time.perf_counter()
    vecs = normalise(vectors) if len(vectors) else np.zeros((0, 0), np.float32)
    play = [k for k, c in enumerate(clips) if not c.reference and not c.restricted]
    refused = [k for k, c in enumerate(clips) if c.restricted]
    with _threads(cfg.threads):
        # Restricted copies first, exactly: a usable clip that duplicates one is refused, naming it.
        tainted: dict[int, tuple[int, float]] = {}
        if refused and play:
            hits = restricted_hits(vecs[play], vecs[refused], cfg.epsilon)
            tainted = {play[r]: (refused[j], s) for r, (j, s) in hits.items()}
        # Clusters and pairs among the clips in play (restricted ones given an outcome take part too: they
        # are dropped at export anyway, and their duplicates are the tainted ones).
        cand = [k for k, c in enumerate(clips) if not c.reference]
        labels = cluster(vecs[cand], cfg.clusters, cfg.seed) if len(cand) else np.zeros(0, np.int64)
        pi, pj, ps = similar_pairs(vecs[cand], labels, cfg.epsilon) if len(cand) > 1 else (
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    sim: dict[int, dict[int, float]] = {}
    for i, j, s in zip(pi.tolist(), pj.tolist(), ps.tolist(), strict=True):
        a, b = cand[i], cand[j]
        sim.setdefault(a, {})[b] = s
        sim.setdefault(b, {})[a] = s
    cluster_of = {cand[i]: int(lab) for i, lab in enumerate(labels.tolist())}
    # The footage's use class: the most restrictive of the clip's own and its duplicates'.
    for k in cand:
        c = clips[k]
        classes = [c.use_class, *(clips[j].use_class for j in sim.get(k, {}))]
        if k in tainted:
            classes.append(clips[tainted[k][0]].use_class)
        c.footage_class = max(classes, key=lambda x: CLASS_RANK.get(x, 3))
    order = list(cfg.keep_order)
    ranked = sorted((k for k in cand if k not in tainted), key=lambda k: clips[k].keys(order))
    rank_of = {k: r for r, k in enumerate(ranked)}
    kept: set[int] = set()
    dropped: dict[int, int] = {}
    for x in ranked:
        best = None
        for y, s in sim.get(x, {}).items():
            if y in kept and clips[y].restricted == clips[x].restricted:
                cand_key = (s, -rank_of[y])
                if best is None or cand_key > best[0]:
                    best = (cand_key, y)
        if best is None:
            kept.add(x)
        else:
            dropped[x] = best[1]
    results: list[Result] = []
    groups: dict[int, list[int]] = {}
    for x, y in dropped.items():
        groups.setdefault(y, []).append(x)
    common = {"model_id": model_id, "modality": modality, "epsilon": cfg.epsilon}
    for k in cand:
        c = clips[k]
        if k in tainted:
            r, s = tainted[k]
            results.append(Result.dropped(c.clip_id, RESTRICTED_PREFIX + clips[r].clip_id,
                                          {**_restricted(clips, k, r, s), **common}))
        elif k in dropped:
            y = dropped[k]
            results.append(Result.dropped(c.clip_id, REASON_PREFIX + clips[y].clip_id,
                                          {**_explain(clips, k, y, sim[k][y], order), "cluster": cluster_of[k],
                                           **common}))
        else:
            detail: dict[str, Any] = {"vector": True, "cluster": cluster_of[k], **common}
            if c.footage_class and c.footage_class != c.use_class:
                detail["footage_class"] = c.footage_class
            if groups.get(k):
                detail["duplicates"] = [clips[x].clip_id for x in sorted(groups[k], key=rank_of.get)]
            results.append(Result.kept(c.clip_id, detail=detail))
    stats = {
        "clips": len(cand),
        "clusters": int(labels.max()) + 1 if len(labels) else 0,
        "pairs": len(pi),
        "dropped": len(dropped) + len(tainted),
        "restricted_copies": [
            {"clip_id": clips[k].clip_id, "restricted_copy": clips[r].clip_id,
             "restricted_source": clips[r].source_id, "similarity": round(s, 4)}
            for k, (r, s) in sorted(tainted.items())
        ],
        "groups": [
            {"kept": clips[y].clip_id, "dropped": [clips[x].clip_id for x in sorted(xs, key=rank_of.get)]}
            for y, xs in sorted(groups.items(), key=lambda kv: rank_of[kv[0]])
        ],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return results, stats


def _explain(clips: list[_Clip], x: int, y: int, similarity: float, order: list[str]) -> dict[str, Any]:
    cx, cy = clips[x], clips[y]
    why, vx, vy = why_kept(cx, cy, order)
    return {"kept": cy.clip_id, "kept_source": cy.source_id, "similarity": round(float(similarity), 4),
            "why": why, "keep_order": order, "kept_keys": vy, "dropped_keys": vx}


def _restricted(clips: list[_Clip], x: int, r: int, similarity: float) -> dict[str, Any]:
    cx, cr = clips[x], clips[r]
    return {
        "rule": RULE,
        "relation": "semantic duplicate of a restricted copy",
        "restricted_copy": cr.clip_id,
        "restricted_source": cr.source_id,
        "similarity": round(float(similarity), 4),
        "chain": [
            {"clip_id": cx.clip_id, "source_id": cx.source_id, "license": cx.license, "use_class": cx.use_class,
             "role": "this clip (its stated licence is not what decides)"},
            {"clip_id": cr.clip_id, "source_id": cr.source_id, "license": cr.license, "use_class": cr.use_class,
             "reasons": cr.reasons, "role": "the restricted copy it duplicates: its terms bind the footage"},
        ],
        "override": "only a decision that makes the restricted source itself usable (a recorded "
        "permission or a policy entry for it)",
    }


# -- the catalog ------------------------------------------------------------------------------------------


def model_for(catalog, modality: str) -> tuple[str | None, str]:
    """(model id, modality) of the vectors to compare: for ``auto``, visual when the catalog has any."""
    from .search import current_model_id

    for m in (("visual", "text") if modality == "auto" else (modality,)):
        try:
            return current_model_id(catalog, m), m
        except NotFoundError:
            continue
    return None, "text" if modality == "auto" else modality


def load(catalog, items: list[ClipRecord], model_id: str, purpose: str | None) -> tuple[list[_Clip], np.ndarray,
                                                                                        list[str]]:
    """The clips of ``items`` that have a vector of ``model_id`` and, with a purpose, the restricted copies:
    clip vectors of sources the purpose may not use, anywhere in the catalog. Returns (clips, vectors,
    ids of items without a vector)."""
    ids_ = [c.clip_id for c in items]
    with catalog.read() as con:
        rows, vecs = store.read_vectors(con, model_id, kind="clip", item_ids=ids_)
        have = set(rows.column("item_id").to_pylist()) if rows.num_rows else set()
        # A clip planned from a manifest span can start a frame or a keyframe later than the span, and so
        # have another id than the span whose caption gave the vector: it takes its span's vector.
        via = _span_vectors(con, [c for c in items if c.clip_id not in have])
        if via:
            more_rows, more_vecs = store.read_vectors(con, model_id, kind="clip", item_ids=sorted(set(via.values())))
            found = set(more_rows.column("item_id").to_pylist()) if more_rows.num_rows else set()
            via = {cid: span for cid, span in via.items() if span in found}
            if via:
                rows = pa.concat_tables([rows, more_rows]) if rows.num_rows else more_rows
                vecs = np.concatenate([vecs, more_vecs]) if vecs.size else more_vecs
                have |= set(via)
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        with_decisions = bool(purpose) and "policy_decisions" in tables
        sids = sorted({c.source_id for c in items if c.clip_id in have})
        ref_rows = pa.table({"item_id": pa.array([], pa.string())})
        ref_vecs = np.zeros((0, vecs.shape[1] if vecs.size else 0), np.float32)
        if with_decisions:
            restricted_ids = [
                r[0] for r in con.execute(
                    """SELECT e.item_id FROM embeddings e JOIN policy_decisions p
                       ON p.source_id = e.source_id AND p.purpose = ?
                       WHERE e.model_id = ? AND e.kind = 'clip' AND p.use_ok = false ORDER BY 1""",
                    [purpose, model_id],
                ).fetchall() if r[0] not in set(ids_)
            ]
            if restricted_ids:
                ref_rows, ref_vecs = store.read_vectors(con, model_id, kind="clip", item_ids=restricted_ids)
        all_sids = sorted(set(sids) | (set(ref_rows.column("source_id").to_pylist()) if ref_rows.num_rows else set()))
        con.register("_sd_sids", pa.table({"source_id": pa.array(all_sids, pa.string())}))
        try:
            dec = "p.effective_class, coalesce(NOT p.use_ok, false), p.reasons" if with_decisions else "NULL, false, NULL"
            join = "LEFT JOIN policy_decisions p ON p.source_id = s.source_id AND p.purpose = ?" if with_decisions else ""
            meta = {
                r[0]: r[1:]
                for r in con.execute(
                    f"""SELECT s.source_id, s.width, s.height, s.acquired_at, s.content_license, {dec}
                        FROM sources s {join} WHERE s.source_id IN (SELECT source_id FROM _sd_sids)""",
                    [purpose] if with_decisions else [],
                ).fetchall()
            }
        finally:
            con.unregister("_sd_sids")
    row_of = {cid: i for i, cid in enumerate(rows.column("item_id").to_pylist())} if rows.num_rows else {}
    clips: list[_Clip] = []
    order: list[int] = []
    for c in items:
        i = row_of.get(c.clip_id, row_of.get(via.get(c.clip_id, "")))
        if i is None:
            continue
        w, h, acq, lic, eff, restricted, reasons = meta.get(c.source_id, (0, 0, "", None, None, False, None))
        clips.append(_Clip(clip_id=c.clip_id, source_id=c.source_id, start_ms=int(c.start_ms), end_ms=int(c.end_ms),
                           use_class=eff or _use_class(lic), sharpness=float(c.sharpness or 0.0),
                           pixels=int((w or 0) * (h or 0)), acquired_at=str(acq or ""), license=lic,
                           restricted=bool(restricted), reasons=list(reasons or [])))
        order.append(i)
    out_vecs = [vecs[order]] if order else []
    if ref_rows.num_rows:
        for cid, sid in zip(ref_rows.column("item_id").to_pylist(), ref_rows.column("source_id").to_pylist(),
                            strict=True):
            w, h, acq, lic, eff, _restricted_flag, reasons = meta.get(sid, (0, 0, "", None, None, True, None))
            clips.append(_Clip(clip_id=cid, source_id=sid, start_ms=0, end_ms=0, use_class=eff or _use_class(lic),
                               sharpness=0.0, pixels=0, acquired_at="", license=lic, restricted=True,
                               reasons=list(reasons or []), reference=True))
        out_vecs.append(ref_vecs)
    dim = vecs.shape[1] if vecs.size else (ref_vecs.shape[1] if ref_vecs.size else 0)
    all_vecs = np.concatenate(out_vecs) if out_vecs else np.zeros((0, dim), np.float32)
    return clips, all_vecs, [c.clip_id for c in items if c.clip_id not in have]


def _span_vectors(con, items: list[ClipRecord]) -> dict[str, str]:
    """clip id → the id of the manifest span (``clip_spans``) of its source that overlaps it most, when that
    overlap holds at least half of the clip."""
    if not items or not store.has_table(con, "clip_spans"):
        return {}
    con.register("_sd_c", pa.table({
        "clip_id": pa.array([c.clip_id for c in items], pa.string()),
        "source_id": pa.array([c.source_id for c in items], pa.string()),
        "start_ms": pa.array([int(c.start_ms) for c in items], pa.int64()),
        "end_ms": pa.array([int(c.end_ms) for c in items], pa.int64()),
    }))
    try:
        rows = con.execute(
            """SELECT c.clip_id, arg_max(s.clip_id, least(c.end_ms, s.end_ms) - greatest(c.start_ms, s.start_ms))
               FROM _sd_c c JOIN clip_spans s ON s.source_id = c.source_id AND s.clip_id IS NOT NULL
               WHERE 2 * (least(c.end_ms, s.end_ms) - greatest(c.start_ms, s.start_ms)) >= c.end_ms - c.start_ms
               GROUP BY 1"""
        ).fetchall()
    finally:
        con.unregister("_sd_c")
    return {cid: span for cid, span in rows if span != cid}


def prepare(catalog, purpose: str | None, settings=None, model_id: str | None = None) -> int:
    """Decide for ``purpose`` every source with clip vectors of ``model_id`` that has no decision under the
    policy in force, so restricted copies anywhere in the catalog are known. Returns how many were decided."""
    if not purpose or not model_id:
        return 0
    from ..policy import gate

    policy_hash = gate._context(settings, purpose, None).policy_hash
    with catalog.read() as con:
        if not store.has_table(con):
            return 0
        if not store.has_table(con, "policy_decisions"):
            stale = [r[0] for r in con.execute(
                "SELECT DISTINCT source_id FROM embeddings WHERE kind = 'clip' AND model_id = ? ORDER BY 1", [model_id]
            ).fetchall()]
        else:
            stale = [
            r[0] for r in con.execute(
                """SELECT DISTINCT e.source_id FROM embeddings e
                   LEFT JOIN policy_decisions p ON p.source_id = e.source_id AND p.purpose = ?
                   WHERE e.kind = 'clip' AND e.model_id = ?
                     AND (p.source_id IS NULL OR p.policy_hash IS DISTINCT FROM ?) ORDER BY 1""",
                [purpose, model_id, policy_hash],
            ).fetchall()
            ]
    if stale:
        evaluation = list(settings.build.evaluation_manifests) if settings is not None else None
        gate.evaluate(catalog, purpose, settings=settings, source_ids=stale, evaluation_datasets=evaluation or None)
    return len(stale)

