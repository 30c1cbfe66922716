"""Every adapter on a small manifest written from the dataset's documented format, malformed rows included."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipfactory import ids
from clipfactory.errors import ManifestError
from clipfactory.sources import ingest_manifest


def _errors(s) -> list[tuple]:
    return [(e.line if e.line is not None else e.pointer, e.reason) for e in s.errors]


def _spans(catalog, dataset):
    return catalog.query(
        "SELECT source_id, clip_id, start_ms, end_ms, caption, label, split, line, extra FROM clip_spans "
        "WHERE dataset = ? ORDER BY source_id, start_ms NULLS LAST, caption",
        [dataset],
    )


def test_hdvila_jsonl(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "hdvila_meta_part0.jsonl")
    assert (s.dataset, s.format) == ("hd-vila-100m", "hd-vila-100m")
    # Five non-blank lines; line 5 is blank and is not a row.
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (5, 2, 3)
    assert _errors(s) == [
        (2, "inverted span: end 00:00:59.000 is before start 00:01:00.000"),
        (3, "not valid JSON"),
        (6, "bad YouTube id not-an-id: 9 characters, not 11"),
    ]
    spans = _spans(catalog, "hd-vila-100m")
    assert [(r["source_id"], r["start_ms"], r["end_ms"], r["line"]) for r in spans] == [
        ("youtube:0wR5jVB-WPk", 1000, 5500, 1),
        ("youtube:0wR5jVB-WPk", 5500, 9000, 1),
    ]
    assert json.loads(spans[0]["extra"]) == {"clip_id": "0wR5jVB-WPk.1.mp4"}
    assert spans[0]["clip_id"] == ids.clip_id("youtube:0wR5jVB-WPk", 1000, 5500)
    # A video with an empty clip list is still a member, with no spans.
    m = catalog.query("SELECT source_id, n_spans, first_line FROM memberships ORDER BY source_id")
    assert m == [
        {"source_id": "youtube:0wR5jVB-WPk", "n_spans": 2, "first_line": 1},
        {"source_id": "youtube:dQw4w9WgXcQ", "n_spans": 0, "first_line": 4},
    ]


def test_panda70m_python_list_strings(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "panda70m_sample.csv")
    assert s.dataset == "panda-70m"
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (5, 3, 2)
    assert _errors(s) == [
        (4, "2 timestamps but 1 captions"),
        (5, "timestamp is not a Python list of [start, end] pairs"),
    ]
    spans = _spans(catalog, "panda-70m")
    got = [(r["source_id"], r["start_ms"], r["end_ms"], r["caption"], r["line"]) for r in spans]
    assert got == [
        ("youtube:0wR5jVB-WPk", 0, 4500, "A man rides a bike.", 2),
        ("youtube:0wR5jVB-WPk", 4500, 10000, "A dog's tail, wagging.", 2),
        # Parsed by ast.literal_eval: the caption holds both quote kinds and an escape.
        ("youtube:3caPS4FHFF8", 60000, 62250, 'She said "it\'s fine" twice', 3),
        # H:MM:SS.mmm with a one-digit hour; the id comes from the URL when videoID is empty.
        ("youtube:AbCdEfGhIjK", 3600000, 3605000, "an hour in", 6),
    ]
    assert json.loads(spans[1]["extra"])["matching_score"] == pytest.approx(0.39)
    assert json.loads(spans[1]["extra"])["clip"] == 1


def test_internvid_jsonl(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "internvid_sample.jsonl")
    assert s.dataset == "internvid-10m"
    assert _errors(s) == [
        (2, "inverted span: end 00:09:00.000 is before start 00:10:00.000"),
        (3, "bad YouTube id abc: 3 characters, not 11"),
    ]
    spans = _spans(catalog, "internvid-10m")
    assert [(r["source_id"], r["start_ms"], r["end_ms"], r["caption"]) for r in spans] == [
        ("youtube:0wR5jVB-WPk", 1000, 3000, "a person abseils down a cliff"),
        ("youtube:Bq7L2JN4VKo", 123250, 127000, "a bow is drawn"),
    ]
    assert json.loads(spans[0]["extra"]) == {"aesthetic_score": 4.5, "umt_score": 0.41}


def test_hdvg_json_scene_splits(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "hdvg_part0.json")
    assert s.dataset == "hd-vg-130m"
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (3, 1, 2)
    assert sorted(_errors(s)) == [
        ('$."3caPS4FHFF8".clip."3caPS4FHFF8.0.mp4"', "clip span is not [start, end]"),
        ('$.short.clip."short.0.mp4"', "bad YouTube id short: 5 characters, not 11"),
    ]
    spans = _spans(catalog, "hd-vg-130m")
    # scene_cut [0, -1] is the whole clip; other cuts are frames at the clip's fps from its start.
    assert [(r["start_ms"], r["end_ms"], r["caption"]) for r in spans] == [
        (10000, 20000, "the whole clip"),
        (30000, 34000, "first scene"),
        (34000, 40000, "second scene"),
    ]
    assert all(r["line"] is None for r in spans)


def test_webvid_errors_and_durations(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "webvid_bad.csv")
    assert s.dataset == "webvid-10m"
    assert _errors(s) == [(3, "bad shutterstock id 12ab"), (4, "unparsable duration PT17")]
    src = catalog.query("SELECT source_id, platform, platform_id, url, title, duration_ms FROM sources")
    assert src == [
        {
            "source_id": "shutterstock:1053841541",
            "platform": "shutterstock",
            "platform_id": "1053841541",
            "url": "https://ak.picdn.net/shutterstock/videos/1053841541/preview/stock-footage-travel-blogger.mp4",
            "title": "Travel blogger, on top of mountains",
            "duration_ms": 17000,
        }
    ]
    # The preview is the clip: its caption is the title, its span the whole duration.
    spans = _spans(catalog, "webvid-10m")
    assert [(r["start_ms"], r["end_ms"], r["caption"]) for r in spans] == [
        (0, 17000, "Travel blogger, on top of mountains")
    ]


@pytest.mark.shared_data
def test_webvid_real_sample(catalog, shared_data):
    import csv

    path = shared_data / "manifests" / "webvid_sample.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    s = ingest_manifest(catalog, path)
    assert (s.rows_total, s.rows_bad) == (len(rows), 0)
    got = {
        r["platform_id"]: (r["duration_ms"], r["url"])
        for r in catalog.query("SELECT platform_id, duration_ms, url FROM sources")
    }
    assert len(got) == len({r["videoid"] for r in rows})
    for r in rows:
        h, m, sec = (int(x) for x in r["duration"][2:-1].replace("H", " ").replace("M", " ").split())
        assert got[r["videoid"]] == ((h * 3600 + m * 60 + sec) * 1000, r["contentUrl"])


def test_acav100m_headerless(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "acav100m_output.csv")
    assert s.dataset == "acav100m"
    # No header: the first row is line 1.
    assert _errors(s) == [
        (3, "bad YouTube id badid: 5 characters, not 11"),
        (4, "segment is not [start, end] in seconds: [5]"),
    ]
    spans = _spans(catalog, "acav100m")
    assert [(r["source_id"], r["start_ms"], r["end_ms"], r["line"]) for r in spans] == [
        ("youtube:0wR5jVB-WPk", 10000, 20000, 2),
        ("youtube:NgI3xyMX1Ss", 69000, 79000, 1),
    ]


def test_howto100m_with_caption_pickle(catalog, manifests, tmp_path):
    caps = tmp_path / "caption.pickle"
    with open(caps, "wb") as fh:
        pickle.dump(
            {
                "0wR5jVB-WPk": {
                    "start": np.array([1.0, 5.5]),
                    "end": np.array([4.0, 9.0]),
                    "text": np.array(["first we chop", "then we fry"], dtype=object),
                },
                "ZZZZZZZZZZZ": {"start": [0], "end": [1], "text": ["not in the csv"]},
            },
            fh,
        )
    s = ingest_manifest(catalog, manifests / "howto100m_sample.csv", captions=caps)
    assert s.dataset == "howto100m"
    assert sorted(_errors(s), key=str) == sorted(
        [
            (4, "bad YouTube id bad: 3 characters, not 11"),
            ("caption.pickle:ZZZZZZZZZZZ", "captions for a video the manifest does not list"),
        ],
        key=str,
    )
    spans = _spans(catalog, "howto100m")
    assert [(r["source_id"], r["start_ms"], r["end_ms"], r["caption"], r["label"]) for r in spans] == [
        ("youtube:0wR5jVB-WPk", 1000, 4000, "first we chop", "Food and Entertaining / Recipes"),
        ("youtube:0wR5jVB-WPk", 5500, 9000, "then we fry", "Food and Entertaining / Recipes"),
    ]
    assert catalog.scalar("SELECT count(*) FROM memberships WHERE dataset = 'howto100m'") == 2


def test_howto100m_pickle_cannot_run_code(catalog, manifests, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    caps = tmp_path / "caption.pickle"
    caps.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ManifestError, match="refusing to load"):
        ingest_manifest(catalog, manifests / "howto100m_sample.csv", captions=caps)
    assert catalog.scalar("SELECT count(*) FROM manifests") == 0


def test_youtube8m_ids_and_mapping(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "yt8m_ids.csv")
    assert s.dataset == "youtube-8m"
    assert _errors(s) == [(4, "bad youtube8m id toolong")]
    s = ingest_manifest(catalog, manifests / "yt8m_ids_mapped.csv")
    assert s.rows_bad == 0
    got = catalog.query(
        "SELECT source_id, label FROM memberships WHERE dataset = 'youtube-8m' ORDER BY source_id"
    )
    assert got == [
        {"source_id": "youtube8m:Xz4l", "label": "1 23"},
        {"source_id": "youtube8m:ab12", "label": "5"},
        {"source_id": "youtube:0wR5jVB-WPk", "label": "1 23"},
    ]


@pytest.mark.parametrize("name", ["yt8m_vocabulary.csv"])
def test_youtube8m_vocabulary_is_rejected(catalog, manifests, name):
    for fmt in (None, "youtube-8m"):
        with pytest.raises(ManifestError, match="YouTube-8M vocabulary"):
            ingest_manifest(catalog, manifests / name, format=fmt)
    assert catalog.scalar("SELECT count(*) FROM manifests") == 0


@pytest.mark.shared_data
def test_youtube8m_real_label_names_are_rejected(catalog, shared_data):
    with pytest.raises(ManifestError, match="not a list of videos"):
        ingest_manifest(catalog, shared_data / "manifests" / "yt8m_label_names.csv")


def test_ego4d_json_and_manifest_csv(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "ego4d.json")
    assert s.dataset == "ego4d"
    assert _errors(s) == [("$.videos[1]", "bad ego4d id not-a-uuid"), ("$.videos[2]", "negative duration -3")]
    s2 = ingest_manifest(catalog, manifests / "ego4d_manifest.csv")
    assert (s2.new_sources, s2.new_memberships) == (1, 1)
    got = catalog.query("SELECT source_id, duration_ms, url FROM sources ORDER BY source_id")
    uid = "8d6b2c3e-1f2a-4b5c-9d8e-0f1a2b3c4d5e"
    assert got == [
        {"source_id": "ego4d:11111111-2222-3333-4444-555555555555", "duration_ms": 60250, "url": None},
        {
            "source_id": f"ego4d:{uid}",
            "duration_ms": 480500,
            "url": f"s3://ego4d-example/full_scale/{uid}.mp4",
        },
        {
            "source_id": "ego4d:99999999-8888-7777-6666-555555555555",
            "duration_ms": None,
            "url": "s3://ego4d-example/full_scale/99999999-8888-7777-6666-555555555555.mp4",
        },
    ]
    assert (
        catalog.scalar(f"SELECT label FROM memberships WHERE source_id = 'ego4d:{uid}'")
        == "Cooking; Cleaning"
    )


def test_openvid_file_names(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "openvid_sample.csv")
    assert s.dataset == "openvid-1m"
    assert _errors(s) == [(4, "missing video file name")]
    spans = _spans(catalog, "openvid-1m")
    assert [(r["source_id"], r["clip_id"], r["caption"]) for r in spans] == [
        ("openvid:celebv_abcdef", None, "A woman talks to the camera."),
        ("youtube:0wR5jVB-WPk", None, "A man abseils down a cliff, slowly."),
    ]
    extra = json.loads(spans[1]["extra"])
    assert extra["upstream_clip"] == 3 and extra["range"] == [0, 121] and extra["aesthetic_score"] == 5.1


def test_msrvtt_videodatainfo(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "msrvtt_train_videodatainfo.json")
    assert s.dataset == "msr-vtt"
    assert _errors(s) == [("$.videos[2]", "not a YouTube video URL: https://vimeo.com/123456")]
    spans = _spans(catalog, "msr-vtt")
    assert [(r["source_id"], r["start_ms"], r["end_ms"], r["caption"], r["split"]) for r in spans] == [
        ("youtube:0wR5jVB-WPk", 137720, 149440, "a man abseils", "train"),
        ("youtube:0wR5jVB-WPk", 137720, 149440, "someone climbs down a rock", "train"),
        ("youtube:3caPS4FHFF8", 184330, 206890, "people play drums", "validate"),
    ]
    assert json.loads(spans[0]["extra"]) == {"video_id": "video0"}
    # Two captions of one span are one span.
    assert catalog.scalar("SELECT n_spans FROM memberships WHERE source_id = 'youtube:0wR5jVB-WPk'") == 1


def test_msrvtt_caption_file(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "msrvtt_test_captions_sample.json")
    assert _errors(s) == [("$[1]", "bad msr-vtt id clip.avi")]
    spans = _spans(catalog, "msr-vtt")
    assert [(r["source_id"], r["caption"], r["split"]) for r in spans] == [
        ("msr-vtt:video7010", "a clip showing a computer screen", "test"),
        ("msr-vtt:video7010", "a person explains a download", "test"),
        ("msr-vtt:video7011", "a tutorial", "test"),
    ]


@pytest.mark.shared_data
def test_msrvtt_real_test_captions(catalog, shared_data):
    path = shared_data / "manifests" / "msrvtt_test_captions.json"
    data = json.loads(path.read_text())
    s = ingest_manifest(catalog, path)
    assert (s.dataset, s.rows_total, s.rows_bad) == ("msr-vtt", len(data), 0)
    assert s.new_sources == len({d["video"] for d in data})
    n_caps = sum(len(d["caption"]) for d in data)
    assert catalog.scalar("SELECT count(*) FROM clip_spans WHERE dataset = 'msr-vtt'") == n_caps
    first = data[0]
    sid = "msr-vtt:" + first["video"].removesuffix(".mp4")
    got = catalog.query("SELECT caption FROM clip_spans WHERE source_id = ? ORDER BY caption", [sid])
    assert [r["caption"] for r in got] == sorted(first["caption"])


def test_generic_csv_mapping(catalog, manifests):
    s = ingest_manifest(
        catalog,
        manifests / "generic_clips.csv",
        mapping="id=vid,url=link,start=s,end=e,caption=text,time-unit=hms",
        dataset="my-clips",
    )
    assert (s.dataset, s.format, s.registry_key if hasattr(s, "registry_key") else None) == (
        "my-clips",
        "generic",
        None,
    )
    assert _errors(s) == [
        (5, "not a YouTube id or URL: zzz (give --map platform=NAME for ids of another platform)")
    ]
    web = ids.url_source_id("https://Example.com:443/videos/a.mp4?x=1#frag")
    got = [(r["source_id"], r["start_ms"], r["end_ms"], r["caption"]) for r in _spans(catalog, "my-clips")]
    assert sorted(got) == sorted(
        [
            ("youtube:0wR5jVB-WPk", 1000, 3000, "hello"),
            ("youtube:3caPS4FHFF8", 60000, 65500, "from a shorts url"),
            (web, 0, 2000, "a web video"),
        ]
    )
    assert catalog.scalar("SELECT platform FROM sources WHERE source_id = ?", [web]) == "web"


def test_generic_jsonl_with_platform(catalog, manifests):
    s = ingest_manifest(
        catalog,
        manifests / "generic_clips.jsonl",
        mapping="id=key,start=begin,end=finish,caption=desc,time-unit=s,platform=vimeo",
        dataset="vimeo-picks",
    )
    assert _errors(s) == [(2, "bad vimeo id has space"), (3, "inverted span: end 2 is before start 4")]
    assert [r["source_id"] for r in _spans(catalog, "vimeo-picks")] == ["vimeo:123456789"]


def test_generic_parquet_in_milliseconds(catalog, tmp_path):
    path = tmp_path / "clips.parquet"
    pq.write_table(
        pa.table(
            {
                "video": ["https://youtu.be/0wR5jVB-WPk", "3caPS4FHFF8", "bad"],
                "from_ms": [1500, 0, 1],
                "to_ms": [2500, 10, 2],
                "what": ["a", "b", "c"],
            }
        ),
        path,
    )
    s = ingest_manifest(
        catalog, path, mapping="id=video,start=from_ms,end=to_ms,caption=what,time-unit=ms", dataset="pq"
    )
    assert s.rows_total == 3 and [e.line for e in s.errors] == [3]
    got = [(r["source_id"], r["start_ms"], r["end_ms"]) for r in _spans(catalog, "pq")]
    assert got == [("youtube:0wR5jVB-WPk", 1500, 2500), ("youtube:3caPS4FHFF8", 0, 10)]


def test_generic_mapping_errors(catalog, manifests):
    with pytest.raises(ManifestError, match="does not have: start=nope"):
        ingest_manifest(catalog, manifests / "generic_clips.csv", mapping="id=vid,start=nope", dataset="x")
    with pytest.raises(ManifestError, match="unknown --map key"):
        ingest_manifest(catalog, manifests / "generic_clips.csv", mapping="id=vid,colour=red", dataset="x")
    with pytest.raises(ManifestError, match="needs a dataset name"):
        ingest_manifest(catalog, manifests / "generic_clips.csv", mapping="id=vid")
    assert catalog.scalar("SELECT count(*) FROM manifests") == 0


def test_generic_licence_and_rights_holder_columns(catalog, tmp_path):
    """A licensed stock list states each video's licence and author; a value that is not SPDX is refused."""
    path = tmp_path / "stock.csv"
    path.write_text(
        "link,lic,by,acct,name\n"
        "https://media.example.org/a.mp4,cc-by-4.0,Ann Author,ann,Harbour\n"
        "https://media.example.org/b.mp4,CC0-1.0,,,\n"
        "https://media.example.org/c.mp4,free for all,Someone,x,y\n"
        "https://media.example.org/d.mp4,LicenseRef-Stock-Co,Stock Co,stockco,Dunes\n"
    )
    s = ingest_manifest(
        catalog, path, mapping="url=link,licence=lic,author=by,uploader=acct,title=name", dataset="stock"
    )
    assert [e.line for e in s.errors] == [4]
    assert "not an SPDX licence expression: free for all" in s.errors[0].reason
    rows = catalog.query(
        "SELECT url, content_license, rights_holder, uploader, title FROM sources WHERE platform = 'web' "
        "ORDER BY url"
    )
    got = [
        (r["url"].rsplit("/", 1)[-1], r["content_license"], r["rights_holder"], r["uploader"], r["title"])
        for r in rows
    ]
    assert got == [
        ("a.mp4", "CC-BY-4.0", "Ann Author", "ann", "Harbour"),
        ("b.mp4", "CC0-1.0", None, None, None),
        ("d.mp4", "LicenseRef-Stock-Co", "Stock Co", "stockco", "Dunes"),
    ]


def test_generic_rows_without_span_columns_have_no_span(catalog, tmp_path):
    """A caption list without start/end columns gives video-level captions, not a 0-0 span."""
    path = tmp_path / "captions.csv"
    path.write_text("link,text\nhttps://media.example.org/a.mp4,a harbour at dusk\n")
    ingest_manifest(catalog, path, mapping="url=link,caption=text", dataset="caps")
    rows = catalog.query("SELECT start_ms, end_ms, caption FROM clip_spans WHERE dataset = 'caps'")
    # one video-level caption row: the caption is kept, with no time range
    assert [(r["start_ms"], r["end_ms"], r["caption"]) for r in rows] == [(None, None, "a harbour at dusk")], rows
    with catalog.read() as con:
        from clipfactory.sources.sql import install_macros

        install_macros(con)
        assert con.execute("SELECT cf_ms(NULL), cf_ms_unit(NULL, 'auto'), cf_iso_ms(NULL)").fetchone() == (
            None,
            None,
            None,
        )


def test_a_large_json_document_keeps_element_pointers(catalog, tmp_path):
    """A caption file of 20,000 videos: every element is read, and a bad one is named by its JSON path."""
    path = tmp_path / "msrvtt_big_captions.json"
    docs = [{"video": f"video{i}.mp4", "caption": [f"caption {i} a", f"caption {i} b"]} for i in range(20_000)]
    docs[7] = {"video": "not a video id", "caption": ["x"]}
    path.write_text(json.dumps(docs))
    s = ingest_manifest(catalog, path)
    assert s.rows_bad == 1 and s.errors[0].pointer == "$[7]"
    assert catalog.scalar("SELECT count(*) FROM clip_spans WHERE dataset = 'msr-vtt'") == 2 * 19_999


def test_hdvg_document_with_a_repeated_video_key_is_refused(catalog, tmp_path):
    path = tmp_path / "hdvg_dup.json"
    entry = '{"url": "https://www.youtube.com/watch?v=0wR5jVB-WPk", "clip": {"a.mp4": {"span": ["00:00:01.000", "00:00:02.000"], "fps": 25.0}}}'
    path.write_text('{"0wR5jVB-WPk": ' + entry + ', "0wR5jVB-WPk": ' + entry + '}')
    with pytest.raises(ManifestError, match="more than once"):
        ingest_manifest(catalog, path, format="hd-vg-130m", dataset="hdvg")
