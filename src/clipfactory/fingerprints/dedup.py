"""``dedup.near``: near-duplicate dedup of clips over the whole catalog, from their PDQ frame hashes.

The same footage reaches a catalog many ways: another id for the same video, a re-encode or resize, two
datasets' overlapping spans of one source, a clip contained in a longer one. Dedup finds them all with
one rule, vPDQ's: clip X is a near-duplicate of clip Y when at least ``min_share`` (80%) of X's usable
frames have a frame of Y within Hamming distance 31 (and at least ``min_frames`` of them).

**Relabelling launders nothing.** Footage carries the most restrictive licence known for any copy of it
(the rule of :mod:`clipfactory.policy.lineage`). With a purpose, a clip whose footage matches a clip of a
source the purpose may not use (either way: a copy of it, or containing it) is dropped with reason
``dedup.restricted_copy:<clip_id>``, naming the restricted copy it matched, and its detail holds the chain
(the copy, the restricted clip, its source, licence and the policy's reasons). The restricted copies are
looked up in the whole catalog, not only among the clips compared. The only override is a decision that
makes the restricted source itself usable (a recorded permission or a policy entry for it): never a
licence on the copy. Without a purpose, each clip's use class is the most restrictive of its copies'.

**Which copy is kept.** Only among copies the purpose may use. Clips are ranked by ``keep_order``
(default: the use class of the footage, then the sharpest, then the largest picture, then the earliest
acquired; clip id breaks ties). Since copies share the footage's most restrictive class, the licence
stated on a copy never decides. Walking that ranking, a clip is kept unless a clip kept before it covers
it; a dropped clip names the kept clip that covers it. So a clip is only ever dropped for a copy that holds all of its footage: a long
clip is never dropped for a short one it merely contains; the short one is dropped for the long one when
the long one ranks higher, and both stay (with the relation in the detail) when the short one ranks
higher.

**Output.** One outcome row per compared clip under stage ``dedup.near`` in one ``runs`` row: ``kept``,
or ``dropped`` with reason ``dedup.near_duplicate_of:<clip_id>`` and a detail JSON that explains the
choice (shares both ways, matched frames, the ranking keys of both clips and the first key that decided).

It is a global operation: :func:`find_near_duplicates` over the catalog is the entry point;
:class:`NearDedupStage` wraps the same plan for an executor (it dedups the clips of one batch).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from ..catalog import Catalog
from ..records import ClipRecord, Result
from ..resources import Resources
from ..stage import Stage, StageConfig
from ..storage import BlobStore
from .hashes import MATCH_DISTANCE, MIN_QUALITY
from .index import HashIndex, _binary_to_array, index_catalog

log = logging.getLogger(__name__)

STAGE_NAME = "dedup.near"
STAGE_VERSION = 2
REASON_PREFIX = "dedup.near_duplicate_of:"
RESTRICTED_PREFIX = "dedup.restricted_copy:"
RULE = "footage carries the most restrictive licence known for any copy of it"
KEEP_KEYS = ("license", "quality", "resolution", "earliest", "longest")
CLASS_RANK = {"commercial": 0, "unspecified": 1, "non-commercial": 2, "academic-only": 3}


class DedupConfig(StageConfig):
    """Settings of ``dedup.near`` (section ``[dedup.near]``)."""

    max_distance: int = Field(
        MATCH_DISTANCE, ge=0, le=47, description="Largest Hamming distance for two frames to match."
    )
    min_quality: int = Field(
        MIN_QUALITY, ge=0, le=100, description="Frames with a lower PDQ quality are ignored."
    )
    min_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of a clip's usable frames that another clip must match to make it a duplicate.",
    )
    min_frames: int = Field(
        2,
        ge=1,
        description="Fewest matched frames for a duplicate (clips with fewer usable frames need all of them).",
    )
    keep_order: tuple[str, ...] = Field(
        ("license", "quality", "resolution", "earliest"),
        description="Ranking of copies the purpose may use, first key first: license (use class of the "
        "footage: the most restrictive of its copies'), quality "
        "(sharpness), resolution (pixels), earliest (acquired first), longest (duration).",
    )
    purpose: str | None = Field(
        None,
        description="Purpose whose policy decisions give each clip's use class (default: the settings' purpose).",
    )
    compare_same_source: bool = Field(
        False,
        description="Also compare clips of one source whose spans do not overlap (a repeated intro, a static "
        "camera). Overlapping spans of one source are always duplicates of each other.",
    )
    exact_search: bool = Field(
        True,
        description="Probe every index bucket the 31-bit bound needs (exact); off is faster on huge catalogs.",
    )


@dataclass
class _Clip:
    clip_id: str
    source_id: str
    start_ms: int
    end_ms: int
    use_class: str
    sharpness: float
    pixels: int
    acquired_at: str
    descriptor: bytes | None = None
    rows: list[int] = field(default_factory=list)
    license: str | None = None
    #: the purpose may not use this clip's source (its policy decision says so)
    restricted: bool = False
    reasons: list[str] = field(default_factory=list)
    #: a restricted copy from elsewhere in the catalog: compared against, never given an outcome
    reference: bool = False
    #: stands for every frame of its source (a restricted source analysed but without clips)
    whole: bool = False
    #: the use class of the footage: the most restrictive of this clip's and its copies'
    footage_class: str | None = None

    def keys(self, order: list[str]) -> tuple:
        out = []
        for k in order:
            if k == "license":
                out.append(CLASS_RANK.get(self.footage_class or self.use_class, 3))
            elif k == "quality":
                out.append(-self.sharpness)
            elif k == "resolution":
                out.append(-self.pixels)
            elif k == "earliest":
                out.append(self.acquired_at or "~")
            elif k == "longest":
                out.append(-(self.end_ms - self.start_ms))
        return (*out, self.source_id, self.start_ms, self.clip_id)

    def key_view(self, order: list[str]) -> dict[str, Any]:
        v = {
            "license": self.footage_class or self.use_class,
            "quality": self.sharpness,
            "resolution": self.pixels,
            "earliest": self.acquired_at,
            "longest": self.end_ms - self.start_ms,
        }
        return {k: v[k] for k in order}


def _use_class(license: str | None) -> str:
    try:
        from ..policy.taxonomy import classify

        return classify(license).use_class
    except Exception:  # the policy package is optional for dedup
        return "academic-only" if license else "unspecified"


def _load(catalog: Catalog, cfg: DedupConfig, purpose: str | None, clip_ids: list[str] | None):
    """The clips to compare (all in play, or ``clip_ids``) and, with a purpose, the restricted copies:
    clips (or, without clips, the frames) of every fingerprinted source the purpose may not use."""
    with catalog.read() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        dec_join = ""
        params: list[Any] = []
        with_decisions = "policy_decisions" in tables and bool(purpose)
        if with_decisions:
            dec_join = "LEFT JOIN policy_decisions p ON p.source_id = c.source_id AND p.purpose = ?"
            dec_cols = "p.effective_class, coalesce(NOT p.use_ok, false), p.reasons"
            params.append(purpose)
        else:
            dec_cols = "NULL, false, NULL"
        filt = ""
        if clip_ids is not None:
            con.register("_dd_ids", pa.table({"clip_id": pa.array(clip_ids, pa.string())}))
            filt = "AND c.clip_id IN (SELECT clip_id FROM _dd_ids)"
        cols = f"""c.clip_id, c.source_id, c.start_ms, c.end_ms, c.sharpness, s.width, s.height,
                   s.acquired_at, s.content_license, {dec_cols}, d.descriptor"""
        base = f"""FROM clips c JOIN sources s USING (source_id) {dec_join}
                   LEFT JOIN fp_descriptors d ON d.kind = 'clip' AND d.item_id = c.clip_id"""
        try:
            rows = con.execute(
                f"""SELECT {cols} {base}
                    WHERE NOT EXISTS (
                        SELECT 1 FROM latest_outcomes o
                        WHERE o.item_id = c.clip_id AND o.stage <> '{STAGE_NAME}' AND o.status IN ('dropped', 'failed')
                    ) {filt}
                    ORDER BY c.source_id, c.start_ms""",
                params,
            ).fetchall()
            refs: list[tuple] = []
            whole: list[tuple] = []
            if with_decisions:
                # Restricted copies anywhere in the catalog, whatever their outcomes (a refused source's
                # clips are dropped at export, yet they are the footage that must not come back).
                outside = "AND c.clip_id NOT IN (SELECT clip_id FROM _dd_ids)" if clip_ids is not None else ""
                refs = con.execute(
                    f"""SELECT {cols} {base}
                        WHERE p.use_ok = false {outside}
                          AND EXISTS (SELECT 1 FROM frame_hashes f WHERE f.source_id = c.source_id)
                        ORDER BY c.source_id, c.start_ms""",
                    params,
                ).fetchall()
                whole = con.execute(
                    """SELECT s.source_id, s.content_license, p.effective_class, p.reasons FROM sources s
                       JOIN policy_decisions p ON p.source_id = s.source_id AND p.purpose = ?
                       WHERE p.use_ok = false
                         AND EXISTS (SELECT 1 FROM frame_hashes f WHERE f.source_id = s.source_id)
                         AND NOT EXISTS (SELECT 1 FROM clips c WHERE c.source_id = s.source_id)
                       ORDER BY s.source_id""",
                    [purpose],
                ).fetchall()
        finally:
            if clip_ids is not None:
                con.unregister("_dd_ids")
        sids = sorted({r[1] for r in rows} | {r[1] for r in refs} | {r[0] for r in whole})
        con.register("_dd_sids", pa.table({"source_id": pa.array(sids, pa.string())}))
        try:
            frames = con.sql(
                f"""SELECT f.source_id, f.clip_id, f.time_ms, f.pdq FROM frame_hashes f
                    JOIN _dd_sids USING (source_id) WHERE f.quality >= {int(cfg.min_quality)}
                    ORDER BY f.source_id, f.time_ms"""
            ).to_arrow_table()
        finally:
            con.unregister("_dd_sids")
    clips = []
    seen: set[str] = set()
    for reference, group in ((False, rows), (True, refs)):
        for cid, sid, start, end, sharp, w, h, acq, lic, eff, restricted, reasons, desc in group:
            if cid in seen:
                continue
            seen.add(cid)
            clips.append(
                _Clip(
                    clip_id=cid,
                    source_id=sid,
                    start_ms=int(start),
                    end_ms=int(end),
                    use_class=eff or _use_class(lic),
                    sharpness=float(sharp or 0.0),
                    pixels=int((w or 0) * (h or 0)),
                    acquired_at=str(acq or ""),
                    descriptor=bytes(desc) if desc is not None else None,
                    license=lic,
                    restricted=bool(restricted),
                    reasons=list(reasons or []),
                    reference=reference,
                )
            )
    for sid, lic, eff, reasons in whole:
        clips.append(
            _Clip(
                clip_id=sid,
                source_id=sid,
                start_ms=0,
                end_ms=2**62,
                use_class=eff or _use_class(lic),
                sharpness=0.0,
                pixels=0,
                acquired_at="",
                license=lic,
                restricted=True,
                reasons=list(reasons or []),
                reference=True,
                whole=True,
            )
        )
    return clips, frames


def _attribute(clips: list[_Clip], frames: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Frame rows of every clip. Returns CSR-free pairs ``(clip_no, row_no)``."""
    f_src = np.array(frames.column("source_id").to_pylist(), dtype=object)
    f_clip = frames.column("clip_id").to_pylist()
    f_time = frames.column("time_ms").to_numpy().astype(np.int64)
    by_src: dict[str, np.ndarray] = {}
    if len(f_src):
        order = np.arange(len(f_src))
        bounds = np.flatnonzero(f_src[1:] != f_src[:-1]) + 1
        for grp in np.split(order, bounds):
            by_src[f_src[grp[0]]] = grp
    clip_no, row_no = [], []
    for k, c in enumerate(clips):
        rows = by_src.get(c.source_id)
        if rows is None:
            continue
        if c.whole:
            c.rows = rows.tolist()
            clip_no += [k] * len(rows)
            row_no += rows.tolist()
            continue
        t = f_time[rows]
        sel = rows[(t >= c.start_ms) & (t < c.end_ms)]
        sel = np.array([r for r in sel if f_clip[r] in (None, c.clip_id)], np.int64)
        extra = [r for r in rows if f_clip[r] == c.clip_id and not (c.start_ms <= f_time[r] < c.end_ms)]
        if extra:
            sel = np.concatenate([sel, np.array(extra, np.int64)])
        c.rows = sel.tolist()
        clip_no += [k] * len(sel)
        row_no += sel.tolist()
    return np.array(clip_no, np.int64), np.array(row_no, np.int64)


def plan(clips: list[_Clip], frames: pa.Table, cfg: DedupConfig) -> tuple[list[Result], dict[str, Any]]:
    """Decide keep/drop for every clip. Pure: no catalog access."""
    t0 = time.perf_counter()
    clip_no, row_no = _attribute(clips, frames)
    hashes = _binary_to_array(frames.column("pdq")) if len(frames) else np.zeros((0, 32), np.uint8)
    f_src = frames.column("source_id").to_pylist()
    src_names = sorted(set(f_src))
    src_of = {s: i for i, s in enumerate(src_names)}
    row_src = np.array([src_of[s] for s in f_src], np.int32)
    n_rows = len(hashes)
    # Row-level matches: every pair of frames within the distance, plus each frame with itself (so that
    # clips sharing frames of one source, i.e. overlapping spans, are compared too).
    idx = HashIndex(hashes, row_src, np.zeros(n_rows), src_names)
    qa, rb, dist = idx.search(hashes, cfg.max_distance, exact=cfg.exact_search, block=2048)
    keep = qa != rb
    if not cfg.compare_same_source:
        keep &= row_src[qa] != row_src[rb]
    qa, rb, dist = qa[keep], rb[keep], dist[keep]
    qa = np.concatenate([qa, np.arange(n_rows)])
    rb = np.concatenate([rb, np.arange(n_rows)])
    dist = np.concatenate([dist, np.zeros(n_rows, np.int32)])
    # Rows to clips (a row belongs to every clip whose span holds it).
    order = np.argsort(row_no, kind="stable")
    r_sorted, c_sorted = row_no[order], clip_no[order]
    starts = np.searchsorted(r_sorted, np.arange(n_rows), "left")
    ends = np.searchsorted(r_sorted, np.arange(n_rows), "right")
    cnt = ends - starts
    # expand (a, b) into (clip_of_a, a, clip_of_b)
    na, nb = cnt[qa], cnt[rb]
    m = (na > 0) & (nb > 0)
    qa, rb, dist, na, nb = qa[m], rb[m], dist[m], na[m], nb[m]
    rep = na * nb
    A = np.repeat(qa, rep)
    B = np.repeat(rb, rep)
    pos = np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep)
    ia = pos // np.repeat(nb, rep)
    ib = pos % np.repeat(nb, rep)
    ca = c_sorted[starts[A] + ia]
    cb = c_sorted[starts[B] + ib]
    diff = ca != cb
    ca, cb, A = ca[diff], cb[diff], A[diff]
    n_clips = len(clips)
    trip = np.unique((ca * n_clips + cb) * (n_rows + 1) + A)
    pair = trip // (n_rows + 1)
    pairs, matched = np.unique(pair, return_counts=True)
    usable = np.array([len(c.rows) for c in clips], np.int64)
    cover: dict[tuple[int, int], int] = {}
    for p, k in zip(pairs.tolist(), matched.tolist(), strict=True):
        cover[(p // n_clips, p % n_clips)] = k
    def covers(x: int, y: int) -> bool:
        """At least ``min_share`` of x's usable frames (and ``min_frames``) match frames of y."""
        n_x = int(usable[x])
        k = cover.get((x, y), 0)
        return bool(n_x) and k / n_x >= cfg.min_share and k >= min(cfg.min_frames, n_x)

    copies: dict[int, set[int]] = {}  # near-duplicate relation, both ways (x within y, or y within x)
    for (x, y), _k in cover.items():
        if covers(x, y):
            copies.setdefault(x, set()).add(y)
            copies.setdefault(y, set()).add(x)
    # The footage's use class: the most restrictive of the clip's own and its copies'.
    for i, c in enumerate(clips):
        classes = [c.use_class, *(clips[j].use_class for j in copies.get(i, ()))]
        c.footage_class = max(classes, key=lambda k: CLASS_RANK.get(k, 3))
    # Clips the purpose may use whose footage matches a restricted copy: refused, naming that copy.
    tainted: dict[int, int] = {}
    for x, c in enumerate(clips):
        if c.restricted or c.reference:
            continue
        hits = [y for y in copies.get(x, ()) if clips[y].restricted]
        if hits:
            tainted[x] = max(
                hits, key=lambda y: (max(cover.get((x, y), 0) / max(int(usable[x]), 1),
                                         cover.get((y, x), 0) / max(int(usable[y]), 1)), -y)
            )
    # Greedy in keep order, among the copies the purpose may use.
    order_keys = list(cfg.keep_order)
    ranked = sorted(
        (i for i, c in enumerate(clips) if not c.reference and i not in tainted),
        key=lambda i: clips[i].keys(order_keys),
    )
    rank_of = {i: r for r, i in enumerate(ranked)}
    covered_by: dict[int, list[int]] = {}
    for (x, y), _k in cover.items():
        covered_by.setdefault(x, []).append(y)
    kept: set[int] = set()
    dropped: dict[int, int] = {}
    for x in ranked:
        best = None
        n_x = int(usable[x])
        if n_x:
            for y in covered_by.get(x, []):
                if y not in kept or clips[y].restricted != clips[x].restricted:
                    continue
                if covers(x, y):
                    cand = (cover[(x, y)] / n_x, -rank_of[y])
                    if best is None or cand > best[0]:
                        best = (cand, y)
        if best is None:
            kept.add(x)
        else:
            dropped[x] = best[1]
    groups: dict[int, list[int]] = {}
    for x, y in dropped.items():
        groups.setdefault(y, []).append(x)
    results: list[Result] = []
    group_out = []
    for i, c in enumerate(clips):
        if c.reference:
            continue
        if i in tainted:
            r = tainted[i]
            results.append(
                Result.dropped(
                    c.clip_id, RESTRICTED_PREFIX + clips[r].clip_id, _restricted(clips, i, r, cover, usable)
                )
            )
        elif i in dropped:
            y = dropped[i]
            results.append(
                Result.dropped(
                    c.clip_id,
                    REASON_PREFIX + clips[y].clip_id,
                    _explain(clips, i, y, cover, usable, order_keys),
                )
            )
        else:
            dups = groups.get(i, [])
            detail = {"usable_frames": int(usable[i])}
            if c.footage_class and c.footage_class != c.use_class:
                detail["footage_class"] = c.footage_class
            if c.restricted:
                detail["restricted"] = True
            if dups:
                detail["duplicates"] = [clips[x].clip_id for x in dups]
            results.append(Result.kept(c.clip_id, detail=detail))
    for y, xs in sorted(groups.items(), key=lambda kv: rank_of[kv[0]]):
        group_out.append(
            {
                "kept": clips[y].clip_id,
                "kept_source": clips[y].source_id,
                "dropped": [
                    {
                        "clip_id": clips[x].clip_id,
                        "source_id": clips[x].source_id,
                        "kept": clips[y].clip_id,
                        **{
                            k: v
                            for k, v in json.loads(
                                _explain_json(clips, x, y, cover, usable, order_keys)
                            ).items()
                            if k in ("share", "relation", "why")
                        },
                    }
                    for x in xs
                ],
            }
        )
    restricted_out = [
        {
            "clip_id": clips[x].clip_id,
            "source_id": clips[x].source_id,
            "restricted_copy": clips[r].clip_id,
            "restricted_source": clips[r].source_id,
            "restricted_license": clips[r].license,
        }
        for x, r in sorted(tainted.items())
    ]
    stats = {
        "clips": sum(1 for c in clips if not c.reference),
        "restricted_copies": restricted_out,
        "frames": int(n_rows),
        "clip_pairs": len(cover),
        "dropped": len(dropped) + len(tainted),
        "groups": group_out,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return results, stats


def _restricted(clips: list[_Clip], x: int, r: int, cover, usable) -> dict[str, Any]:
    """Why clip x is refused: the chain from it to the restricted copy it matched, and that copy's terms."""
    cx, cr = clips[x], clips[r]
    share_x = cover.get((x, r), 0) / usable[x] if usable[x] else 0.0
    share_r = cover.get((r, x), 0) / usable[r] if usable[r] else 0.0
    relation = "copy of restricted footage" if share_x >= share_r else "contains restricted footage"
    return {
        "rule": RULE,
        "relation": relation,
        "restricted_copy": cr.clip_id,
        "restricted_source": cr.source_id,
        "share": round(float(share_x), 4),
        "restricted_share_matched": round(float(share_r), 4),
        "matched_frames": int(max(cover.get((x, r), 0), cover.get((r, x), 0))),
        "chain": [
            {
                "clip_id": cx.clip_id,
                "source_id": cx.source_id,
                "license": cx.license,
                "use_class": cx.use_class,
                "role": "this clip (its stated licence is not what decides)",
            },
            {
                "clip_id": cr.clip_id if not cr.whole else None,
                "source_id": cr.source_id,
                "license": cr.license,
                "use_class": cr.use_class,
                "reasons": cr.reasons,
                "role": "the restricted copy it matched: its terms bind the footage",
            },
        ],
        "override": "only a decision that makes the restricted source itself usable (a recorded "
        "permission or a policy entry for it)",
    }


def _explain_json(clips, x, y, cover, usable, order) -> str:
    return json.dumps(_explain(clips, x, y, cover, usable, order), sort_keys=True, default=str)


def why_kept(cx: _Clip, cy: _Clip, order: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Why ``cy`` is kept over ``cx`` (the first key of ``order`` on which they differ, else the clip id
    order), with the keys of ``cx`` and of ``cy`` as the explanation shows them."""
    vx, vy = cx.key_view(order), cy.key_view(order)
    kx, ky = cx.keys(order), cy.keys(order)
    for j, k in enumerate(order):
        if kx[j] != ky[j]:
            return f"{k}: kept {vy[k]!s} ranks before {vx[k]!s}", vx, vy
    return "tie: clip id order", vx, vy


def _explain(clips: list[_Clip], x: int, y: int, cover, usable, order: list[str]) -> dict[str, Any]:
    cx, cy = clips[x], clips[y]
    kx = cover.get((x, y), 0)
    ky = cover.get((y, x), 0)
    share_x = kx / usable[x] if usable[x] else 0.0
    share_y = ky / usable[y] if usable[y] else 0.0
    relation = "same footage" if share_y >= share_x * 0.8 and share_y >= 0.5 else "contained in the kept clip"
    if cx.source_id == cy.source_id:
        relation = (
            "overlapping span of the same source"
            if cx.start_ms < cy.end_ms and cy.start_ms < cx.end_ms
            else relation
        )
    why, vx, vy = why_kept(cx, cy, order)
    dist = None
    if cx.descriptor and cy.descriptor:
        dist = int(
            np.unpackbits(
                np.frombuffer(cx.descriptor, np.uint8) ^ np.frombuffer(cy.descriptor, np.uint8)
            ).sum()
        )
    return {
        "kept": cy.clip_id,
        "kept_source": cy.source_id,
        "share": round(float(share_x), 4),
        "kept_share_matched": round(float(share_y), 4),
        "matched_frames": int(kx),
        "usable_frames": int(usable[x]),
        "relation": relation,
        "why": why,
        "keep_order": order,
        "kept_keys": vy,
        "dropped_keys": vx,
        "descriptor_distance": dist,
    }


def _config(settings=None, config: DedupConfig | dict | None = None) -> DedupConfig:
    if isinstance(config, DedupConfig):
        return config
    base = dict(settings.stage_config(STAGE_NAME)) if settings is not None else {}
    base.update(config or {})
    from ..errors import ConfigError, describe_invalid

    try:
        cfg = DedupConfig(**base)
    except Exception as exc:
        raise ConfigError(f"invalid config for stage {STAGE_NAME}: {describe_invalid(exc)}", item=f"[{STAGE_NAME}]") from exc
    bad = [k for k in cfg.keep_order if k not in KEEP_KEYS]
    if bad:
        raise ConfigError(
            f"unknown keep_order key(s): {', '.join(bad)}",
            item=f"[{STAGE_NAME}] keep_order",
            fix=f"use {', '.join(KEEP_KEYS)}",
        )
    return cfg


def config_hash(cfg: DedupConfig) -> str:
    import hashlib

    payload = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(f"{STAGE_NAME}|{payload}".encode()).hexdigest()[:16]


def find_near_duplicates(
    catalog: Catalog,
    store: BlobStore | str | os.PathLike,
    *,
    settings=None,
    config: DedupConfig | dict | None = None,
    record: bool = True,
    clip_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Dedup every clip in play (no dropped or failed outcome at another stage) across the catalog.

    Loads new fingerprints first (:func:`~clipfactory.fingerprints.index.index_catalog`). With ``record``
    the decisions become outcome rows of stage ``dedup.near`` in a new ``runs`` row. Returns a summary:
    counts, the duplicate groups with the reason for each choice, and the run id.
    """
    cfg = _config(settings, config)
    purpose = cfg.purpose or getattr(settings, "purpose", None)
    prepare(catalog, store, purpose, settings)
    if purpose and not cfg.purpose:
        cfg = cfg.model_copy(update={"purpose": purpose})
    run_id = None
    if not record:
        clips, frames = _load(catalog, cfg, purpose, clip_ids)
        _, stats = plan(clips, frames, cfg)
    else:
        stats, run_id = _record(catalog, store, cfg, settings, clip_ids)
    return {"run_id": run_id, "stage": STAGE_NAME, "config": cfg.model_dump(mode="json"), **stats}


def _in_play(catalog: Catalog, clip_ids: list[str] | None) -> list[ClipRecord]:
    from ..catalog.db import load_records

    with catalog.read() as con:
        ids_ = [
            r[0]
            for r in con.execute(
                f"""SELECT c.clip_id FROM clips c WHERE NOT EXISTS (
                        SELECT 1 FROM latest_outcomes o WHERE o.item_id = c.clip_id
                        AND o.stage <> '{STAGE_NAME}' AND o.status IN ('dropped', 'failed'))
                    ORDER BY c.source_id, c.start_ms, c.clip_id"""
            ).fetchall()
        ]
        if clip_ids is not None:
            wanted = set(clip_ids)
            ids_ = [i for i in ids_ if i in wanted]
        return load_records(con, ClipRecord, ids_)


def _record(catalog: Catalog, store, cfg: DedupConfig, settings, clip_ids) -> tuple[dict[str, Any], str | None]:
    """``clipfactory dedup``: the ``dedup.near`` stage over every clip in play, in one run of its own."""
    from ..pipelines import Run

    items = _in_play(catalog, clip_ids)
    if not items:
        clips, frames = _load(catalog, cfg, cfg.purpose, clip_ids)
        return plan(clips, frames, cfg)[1], None
    if settings is None:
        from ..config import Settings

        root = store.root if isinstance(store, BlobStore) else store
        settings = Settings(catalog=str(catalog.path), store=str(root))
    config = {"stages": {STAGE_NAME: cfg.model_dump(mode="json")}}
    with Run(settings, command="dedup", catalog=catalog, config=config, workers=1) as run:
        stage = NearDedupStage(cfg.model_dump(mode="json"), run.context())
        run.stage(stage, items)
    return stage.last_stats, run.run_id


def prepare(catalog: Catalog, store, purpose: str | None, settings=None) -> dict[str, Any]:
    """Before comparing: load new fingerprints, and decide for ``purpose`` every fingerprinted source without
    a decision under the policy in force, so restricted copies anywhere in the catalog are known."""
    # Frame hashes only: the crop variants of shot thumbnails serve lookups (which add them when needed),
    # not the comparison of clips.
    out: dict[str, Any] = {"indexed": index_catalog(catalog, store, crop_variants=False)}
    if not purpose:
        return out
    from ..policy import gate

    policy_hash = gate._context(settings, purpose, None).policy_hash
    with catalog.read() as con:
        stale = [
            r[0]
            for r in con.execute(
                """SELECT DISTINCT f.source_id FROM frame_hashes f
                   LEFT JOIN policy_decisions p ON p.source_id = f.source_id AND p.purpose = ?
                   WHERE p.source_id IS NULL OR p.policy_hash IS DISTINCT FROM ?
                   ORDER BY 1""",
                [purpose, policy_hash],
            ).fetchall()
        ]
    if stale:
        evaluation = list(settings.build.evaluation_manifests) if settings is not None else None
        gate.evaluate(catalog, purpose, settings=settings, source_ids=stale, evaluation_datasets=evaluation or None)
    out["decided"] = len(stale)
    return out


def explain_section(con, source_id: str) -> dict[str, Any] | None:
    """For ``clipfactory explain``: the source's clips that ``dedup.near`` last dropped, with the copy each
    matched and, for a restricted copy, the chain to the terms that bind the footage. ``None`` if none."""
    try:
        rows = con.execute(
            """SELECT o.item_id, o.reason, o.detail, o.run_id, o.stage FROM latest_outcomes o
               JOIN clips c ON c.clip_id = o.item_id
               WHERE c.source_id = ? AND o.stage IN (?, 'dedup.semantic') AND o.status = 'dropped'
               ORDER BY c.start_ms, o.item_id""",
            [source_id, STAGE_NAME],
        ).fetchall()
    except Exception:  # the media tables are not there yet
        return None
    if not rows:
        return None
    out = []
    for clip_id, reason, detail, run_id, stage in rows:
        d = json.loads(detail) if detail else {}
        entry: dict[str, Any] = {"clip_id": clip_id, "reason": reason, "run_id": run_id, "stage": stage}
        if reason.startswith(RESTRICTED_PREFIX):
            entry.update(
                why=f"{RULE}: it matches {d.get('restricted_copy')} of {d.get('restricted_source')}",
                relation=d.get("relation"),
                share=d.get("share"),
                chain=d.get("chain", []),
            )
        else:
            entry.update(kept=d.get("kept"), relation=d.get("relation"), why=d.get("why"))
            if "similarity" in d:  # dedup.semantic: the vectors' cosine similarity
                entry["similarity"] = d["similarity"]
        out.append(entry)
    return {"dropped_clips": out, "restricted_copies": sum(1 for e in out if "chain" in e)}


def dropped_clip_ids(catalog: Catalog) -> set[str]:
    """Clips whose latest ``dedup.near`` outcome is a drop (for builds to leave out)."""
    rows = catalog.query(
        "SELECT item_id FROM latest_outcomes WHERE stage = ? AND status = 'dropped'", [STAGE_NAME]
    )
    return {r["item_id"] for r in rows}


try:  # registered when the registry imports this module (registry.STAGE_MODULES)
    from ..registry import register as _register
except ImportError:  # pragma: no cover
    _register = None


class NearDedupStage(Stage):
    """``dedup.near``: near-duplicate dedup (see the module docstring).

    Reads: :class:`ClipRecord` items and their sources' PDQ frame hashes from the catalog
    (``context.catalog_path``, read-only; :func:`prepare` loads new fingerprints and decisions first).
    Writes: nothing new; each clip is kept, or dropped with ``dedup.near_duplicate_of:<clip_id>``.
    Dedup is global: a batch is deduped within itself, so the executor should pass all clips in one batch;
    :func:`find_near_duplicates` dedups the whole catalog and is what ``clipfactory dedup`` runs.
    Resources: one CPU; memory about 200 bytes per frame hash.
    """

    name = STAGE_NAME
    version = STAGE_VERSION
    resources = Resources(cpus=1, memory_gb=2.0)
    batch_size = 1_000_000
    input_type = ClipRecord
    output_type = ClipRecord
    Config = DedupConfig
    #: a catalog stage: it compares against the whole catalog, so it runs in the driver on every executor
    driver_side = True
    #: every clip is decided again on each run (a better copy may have arrived); only changes are recorded
    resume = False

    def __init__(self, config=None, context=None):
        super().__init__(config, context)
        self.last_stats: dict[str, Any] = {}

    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        if not items:
            return []
        if not self.context.catalog_path:
            return [Result.failed(c.clip_id, "terminal", "dedup.near needs the catalog") for c in items]
        catalog = Catalog(self.context.catalog_path)
        clips, frames = _load(catalog, self.config, self.config.purpose, [c.clip_id for c in items])
        results, self.last_stats = plan(clips, frames, self.config)
        by_id = {r.item_id: r for r in results}
        out = []
        for c in items:
            r = by_id.get(c.clip_id)
            if r is None:  # not in play (dropped earlier) or unknown to the catalog: nothing to compare
                out.append(Result.kept(c.clip_id, c, detail={"usable_frames": 0}))
            elif r.status == Result.KEPT:
                out.append(Result.kept(c.clip_id, c, detail=r.detail))
            else:
                out.append(r)
        return out


if _register is not None:
    _register(NearDedupStage)
