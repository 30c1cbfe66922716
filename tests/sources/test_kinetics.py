"""Kinetics lists: real validation lists, cross-dataset dedup and overlap, re-ingest, exact line numbers."""

from __future__ import annotations

import csv
import shutil

import pytest

from clipfactory import ids
from clipfactory.errors import ManifestError
from clipfactory.sources import ingest_manifest, list_datasets, overlap_matrix


def _ids(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["youtube_id"] for row in csv.DictReader(fh)]


@pytest.mark.shared_data
def test_real_kinetics_val_lists_counts_and_overlap(catalog, shared_data):
    k400 = shared_data / "manifests" / "kinetics-400_val.csv"
    k600 = shared_data / "manifests" / "kinetics-600_val.csv"
    a = ingest_manifest(catalog, k400)
    b = ingest_manifest(catalog, k600)

    ids400, ids600 = _ids(k400), _ids(k600)
    assert (a.dataset, b.dataset) == ("kinetics-400", "kinetics-600")
    assert a.rows_total == len(ids400) and b.rows_total == len(ids600)
    assert a.rows_bad == 0 and b.rows_bad == 0
    assert a.new_memberships == len(set(ids400))
    assert b.new_memberships == len(set(ids600))
    assert a.new_sources == len(set(ids400))
    # Sources are deduplicated across datasets: K600 adds only the ids K400 does not have.
    assert b.new_sources == len(set(ids600) - set(ids400))
    assert catalog.scalar("SELECT count(*) FROM sources") == len(set(ids400) | set(ids600))

    m = overlap_matrix(catalog)
    shared = set(ids400) & set(ids600)
    assert m.shared["kinetics-400"]["kinetics-600"] == len(shared) > 0
    assert m.unique["kinetics-400"] == len(set(ids400) - set(ids600))
    assert m.unique["kinetics-600"] == len(set(ids600) - set(ids400))
    assert m.total_sources == len(set(ids400) | set(ids600))

    # Every span is kept, with its label and the line it came from.
    assert catalog.scalar("SELECT count(*) FROM clip_spans WHERE dataset = 'kinetics-600'") == len(ids600)
    with open(k600, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    line = 1000
    row = rows[line - 2]
    got = catalog.query(
        "SELECT source_id, start_ms, end_ms, label, clip_id FROM clip_spans WHERE dataset = 'kinetics-600' AND line = ?",
        [line],
    )
    sid = f"youtube:{row['youtube_id']}"
    assert got == [
        {
            "source_id": sid,
            "start_ms": int(row["time_start"]) * 1000,
            "end_ms": int(row["time_end"]) * 1000,
            "label": row["label"],
            "clip_id": ids.clip_id(sid, int(row["time_start"]) * 1000, int(row["time_end"]) * 1000),
        }
    ]


@pytest.mark.shared_data
def test_reingest_is_a_no_op(catalog, shared_data, tmp_path):
    k400 = shared_data / "manifests" / "kinetics-400_val.csv"
    first = ingest_manifest(catalog, k400)
    tables = ["sources", "memberships", "clip_spans", "manifests", "datasets", "ingest_errors"]
    before = {t: catalog.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    snapshot = catalog.query("SELECT * FROM memberships ORDER BY source_id")
    # Same bytes under another name and path: still the same manifest.
    copy = tmp_path / "copy-of-val.csv"
    shutil.copy(k400, copy)
    for path in (k400, copy):
        again = ingest_manifest(catalog, path)
        assert again.already_ingested
        assert again.manifest_id == first.manifest_id
        assert again.new_sources == 0 and again.new_memberships == 0
    assert {t: catalog.scalar(f"SELECT count(*) FROM {t}") for t in tables} == before
    assert catalog.query("SELECT * FROM memberships ORDER BY source_id") == snapshot


def test_sample_rows_lines_and_reasons(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "kinetics400_sample.csv")
    assert s.dataset == "kinetics-400"  # inferred from the is_cc column
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (10, 4, 6)
    got = [(e.line, e.reason) for e in s.errors]
    assert got == [
        (4, "bad YouTube id tooShortId: 10 characters, not 11"),
        (5, "inverted span: end 20 is before start 30"),
        (6, "negative span start -5"),
        (7, "missing columns (Expected Number of Columns: 6 Found: 3)"),
        (8, "invalid UTF-8 bytes (the file is not UTF-8 encoded)"),
        (11, "unparsable start time soon"),
    ]
    # The same errors are in the catalog, with the file and the offending row.
    rows = catalog.query("SELECT uri, line, reason, raw FROM ingest_errors ORDER BY line")
    assert [r["line"] for r in rows] == [4, 5, 6, 7, 8, 11]
    assert all(r["uri"].endswith("kinetics400_sample.csv") for r in rows)
    assert "tooShortId" in rows[0]["raw"]
    assert rows[3]["raw"] == "baking cookies,xHgTPTjbEXc,12"
    # URL spellings were canonicalised; is_cc is kept with the span.
    assert catalog.query("SELECT source_id FROM sources ORDER BY source_id") == [
        {"source_id": "youtube:0wR5jVB-WPk"},
        {"source_id": "youtube:3caPS4FHFF8"},
        {"source_id": "youtube:AbCdEfGhIjK"},
    ]
    cc = catalog.query("SELECT line, extra FROM clip_spans WHERE extra IS NOT NULL")
    assert cc == [{"line": 3, "extra": '{"is_cc": true}'}]
    assert (
        catalog.query(
            "SELECT start_ms, end_ms, n_spans FROM clip_spans JOIN memberships USING (dataset, source_id) "
            "WHERE source_id = 'youtube:AbCdEfGhIjK' ORDER BY line"
        )
        == [{"start_ms": 1500, "end_ms": 11500, "n_spans": 1}] * 2
    )


def test_line_numbers_with_quoted_newlines_and_blank_lines(catalog, manifests):
    path = manifests / "kinetics400_multiline.csv"
    s = ingest_manifest(catalog, path)
    assert s.lines_exact
    assert [(e.line, e.reason.split(" (")[0]) for e in s.errors] == [
        (5, "bad YouTube id tooShortId: 10 characters, not 11"),
        (7, "missing columns"),
    ]
    lines = catalog.query("SELECT line, label FROM clip_spans ORDER BY line")
    assert lines == [
        {"line": 2, "label": "multi\nline label"},
        {"line": 6, "label": "quoted, comma"},
        {"line": 8, "label": 'a "quoted" word'},
        {"line": 10, "label": "last"},
    ]
    # The physical lines agree with a plain reading of the file.
    text = path.read_text().split("\n")
    assert text[6 - 1].startswith('"quoted, comma"') and text[10 - 1].startswith("last,")


def test_kinetics_dataset_inference(catalog, manifests, tmp_path):
    s = ingest_manifest(catalog, manifests / "kinetics700_test.csv")
    assert s.dataset == "kinetics-700"  # from the file name; a test list has no label column
    assert catalog.scalar("SELECT count(*) FROM clip_spans WHERE label IS NULL AND split = 'test'") == 2
    with pytest.raises(ManifestError, match="kinetics-600 or --dataset kinetics-700"):
        ingest_manifest(catalog, manifests / "kinetics_val.csv")
    s = ingest_manifest(catalog, manifests / "kinetics_val.csv", dataset="kinetics-600")
    assert s.dataset == "kinetics-600"
    s = ingest_manifest(catalog, manifests / "kinetics_val.csv", format="kinetics-600")
    assert s.already_ingested
    names = {d["dataset"]: d for d in list_datasets(catalog)}
    assert names["kinetics-700"]["registry_key"] == "kinetics-700"
    assert names["kinetics-600"]["sources"] == 1


def test_several_manifests_of_one_dataset_accumulate(catalog, manifests):
    ingest_manifest(catalog, manifests / "kinetics400_sample.csv")
    s = ingest_manifest(catalog, manifests / "kinetics400_multiline.csv")
    # 0wR5jVB-WPk and 3caPS4FHFF8 were already members: only two memberships are new.
    assert s.new_memberships == 2
    n = catalog.query(
        "SELECT source_id, n_spans, first_line FROM memberships WHERE source_id IN "
        "('youtube:0wR5jVB-WPk', 'youtube:Bq7L2JN4VKo') ORDER BY source_id"
    )
    assert n == [
        {"source_id": "youtube:0wR5jVB-WPk", "n_spans": 2, "first_line": 2},
        {"source_id": "youtube:Bq7L2JN4VKo", "n_spans": 1, "first_line": 8},
    ]
    assert catalog.scalar("SELECT count(*) FROM manifests WHERE dataset = 'kinetics-400'") == 2


@pytest.mark.slow
def test_line_numbers_of_a_large_file_read_in_parallel(catalog, tmp_path):
    """Several CSV buffers read by several threads still give every row its physical line."""
    import random

    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    lines = ["label,youtube_id,time_start,time_end,split"]
    chars = "".join(rng.choices(alphabet, k=11 * 300_000))  # the random 11-character ids, drawn at once
    for i in range(300_000):
        vid = chars[11 * i : 11 * i + 11]
        lines.append(f"label {i % 400},{vid},{i % 50},{i % 50 + 10},train")
    lines.insert(123_456, "broken,row")
    lines.insert(200_001, '"two\nlines",AbCdEfGhIjK,1,2,train')
    lines.insert(250_000, "")
    path = tmp_path / "kinetics-700_big.csv"
    path.write_text("\n".join(lines) + "\n")
    s = ingest_manifest(catalog, path, threads=2)
    assert s.lines_exact and s.rows_total == 300_002 and s.rows_bad == 1
    assert s.errors[0].line == 123_457
    physical = path.read_text().split("\n")
    got = catalog.query("SELECT line, source_id, label FROM clip_spans USING SAMPLE 3000 ROWS")
    for g in got:
        text = physical[g["line"] - 1]
        if text.startswith('"two'):
            assert g["label"] == "two\nlines"
            continue
        label, vid = text.split(",")[:2]
        assert (g["label"], g["source_id"]) == (label, f"youtube:{vid}")


def test_is_cc_is_the_content_licence_and_platform_terms_still_decide_acquisition(catalog, manifests):
    from clipfactory.explain import explain_source

    ingest_manifest(catalog, manifests / "kinetics400_sample.csv")
    rows = catalog.query("SELECT source_id, content_license FROM sources ORDER BY source_id")
    # line 3 (3caPS4FHFF8) has is_cc = 1: the uploader chose YouTube's CC BY 3.0; the others stated nothing
    assert rows == [
        {"source_id": "youtube:0wR5jVB-WPk", "content_license": None},
        {"source_id": "youtube:3caPS4FHFF8", "content_license": "CC-BY-3.0"},
        {"source_id": "youtube:AbCdEfGhIjK", "content_license": None},
    ]
    doc = explain_source(catalog, "youtube:3caPS4FHFF8", purpose="commercial")
    content = doc["licenses"]["content"]
    assert [(t["license"], t["origin"]) for t in content if t["kind"] == "content"] == [("CC-BY-3.0", "stated")]
    d = doc["decisions"]["commercial"]
    # the pixels' licence is now known, but YouTube's terms still forbid downloading without permission
    assert d["acquire_ok"] is False
    assert "policy.platform_terms_no_permission:youtube" in d["reasons"]


def test_a_span_given_again_by_a_later_manifest_counts_once(catalog, tmp_path):
    """A membership's n_spans is its distinct spans over every manifest of the dataset."""
    head = "label,youtube_id,time_start,time_end,split\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(head + "x,0wR5jVB-WPk,10,20,train\nx,0wR5jVB-WPk,30,40,train\n")
    b.write_text(head + "x,0wR5jVB-WPk,30,40,train\nx,0wR5jVB-WPk,50,60,train\nx,3caPS4FHFF8,1,2,val\n")
    ingest_manifest(catalog, a, format="kinetics", dataset="k")
    s = ingest_manifest(catalog, b, format="kinetics", dataset="k")
    assert (s.new_memberships, s.spans) == (1, 2)  # 30-40 was there already; 50-60 and 3caPS4FHFF8's are new
    n = catalog.query("SELECT source_id, n_spans FROM memberships ORDER BY source_id")
    assert n == [
        {"source_id": "youtube:0wR5jVB-WPk", "n_spans": 3},  # 10-20, 30-40, 50-60
        {"source_id": "youtube:3caPS4FHFF8", "n_spans": 1},
    ]
    assert catalog.scalar("SELECT count(*) FROM clip_spans WHERE dataset = 'k'") == 4
