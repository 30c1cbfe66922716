"""A manifest span's caption reaches the clip that was cut for it, even when the cut moved its start."""

from __future__ import annotations

from clipfactory.catalog import Catalog
from clipfactory.catalog.db import upsert_records
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.semantic.texts import clip_texts


def test_a_spans_caption_goes_to_the_clip_that_covers_most_of_it(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb", create=True)
    with cat.write() as con:
        upsert_records(con, [SourceRecord("web:a", "web")])
        for span_id, b, e, caption in (
            ("span-cut", 3000, 6000, "a dog runs on a beach"),
            ("span-uncut", 10000, 12000, "a cat sleeps"),
        ):
            con.execute(
                "INSERT INTO clip_spans (dataset, source_id, clip_id, start_ms, end_ms, caption) VALUES ('d', 'web:a', ?, ?, ?, ?)",
                [span_id, b, e, caption],
            )
        # the cut of the first span starts at the next keyframe (40 ms later), so its clip has another id;
        # a short clip that overlaps the span by less than half of it is not the span's clip
        upsert_records(con, [ClipRecord("clip-real", "web:a", 3040, 6000), ClipRecord("clip-other", "web:a", 5500, 9000)])
    with cat.read() as con:
        got = {c["clip_id"]: c["text"] for c in clip_texts(con)}
    assert got == {"clip-real": "a dog runs on a beach", "span-uncut": "a cat sleeps"}


def test_a_labels_negation_is_left_out_of_the_source_text(tmp_path):
    from clipfactory.semantic.texts import label_text, source_texts

    cat = Catalog(tmp_path / "c.duckdb", create=True)
    with cat.write() as con:
        upsert_records(con, [SourceRecord("web:a", "web"), SourceRecord("web:b", "web"), SourceRecord("web:c", "web")])
        for sid, label in (("web:a", "using remote controller (not gaming)"), ("web:b", "tying_knot (not on a tie)"),
                           ("web:b", "sailing"), ("web:c", "(not anything)"), ("web:c", "passing ball (in game)")):
            con.execute("INSERT INTO memberships (dataset, source_id, label) VALUES ('d', ?, ?)", [sid, label])
    with cat.read() as con:
        got = source_texts(con)
    assert got == {"web:a": "using remote controller", "web:b": "sailing. tying knot",
                   "web:c": "(not anything). passing ball (in game)"}
    assert label_text("skiing (NOT slalom or crosscountry)") == "skiing"
    assert label_text("(not anything)") == "(not anything)"
