"""dedup.near: re-encodes under other ids, overlapping spans, contained clips; the kept copy follows the
policy order and every drop is explained in an outcome row."""

from __future__ import annotations

import json

import pytest
from media_synth import transform

from clipfactory import ids
from clipfactory.catalog import upsert_records
from clipfactory.fingerprints.dedup import REASON_PREFIX, dropped_clip_ids, find_near_duplicates
from clipfactory.records import ClipRecord
from clipfactory.storage import BlobStore

from .conftest import add_source


@pytest.fixture
def dup_catalog(catalog, tmp_path, synth_dir):
    store = BlobStore(tmp_path / "store")
    a, a_clips = add_source(catalog, store, synth_dir / "A.mp4", license="CC-BY-NC-4.0", cut_clips=False)
    # the same footage re-encoded and resized, uploaded elsewhere under a permissive licence
    copy = transform(synth_dir / "A.mp4", tmp_path / "a_copy.mp4", codec="mpeg4", bit_rate=400_000, scale=0.5)
    a2, a2_clips = add_source(
        catalog, store, copy, license="CC-BY-4.0", url="https://example.org/a", cut_clips=False
    )
    b, b_clips = add_source(catalog, store, synth_dir / "B.mp4", license="CC-BY-4.0", cut_clips=False)
    c, c_clips = add_source(catalog, store, synth_dir / "C.mp4", license="CC-BY-4.0", cut_clips=False)
    # a second dataset's span of C that overlaps C's first clip [0, 3000) almost entirely
    extra = ClipRecord(
        clip_id=ids.clip_id(c.source_id, 500, 3000),
        source_id=c.source_id,
        start_ms=500,
        end_ms=3000,
        fingerprint_uri=c.fingerprint_uri,
        sharpness=50.0,
    )
    with catalog.write() as con:
        upsert_records(con, [extra])
    return store, {
        "a": (a, a_clips),
        "a2": (a2, a2_clips),
        "b": (b, b_clips),
        "c": (c, c_clips),
        "extra": extra,
    }


def test_near_duplicates_are_dropped_with_explanations(catalog, dup_catalog):
    store, d = dup_catalog
    out = find_near_duplicates(catalog, store)
    assert out["run_id"]
    dropped = dropped_clip_ids(catalog)
    a_ids = {c.clip_id for c in d["a"][1]}
    a2_ids = {c.clip_id for c in d["a2"][1]}
    assert a_ids and len(a2_ids) == len(a_ids)
    # one copy of A's footage stays: exactly one of the original and the relabelled copy per clip
    assert len(a_ids & dropped) + len(a2_ids & dropped) == len(a_ids)
    # the overlapping span of C is contained in C's first clip (sharper, so ranked first)
    assert d["extra"].clip_id in dropped
    # unrelated footage is untouched
    assert not ({c.clip_id for c in d["b"][1]} & dropped)
    assert len(dropped) == len(a_ids) + 1
    rows = catalog.query(
        "SELECT item_id, status, reason, detail FROM stage_outcomes WHERE stage = 'dedup.near' AND run_id = ?",
        [out["run_id"]],
    )
    by_id = {r["item_id"]: r for r in rows}
    for cid in (a_ids | a2_ids) & dropped:
        r = by_id[cid]
        assert r["status"] == "dropped" and r["reason"].startswith(REASON_PREFIX)
        kept = r["reason"][len(REASON_PREFIX) :]
        assert kept in (a_ids | a2_ids) - dropped
        detail = json.loads(r["detail"])
        assert detail["share"] >= 0.8
        # The copy's CC BY label launders nothing: both copies carry the footage's non-commercial class,
        # so the licence never decides which one is kept.
        assert detail["kept_keys"]["license"] == detail["dropped_keys"]["license"] == "non-commercial"
        assert not detail["why"].startswith("license")
    e = json.loads(by_id[d["extra"].clip_id]["detail"])
    assert e["relation"] == "overlapping span of the same source"
    runs = catalog.query("SELECT command, status FROM runs WHERE run_id = ?", [out["run_id"]])
    assert runs == [{"command": "dedup", "status": "finished"}]


def test_a_relabelled_copy_of_nc_footage_is_refused_for_commercial_use(catalog, dup_catalog):
    store, d = dup_catalog
    out = find_near_duplicates(catalog, store, config={"purpose": "commercial"})
    a_ids = {c.clip_id for c in d["a"][1]}
    a2_ids = {c.clip_id for c in d["a2"][1]}
    rows = catalog.query(
        "SELECT item_id, status, reason, detail FROM stage_outcomes WHERE stage = 'dedup.near' AND run_id = ?",
        [out["run_id"]],
    )
    by_id = {r["item_id"]: r for r in rows}
    assert a2_ids and d["b"][1]
    for cid in a2_ids:
        r = by_id[cid]
        assert r["status"] == "dropped" and r["reason"].startswith("dedup.restricted_copy:")
        assert r["reason"].split(":", 1)[1] in a_ids  # names the NC clip it matched
        detail = json.loads(r["detail"])
        chain = detail["chain"]
        assert [c["source_id"] for c in chain] == [d["a2"][0].source_id, d["a"][0].source_id]
        assert chain[0]["license"] == "CC-BY-4.0" and chain[1]["license"] == "CC-BY-NC-4.0"
        assert "policy.license_noncommercial" in chain[1]["reasons"]
    # B is CC BY with no restricted copy: it stays
    assert all(by_id[c.clip_id]["status"] == "kept" for c in d["b"][1])
    # the summary lists every refused copy once, each with the NC clip and licence it matched
    assert sorted(x["clip_id"] for x in out["restricted_copies"]) == sorted(a2_ids)
    assert all(
        x["restricted_copy"] in a_ids
        and x["restricted_source"] == d["a"][0].source_id
        and x["restricted_license"] == "CC-BY-NC-4.0"
        for x in out["restricted_copies"]
    )


def test_keep_order_is_configurable(catalog, dup_catalog):
    store, d = dup_catalog
    # resolution first: the full-size non-commercial original wins over the half-size copy
    out = find_near_duplicates(catalog, store, config={"keep_order": ["resolution", "license"]}, record=False)
    dropped = {x["clip_id"] for g in out["groups"] for x in g["dropped"]}
    assert {c.clip_id for c in d["a2"][1]} <= dropped
    assert not ({c.clip_id for c in d["a"][1]} & dropped)
    assert out["run_id"] is None  # dry run: nothing recorded
    assert catalog.query("SELECT count(*) AS n FROM stage_outcomes WHERE stage = 'dedup.near'")[0]["n"] == 0


def test_contained_clip_is_dropped_for_the_longer_one(catalog, tmp_path, synth_dir):
    store = BlobStore(tmp_path / "store")
    sub = transform(
        synth_dir / "D.mp4", tmp_path / "sub.mp4", start_s=3.0, end_s=7.0, codec="mpeg4", bit_rate=500_000
    )
    # the contained copy is acquired first, so it ranks first on "earliest"; it cannot cover the long
    # clip, so both stay
    s2, sub_clips = add_source(catalog, store, sub, clip_s=4.0, license="CC0-1.0", cut_clips=False)
    src, _ = add_source(
        catalog, store, synth_dir / "D.mp4", clip_s=10.0, license="CC-BY-NC-4.0", cut_clips=False
    )
    out = find_near_duplicates(catalog, store, config={"keep_order": ["earliest"]}, record=False)
    assert out["dropped"] == 0
    # with the long clip first in the order, the contained one is dropped for it
    out = find_near_duplicates(catalog, store, config={"keep_order": ["longest"]}, record=False)
    assert out["dropped"] == 1
    g = out["groups"][0]
    assert g["kept_source"] == src.source_id and g["dropped"][0]["clip_id"] == sub_clips[0].clip_id
    assert g["dropped"][0]["relation"] == "contained in the kept clip"


def test_bad_keep_order_is_a_config_error(catalog, tmp_path):
    from clipfactory.errors import ConfigError

    with pytest.raises(ConfigError):
        find_near_duplicates(catalog, tmp_path / "store", config={"keep_order": ["prettiest"]})


def test_stage_runs_in_the_local_executor(catalog, dup_catalog):
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.fingerprints.dedup import NearDedupStage
    from clipfactory.fingerprints.index import index_catalog
    from clipfactory.stage import StageContext

    store, d = dup_catalog
    index_catalog(catalog, store)
    clips = [*d["a"][1], *d["a2"][1], *d["b"][1]]
    stage = NearDedupStage({}, StageContext(store_root=str(store.root), catalog_path=str(catalog.path)))
    summary = LocalExecutor(catalog).run([stage], clips)
    assert summary.stages[0].dropped == len(d["a"][1])
    assert all(r.startswith(REASON_PREFIX) for r in summary.stages[0].reasons)
    assert len(summary.outputs) == len(d["a2"][1]) + len(d["b"][1])
    assert NearDedupStage().process_batch([]) == []
