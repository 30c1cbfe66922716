"""Creator lookup: copies survive re-encodes, resizes, letterboxes and sub-clipping; unrelated footage,
non-video files and black videos never give a false match."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_synth import flat_video, transform, transform_many

from clipfactory.fingerprints.lookup import lookup
from clipfactory.media.probe import MediaProbeError
from clipfactory.storage import BlobStore

from .conftest import add_source

TRANSFORMS = {
    "mpeg4_low_bitrate": dict(codec="mpeg4", bit_rate=200_000),
    "half_size": dict(scale=0.5),
    "letterbox": dict(letterbox=0.12),
    "subclip_3s": dict(start_s=3.4, end_s=6.4),
    "subclip_mpeg4_half": dict(start_s=1.2, end_s=5.2, codec="mpeg4", bit_rate=300_000, scale=0.5),
    "crop_10pct_each_side": dict(crop=(0.1, 0.1, 0.1, 0.1)),
    "crop_6pct_mpeg4": dict(crop=(0.06, 0.06, 0.06, 0.06), codec="mpeg4", bit_rate=400_000),
    "crop_12pct_left_right": dict(crop=(0.12, 0.12, 0.0, 0.0)),
}


@pytest.fixture(scope="module")
def synth_catalog(tmp_path_factory, synth_dir):
    from clipfactory.catalog import Catalog

    d = tmp_path_factory.mktemp("lookup")
    cat = Catalog(d / "cat.duckdb")
    store = BlobStore(d / "store")
    srcs = {}
    for name in "ABC":
        src, clips = add_source(
            cat,
            store,
            synth_dir / f"{name}.mp4",
            url=f"https://example.org/{name}",
            uploader="alice",
            cut_clips=False,
        )
        srcs[name] = (src, clips)
    return cat, store, srcs


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
def test_transformed_copies_are_found(kind, synth_catalog, synth_dir, tmp_path):
    cat, store, srcs = synth_catalog
    q = transform(synth_dir / "B.mp4", tmp_path / f"{kind}.mp4", **TRANSFORMS[kind])
    res = lookup(cat, q, store=store)
    assert res["status"] == "matched", res
    top = res["matches"][0]
    assert top["source_id"] == srcs["B"][0].source_id
    assert [m["source_id"] for m in res["matches"]] == [top["source_id"]]  # nothing else matched
    seg = top["segments"][0]
    start = TRANSFORMS[kind].get("start_s", 0.0) * 1000
    # the source time range is where the query came from
    assert abs(seg["source_start_ms"] - seg["query_start_ms"] - start) <= 1000
    assert top["confidence"] >= 0.7
    assert top["content_license"] == "CC-BY-4.0" and top["uploader"] == "alice"
    assert top["clips"], "the clips overlapping the matched range are listed"
    if "crop" in TRANSFORMS[kind]:  # found through a crop variant, and the crop is reported
        cx = TRANSFORMS[kind]["crop"][0]
        assert seg["edit"]["kind"] == "crop" and abs(seg["edit"]["crop_x"] - cx) <= 0.011


def test_asymmetric_crop_is_a_known_limit(synth_catalog, synth_dir, tmp_path):
    """Crops that are not centred are not found (docs/fingerprints.md): no false claim either way."""
    cat, store, srcs = synth_catalog
    q = transform(synth_dir / "B.mp4", tmp_path / "asym.mp4", crop=(0.1, 0.0, 0.0, 0.1))
    res = lookup(cat, q, store=store)
    assert all(m["source_id"] == srcs["B"][0].source_id for m in res["matches"])


def test_exact_copy_and_time_ranges(synth_catalog, synth_dir):
    cat, store, srcs = synth_catalog
    res = lookup(cat, synth_dir / "A.mp4", store=store)
    top = res["matches"][0]
    assert top["exact_copy"] and top["confidence"] == 1.0
    seg = top["segments"][0]
    assert seg["query_start_ms"] == seg["source_start_ms"] == 0
    assert seg["source_end_ms"] >= 9000 and seg["share"] >= 0.8


def test_unrelated_footage_does_not_match(synth_catalog, synth_dir):
    cat, store, _ = synth_catalog
    for name in "DE":
        res = lookup(cat, synth_dir / f"{name}.mp4", store=store)
        assert res["status"] == "no_match", res["matches"]
        assert res["matches"] == []


def test_non_video_is_a_clear_error(synth_catalog, tmp_path):
    cat, store, _ = synth_catalog
    p = tmp_path / "notes.txt"
    p.write_text("not a video\n" * 100)
    with pytest.raises(MediaProbeError) as err:
        lookup(cat, p, store=store)
    assert "media.not_media" in str(err.value)


def test_all_black_video_has_no_usable_frames(synth_catalog, tmp_path):
    cat, store, _ = synth_catalog
    res = lookup(cat, flat_video(tmp_path / "black.mp4", 3.0), store=store)
    assert res["status"] == "no_usable_frames"
    assert res["matches"] == [] and "no usable frames" in res["message"]


def test_missing_file(synth_catalog, tmp_path):
    from clipfactory.errors import NotFoundError

    cat, store, _ = synth_catalog
    with pytest.raises(NotFoundError):
        lookup(cat, tmp_path / "nope.mp4", store=store)


# -- real media ----------------------------------------------------------------------------------------
REAL = ["bikes.mp4", "bbb_5s.mp4", "box.mp4", "vtest.avi"]
#: edits left out for a file, to keep the suite short: each edit still runs on at least three of the four
#: files (a crop query keeps the whole file, and vtest.avi is 80 s of 768x576)
SKIPPED_EDITS = {"vtest.avi": ("crop", "letterbox"), "box.mp4": ("half",)}


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory):
    from clipfactory.catalog import Catalog

    media = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
    if not media.is_dir():
        pytest.skip(f"real test data not found at {media.parent.parent}")
    d = tmp_path_factory.mktemp("real")
    cat = Catalog(d / "cat.duckdb")
    store = BlobStore(d / "store")
    out = {}
    for name in REAL:
        src, _ = add_source(cat, store, media / name, cut_clips=False)
        out[name] = src.source_id
    return cat, store, out, media


@pytest.mark.shared_data
@pytest.mark.parametrize("name", REAL)
def test_real_media_copies_are_found(name, real_catalog, tmp_path):
    cat, store, ids_, media = real_catalog
    kinds = {
        "mpeg4": dict(codec="mpeg4", bit_rate=250_000),
        "half": dict(scale=0.5),
        "letterbox": dict(letterbox=0.12),
        "sub": dict(start_s=1.3, end_s=4.5),
        "crop": dict(crop=(0.1, 0.1, 0.1, 0.1)),
    }
    for kind in SKIPPED_EDITS.get(name, ()):
        del kinds[kind]
    # the first 12 s of each edit (the whole of the short files); a crop is found through the crop
    # variants of shot thumbnails, so its query keeps the whole file (and the thumbnail's frame). The
    # copies are the files transform() writes, from one decode of the source.
    queries = transform_many(
        media / name,
        {tmp_path / f"{kind}.mp4": {**({} if kind == "crop" else {"end_s": 12.0}), **kw} for kind, kw in kinds.items()},
    )
    for kind, q in zip(kinds, queries, strict=True):
        res = lookup(cat, q, store=store, config={"mirror_search": False})  # mirrors: test_lookup_edits
        got = [m["source_id"] for m in res["matches"]]
        assert got and got[0] == ids_[name], (name, kind, res["status"], got)


@pytest.mark.shared_data
def test_real_unrelated_media_do_not_match(real_catalog):
    cat, store, _, media = real_catalog
    for other in ("cup.mp4", "Megamind_bugy.avi", "carphone_pristine.mp4"):
        res = lookup(cat, media / other, store=store)
        assert res["status"] == "no_match", (
            other,
            [(m["source_id"], m["confidence"]) for m in res["matches"]],
        )


@pytest.mark.shared_data
def test_trailer_contains_the_bbb_excerpt(real_catalog):
    """The Big Buck Bunny trailer reuses the shot of bbb_5s: the lookup finds it, and only it."""
    cat, store, ids_, media = real_catalog
    res = lookup(cat, media / "trailer_bbb.mp4", store=store)
    assert [m["source_id"] for m in res["matches"]] == [ids_["bbb_5s.mp4"]]
    seg = res["matches"][0]["segments"][0]
    assert seg["query_end_ms"] - seg["query_start_ms"] >= 2000
