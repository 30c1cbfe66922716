"""dedup.semantic (SemDeDup): hand-built vectors whose near-duplicate pairs are known by construction.

Base vectors are unit axes e0..e5 of R^12 (pairwise cosine 0). A copy ``e_k + t * e_(6+k)`` has cosine
``1 / sqrt(1 + t^2)`` with ``e_k``: t = 0.1 gives 0.99504 (a duplicate at epsilon 0.05, whose bound is
0.95); t = 0.5 gives 0.89443 (a duplicate only once epsilon > 0.10557).
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
lazy.module("faiss")

from clipfactory.catalog import Catalog, upsert_records  # noqa: E402
from clipfactory.fingerprints.dedup import _Clip  # noqa: E402
from clipfactory.records import ClipRecord, Result, SourceRecord  # noqa: E402
from clipfactory.semantic import store  # noqa: E402
from clipfactory.semantic.semdedup import SemDedupConfig, plan  # noqa: E402
from clipfactory.stage import StageContext  # noqa: E402

DIM = 12
MODEL = "test-vectors@sha256:0000000000000000"


def axis(k: int, t: float = 0.0, extra: int | None = None) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[k] = 1.0
    if t:
        v[extra if extra is not None else 6 + k] = t
    return v


def clip(cid: str, sharpness: float, use_class: str = "commercial", source: str | None = None) -> _Clip:
    return _Clip(cid, source or f"s-{cid}", 0, 1000, use_class, sharpness, 0, "")


def det(r: Result) -> dict:
    return json.loads(r.detail)


def outcome(results: list[Result]) -> dict[str, tuple[str, str | None]]:
    return {r.item_id: (r.status, r.reason) for r in results}


def test_known_pairs_dropped_naming_the_sharper_copy():
    # a0 ~ a0' (cos 0.995), b ~ b' (cos 0.894: not at epsilon 0.05), c alone
    vecs = np.stack([axis(0), axis(0, 0.1), axis(1), axis(1, 0.5), axis(2)])
    clips = [clip("a0", 10.0), clip("a1", 30.0), clip("b0", 5.0), clip("b1", 1.0), clip("c0", 2.0)]
    res, stats = plan(clips, vecs, SemDedupConfig(epsilon=0.05, clusters=2))
    got = outcome(res)
    assert got["a0"] == ("dropped", "dedup.semantic_duplicate_of:a1")  # a1 is sharper: it is kept
    assert got["a1"] == ("kept", None)
    assert got["b0"] == got["b1"] == got["c0"] == ("kept", None)
    detail = det(next(r for r in res if r.item_id == "a0"))
    assert detail["kept"] == "a1"
    assert detail["similarity"] == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)
    assert detail["why"].startswith("quality:")
    assert stats["groups"] == [{"kept": "a1", "dropped": ["a0"]}]
    # a larger epsilon takes in the b pair (0.894 > 1 - 0.2): b1 goes, for the sharper b0
    res2, _ = plan(clips, vecs, SemDedupConfig(epsilon=0.2, clusters=1))
    assert outcome(res2)["b1"] == ("dropped", "dedup.semantic_duplicate_of:b0")
    assert outcome(res2)["b0"] == ("kept", None)


def test_chain_keeps_clips_that_are_not_duplicates_of_a_kept_one():
    x = axis(0)
    y = axis(0, 0.1)
    y /= np.linalg.norm(y)
    z = np.zeros(DIM, np.float32)
    z[0], z[6] = math.cos(2 * math.atan(0.1)), math.sin(2 * math.atan(0.1))  # twice the angle from x
    # cos(x, y) = cos(y, z) = cos(atan 0.1) = 0.99504; cos(x, z) = cos(2 atan 0.1) = 0.98020
    clips = [clip("x", 3.0), clip("y", 2.0), clip("z", 1.0)]
    res, _ = plan(clips, np.stack([x, y, z]), SemDedupConfig(epsilon=0.01, clusters=1))
    # bound 0.99: x-y and y-z are duplicates, x-z is not. Keep order: x, y, z: y goes (for x), z stays
    assert outcome(res) == {"x": ("kept", None), "y": ("dropped", "dedup.semantic_duplicate_of:x"),
                            "z": ("kept", None)}


def test_the_kept_copy_carries_the_most_restrictive_class_of_its_duplicates():
    vecs = np.stack([axis(3), axis(3, 0.1)])
    clips = [clip("nc", 1.0, "non-commercial"), clip("free", 99.0, "commercial")]
    res, _ = plan(clips, vecs, SemDedupConfig(clusters=1))
    got = {r.item_id: r for r in res}
    # Both copies carry the footage's class (non-commercial): the licence key ties, sharpness decides,
    # and the kept copy states the class it carries.
    assert (got["nc"].status, got["nc"].reason) == ("dropped", "dedup.semantic_duplicate_of:free")
    assert got["free"].status == Result.KEPT
    assert det(got["free"])["footage_class"] == "non-commercial"
    assert det(got["free"])["duplicates"] == ["nc"]


def test_auto_clusters_find_every_planted_pair():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(60, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.normal(size=(10, 32)).astype(np.float32)
    copies = base[:10] + 0.02 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    vecs = np.concatenate([base, copies])
    clips = [clip(f"b{i:02d}", 1.0) for i in range(60)] + [clip(f"c{i:02d}", 0.5) for i in range(10)]
    res, stats = plan(clips, vecs, SemDedupConfig(epsilon=0.05))
    assert stats["clusters"] == round(math.sqrt(70))  # 8
    dropped = {r.item_id: r.reason for r in res if r.status == Result.DROPPED}
    # random 32-d directions are far apart (|cos| < 0.6 here); each copy is within 0.02 of its base
    assert dropped == {f"c{i:02d}": f"dedup.semantic_duplicate_of:b{i:02d}" for i in range(10)}


# -- the stage on a catalog, with policy decisions ---------------------------------------------------------


def _catalog(tmp_path, sources: dict[str, str], clip_vecs: dict[str, tuple[str, np.ndarray]]):
    cat = Catalog(tmp_path / "c.duckdb", create=True)
    recs = [SourceRecord(sid, "owned", content_sha256=sid.split(":")[-1], content_license=lic, width=64,
                         height=48, rights_holder="Someone") for sid, lic in sources.items()]
    clips = [ClipRecord(cid, sid, 0, 2000, sharpness=1.0) for cid, (sid, _) in clip_vecs.items()]
    with cat.write() as con:
        upsert_records(con, recs + clips)
        store.register_model(con, {"model_id": MODEL, "model": "test-vectors", "dim": DIM}, "text")
        store.write_vectors(
            con,
            [{"item_id": cid, "kind": "clip", "source_id": sid, "clip_id": cid, "text_sha256": None}
             for cid, (sid, _) in clip_vecs.items()],
            np.stack([v for _, v in clip_vecs.values()]),
            model_id=MODEL, modality="text",
        )
    return cat, clips


def _stage(cat, **cfg):
    from clipfactory import registry

    return registry.get("dedup.semantic")({"embed_missing": False, **cfg}, StageContext(catalog_path=str(cat.path)))


def test_stage_refuses_a_duplicate_of_a_restricted_copy_for_a_commercial_purpose(tmp_path):
    free, nc, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
    cat, clips = _catalog(
        tmp_path,
        {free: "CC-BY-4.0", nc: "CC-BY-NC-4.0", other: "CC-BY-4.0"},
        {"free-1": (free, axis(4, 0.1)), "nc-1": (nc, axis(4)), "other-1": (other, axis(5)),
         "free-2": (free, axis(1))},
    )
    # Only the usable clips go in (as in the run, which withholds a refused source's clips); the NC clip
    # is found in the catalog as a restricted copy.
    items = [c for c in clips if c.source_id != nc]
    out = {r.item_id: r for r in _stage(cat, purpose="commercial").process_batch(items)}
    assert out["free-1"].status == Result.DROPPED
    assert out["free-1"].reason == "dedup.restricted_copy:nc-1"
    d = det(out["free-1"])
    assert d["restricted_source"] == nc
    assert d["chain"][1]["license"] == "CC-BY-NC-4.0"
    assert d["similarity"] == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)
    assert out["other-1"].status == out["free-2"].status == Result.KEPT
    # For research the NC source is usable: no restricted copy, and the clip is kept (nothing else matches)
    out_r = {r.item_id: r for r in _stage(cat, purpose="research").process_batch(items)}
    assert out_r["free-1"].status == Result.KEPT


def test_stage_keeps_clips_without_a_vector_and_a_catalog_without_vectors(tmp_path):
    s = "sha256:" + "d" * 64
    cat, clips = _catalog(tmp_path, {s: "CC-BY-4.0"}, {"v-1": (s, axis(0)), "v-2": (s, axis(0, 0.05))})
    lone = ClipRecord("novec", s, 5000, 7000)
    out = {r.item_id: r for r in _stage(cat).process_batch([*clips, lone])}
    assert out["novec"].status == Result.KEPT and det(out["novec"])["vector"] is False
    assert {out["v-1"].status, out["v-2"].status} == {Result.KEPT, Result.DROPPED}
    empty = Catalog(tmp_path / "e.duckdb", create=True)
    with empty.write() as con:
        upsert_records(con, [SourceRecord(s, "owned"), lone])
    r = _stage(empty, modality="visual").process_batch([lone])[0]
    assert r.status == Result.KEPT and "no visual vectors" in det(r)["why"]


def test_bad_options_name_the_fix():
    from clipfactory.errors import ConfigError
    from clipfactory.semantic.semdedup import config_of

    with pytest.raises(ConfigError, match="keep_order"):
        config_of({"keep_order": ["colour"]})
    with pytest.raises(ConfigError, match="modality"):
        config_of({"modality": "audio"})
