"""Creator lookup on real footage re-uploaded with the edits of typical re-uploads: mirrored, letterboxed
after a black leader, pillarboxed at a low bitrate. The copies are made from the project's media with
PyAV (tests/media_edits.py); each must be found as its source, and only as its source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_edits import edit_copy

from clipfactory.fingerprints.lookup import lookup
from clipfactory.storage import BlobStore

from .conftest import add_source

MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
CATALOG = ["bikes.mp4", "bbb_5s.mp4", "box.mp4"]

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from clipfactory.catalog import Catalog

    if not MEDIA.is_dir():
        pytest.skip(f"real test data not found at {MEDIA.parent.parent}")
    d = tmp_path_factory.mktemp("edits")
    cat = Catalog(d / "cat.duckdb")
    store = BlobStore(d / "store")
    ids = {name: add_source(cat, store, MEDIA / name, cut_clips=False)[0].source_id for name in CATALOG}
    return cat, store, ids


def _only_match(res: dict, source_id: str) -> dict:
    """The one match of ``res``, which must be ``source_id``."""
    assert res["status"] == "matched", (res["status"], res.get("message"))
    assert [m["source_id"] for m in res["matches"]] == [source_id]
    return res["matches"][0]


@pytest.mark.parametrize(
    "name, span",
    [("bikes.mp4", (2.0, 7.0)), ("bbb_5s.mp4", (0.0, 4.0))],
    ids=["bikes_subclip_5s", "bbb_first_4s"],
)
def test_mirrored_copy_is_found(name, span, catalog, tmp_path):
    cat, store, ids = catalog
    start, end = span
    q = edit_copy(MEDIA / name, tmp_path / "mirrored.mp4", mirror=True, start_s=start, end_s=end)
    top = _only_match(lookup(cat, q, store=store), ids[name])
    seg = max(top["segments"], key=lambda s: s["confidence"])
    assert seg["mirrored"] is True
    assert abs(seg["offset_ms"] - start * 1000) <= 1000  # the source range is where the copy came from
    assert top["confidence"] >= 0.7


def test_mirrored_letterboxed_copy_is_found(catalog, tmp_path):
    cat, store, ids = catalog
    q = edit_copy(
        MEDIA / "bikes.mp4", tmp_path / "q.mp4", mirror=True, bars=(0.12, 0.12, 0, 0), start_s=2.0, end_s=7.0
    )
    res = lookup(cat, q, store=store)
    top = _only_match(res, ids["bikes.mp4"])
    assert all(s["mirrored"] for s in top["segments"])
    assert abs(top["segments"][0]["offset_ms"] - 2000) <= 1000


def test_mirror_search_can_be_turned_off(catalog, tmp_path):
    cat, store, _ = catalog
    q = edit_copy(MEDIA / "bikes.mp4", tmp_path / "q.mp4", mirror=True, start_s=2.0, end_s=7.0)
    res = lookup(cat, q, store=store, config={"mirror_search": False})
    assert res["status"] == "no_match" and res["thresholds"]["mirror_search"] is False


def test_mirrored_unrelated_footage_does_not_match(catalog, tmp_path):
    """Mirrored hashes are a second chance for every query frame: mirrored footage that is not in the
    catalog must still match nothing (and a mirrored copy must match its own source only)."""
    cat, store, ids = catalog
    for other in ("cup.mp4", "Megamind_bugy.avi"):
        q = edit_copy(MEDIA / other, tmp_path / "q.mp4", mirror=True, end_s=4.0)
        res = lookup(cat, q, store=store)
        assert res["status"] == "no_match", (other, [m["source_id"] for m in res["matches"]])
    q = edit_copy(MEDIA / "box.mp4", tmp_path / "box.mp4", mirror=True, start_s=2.0, end_s=7.0)
    assert _only_match(lookup(cat, q, store=store), ids["box.mp4"])["segments"][0]["mirrored"]


@pytest.mark.parametrize("name", ["bikes.mp4", "box.mp4"])
def test_letterboxed_copy_after_a_black_leader_is_found(name, catalog, tmp_path):
    """3.5 s of black open the copy (a fade-in, a black leader): the bars are known from the start."""
    cat, store, ids = catalog
    q = edit_copy(
        MEDIA / name, tmp_path / "q.mp4", bars=(0.12, 0.12, 0, 0), leader_s=3.5, start_s=2.0, end_s=7.0
    )
    res = lookup(cat, q, store=store)
    top = _only_match(res, ids[name])
    seg = max(top["segments"], key=lambda s: s["confidence"])
    assert not seg["mirrored"]
    assert abs(seg["offset_ms"] - (2000 - 3500)) <= 1000  # source 2 s is query 3.5 s
    assert top["confidence"] >= 0.7


def test_pillarboxed_low_bitrate_copy_is_found_and_bars_are_in_video_pixels(catalog, tmp_path):
    """Bars of 15% of the width left and right (bikes is 640x272: 96 px each, a 832-wide frame), mpeg4 at
    250 kbit/s. The picture must be subsampled for its own width, not the wider frame's."""
    cat, store, ids = catalog
    q = edit_copy(
        MEDIA / "bikes.mp4", tmp_path / "q.mp4", bars=(0, 0, 0.15, 0.15), codec="mpeg4", bit_rate=250_000
    )
    res = lookup(cat, q, store=store)
    top = _only_match(res, ids["bikes.mp4"])
    assert not any(s["mirrored"] for s in top["segments"])  # a plain copy is never reported mirrored
    assert abs(top["segments"][0]["offset_ms"]) <= 1000
    assert top["confidence"] >= 0.7
    t, b, left, right = res["query"]["black_bars"]
    assert t == b == 0
    assert abs(left - 96) <= 4 and abs(right - 96) <= 4


def test_mirror_hash_is_the_left_right_flip():
    """``pdq_and_mirror_of_luma`` gives PDQ's hash of the frame flipped left to right (not upside down),
    within a few bits of hashing a flipped copy, and the plain hash exactly as ``pdq_of_luma``."""
    import av

    from clipfactory.fingerprints.hashes import hamming_matrix
    from clipfactory.fingerprints.sample import pdq_and_mirror_of_luma, pdq_of_luma

    if not MEDIA.is_dir():
        pytest.skip("real test data not found")
    lr, ud = [], []
    with av.open(str(MEDIA / "bikes.mp4")) as c:
        for k, f in enumerate(c.decode(video=0)):
            if k % 25:
                continue
            y = f.to_ndarray(format="gray")[::2, ::2]
            h, hm, q = pdq_and_mirror_of_luma(y)
            assert (h, q) == pdq_of_luma(y)

            def dist(a: bytes, b: bytes) -> int:
                return int(
                    hamming_matrix(np.frombuffer(a, np.uint8)[None], np.frombuffer(b, np.uint8)[None])[0, 0]
                )

            lr.append(dist(hm, pdq_of_luma(y[:, ::-1])[0]))
            ud.append(dist(hm, pdq_of_luma(y[::-1])[0]))
    assert len(lr) >= 8
    assert max(lr) <= 20 and np.median(lr) <= 8
    assert min(ud) >= 64


def test_cli_says_a_segment_is_mirrored(catalog, tmp_path):
    import json

    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    cat, store, ids = catalog
    q = edit_copy(MEDIA / "bikes.mp4", tmp_path / "m.mp4", mirror=True, start_s=2.0, end_s=7.0)
    args = ["lookup", str(q), "--catalog", str(cat.path), "--store", str(store.root)]
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert ids["bikes.mp4"] in text.output and "mirrored" in text.output
    doc = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert any(s["mirrored"] for m in doc["matches"] for s in m["segments"])
