"""The span and caption counts of a first manifest of a dataset, counted by hand from the file."""

from __future__ import annotations

from clipfactory import ids
from clipfactory.sources import ingest_manifest

KINETICS = """label,youtube_id,time_start,time_end,split
a,aaaaaaaaaaa,0,10,train
a,aaaaaaaaaaa,0,10,train
a,aaaaaaaaaaa,20,30,train
b,bbbbbbbbbbb,5,15,train
c,ccccccccccc,oops,15,train
d,ddddddddddd,,,train
e,not-an-id,1,2,train
"""


def test_first_manifest_counts_each_distinct_span_once(catalog, tmp_path):
    path = tmp_path / "k.csv"
    path.write_text(KINETICS)
    s = ingest_manifest(catalog, path, format="kinetics", dataset="k")
    # a: 0-10 (given twice) and 20-30; b: 5-15. c, d and e are bad rows.
    assert (s.rows_total, s.rows_bad, s.new_sources, s.spans, s.captions) == (7, 3, 2, 3, 0)
    assert catalog.query("SELECT source_id, n_spans FROM memberships ORDER BY source_id") == [
        {"source_id": "youtube:aaaaaaaaaaa", "n_spans": 2},
        {"source_id": "youtube:bbbbbbbbbbb", "n_spans": 1},
    ]
    # Every valid row is a span row, and its clip id is the one ids.clip_id gives.
    rows = catalog.query("SELECT source_id, start_ms, end_ms, clip_id, line FROM clip_spans ORDER BY line")
    assert [r["line"] for r in rows] == [2, 3, 4, 5]
    for r in rows:
        assert r["clip_id"] == ids.clip_id(r["source_id"], r["start_ms"], r["end_ms"])
    assert rows[0]["clip_id"] == rows[1]["clip_id"] != rows[2]["clip_id"]


CAPTIONS = """vid,s,e,text
v1,0,5,a dog
v1,0,5,a brown dog
v1,6,9,a cat
v2,,,a whole video
v3,4,2,inverted
"""


def test_first_manifest_counts_captions_and_spans_apart(catalog, tmp_path):
    path = tmp_path / "caps.csv"
    path.write_text(CAPTIONS)
    s = ingest_manifest(
        catalog, path, mapping="id=vid,start=s,end=e,caption=text,time-unit=s,platform=vimeo", dataset="caps"
    )
    # Spans: v1 0-5 (two captions, one span) and v1 6-9; v2's caption is of the whole video; v3 is bad.
    assert (s.rows_total, s.rows_bad, s.spans, s.captions) == (5, 1, 2, 4)
    got = catalog.query("SELECT source_id, clip_id IS NULL AS whole, caption FROM clip_spans ORDER BY line")
    assert got == [
        {"source_id": "vimeo:v1", "whole": False, "caption": "a dog"},
        {"source_id": "vimeo:v1", "whole": False, "caption": "a brown dog"},
        {"source_id": "vimeo:v1", "whole": False, "caption": "a cat"},
        {"source_id": "vimeo:v2", "whole": True, "caption": "a whole video"},
    ]
