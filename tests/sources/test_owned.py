"""Owned media folders: content-addressed ids, declared licences, sidecars, problems reported."""

from __future__ import annotations

import hashlib
import json

import pytest
from media_synth import flat_video

from clipfactory.errors import ManifestError
from clipfactory.sources import ingest_manifest, scan_owned, scan_owned_files


def _tiny(path, value: int):
    """A tenth of a second of one flat colour: real media, its bytes differing by ``value``."""
    return flat_video(path, 0.12, size=(32, 32), value=value)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "media"
    (d / "sub").mkdir(parents=True)
    _tiny(d / "a.mp4", 10)
    (d / "sub" / "a_copy.mp4").write_bytes((d / "a.mp4").read_bytes())  # same content: one source
    _tiny(d / "b.mov", 120)
    (d / "b.mov.json").write_text(
        json.dumps({"license": "CC-BY-4.0", "rights_holder": "Jane Doe", "title": "Bee"})
    )
    _tiny(d / "sub" / "c.mkv", 240)
    (d / "notes.txt").write_text("not media")
    return d


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_scan_owned_records(folder):
    recs = scan_owned([folder], license="CC0-1.0", rights_holder="Acme Films")
    by_id = {r.source_id: r for r in recs}
    data = {n: (folder / n).read_bytes() for n in ("a.mp4", "b.mov", "sub/c.mkv")}
    a, b, c = (f"sha256:{_sha(data[n])}" for n in ("a.mp4", "b.mov", "sub/c.mkv"))
    assert len({a, b, c}) == 3
    assert set(by_id) == {a, b, c}
    assert by_id[a].platform == "owned" and by_id[a].content_sha256 == _sha(data["a.mp4"])
    assert by_id[a].size_bytes == len(data["a.mp4"])
    assert by_id[a].origin_uri == str((folder / "a.mp4").resolve())
    assert (by_id[a].content_license, by_id[a].rights_holder, by_id[a].title) == (
        "CC0-1.0",
        "Acme Films",
        "a",
    )
    # The sidecar wins over the flags.
    assert (by_id[b].content_license, by_id[b].rights_holder, by_id[b].title) == (
        "CC-BY-4.0",
        "Jane Doe",
        "Bee",
    )


def test_scan_owned_without_licence_names_the_files(folder):
    with pytest.raises(ManifestError) as exc:
        scan_owned([folder])
    msg = str(exc.value)
    assert "3 owned file(s) cannot be used" in msg
    assert "a.mp4: no licence and no rights holder declared" in msg
    assert "b.mov" not in msg.split("cannot be used:")[1].split("(fix")[0].replace("b.mov.json", "")
    scan = scan_owned_files([folder])
    assert len(scan.records) == 1 and scan.files == 4


def test_bad_licence_is_refused(folder):
    with pytest.raises(ManifestError, match="not an SPDX licence expression"):
        scan_owned([folder], license="Foo-Bar", rights_holder="x")
    recs = scan_owned([folder / "a.mp4"], license="LicenseRef-Acme-Internal", rights_holder="Acme")
    assert recs[0].content_license == "LicenseRef-Acme-Internal"


def test_ingest_owned_folder(catalog, folder):
    s = ingest_manifest(catalog, folder, license="CC0-1.0", rights_holder="Acme Films")
    assert (s.dataset, s.format) == ("owned", "owned")
    assert (s.rows_total, s.rows_bad, s.new_sources, s.new_memberships) == (3, 0, 3, 3)
    got = catalog.query(
        "SELECT s.source_id, s.content_license, s.rights_holder, m.dataset FROM sources s "
        "JOIN memberships m USING (source_id) ORDER BY s.content_license"
    )
    assert [(r["content_license"], r["rights_holder"], r["dataset"]) for r in got] == [
        ("CC-BY-4.0", "Jane Doe", "owned"),
        ("CC0-1.0", "Acme Films", "owned"),
        ("CC0-1.0", "Acme Films", "owned"),
    ]
    again = ingest_manifest(catalog, folder, license="CC0-1.0", rights_holder="Acme Films")
    assert again.already_ingested


def test_ingest_owned_reports_files_without_licence(catalog, folder):
    _tiny(folder / "broken.mp4", 60)
    (folder / "broken.mp4.json").write_text("{not json")
    s = ingest_manifest(catalog, folder, dataset="studio")
    assert s.dataset == "studio"
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (5, 1, 4)
    reasons = {e.pointer.rsplit("/", 1)[-1]: e.reason for e in s.errors}
    assert reasons["broken.mp4"].startswith("unreadable sidecar broken.mp4.json")
    assert reasons["c.mkv"].startswith("no licence and no rights holder declared")
    assert catalog.scalar("SELECT count(*) FROM ingest_errors WHERE dataset = 'studio' AND line IS NULL") == 4
    assert catalog.query("SELECT title FROM sources") == [{"title": "Bee"}]


def test_fsspec_manifest_and_owned_prefix(catalog, manifests, tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/cf-test/lists/kinetics-700_val.csv", (manifests / "kinetics700_test.csv").read_bytes())
    x = _tiny(tmp_path / "x.mp4", 80).read_bytes()
    fs.pipe("/cf-test/videos/x.mp4", x)
    fs.pipe("/cf-test/videos/y.mp4", b"text in a .mp4 name, not media " * 4)
    fs.pipe("/cf-test/videos/x.mp4.json", json.dumps({"license": "CC0-1.0", "rights_holder": "Me"}).encode())
    fs.pipe("/cf-test/videos/notes.txt", b"not media")
    try:
        s = ingest_manifest(catalog, "memory://cf-test/lists/kinetics-700_val.csv")
        assert (s.uri, s.dataset, s.rows_ok) == (
            "memory://cf-test/lists/kinetics-700_val.csv",
            "kinetics-700",
            2,
        )
        o = ingest_manifest(catalog, "memory://cf-test/videos")
        assert (o.format, o.new_sources, o.rows_bad) == ("owned", 1, 1)
        assert [(e.pointer, e.reason) for e in o.errors] == [
            ("memory:///cf-test/videos/y.mp4",
             "not a readable video or audio file (FFmpeg: Invalid data found when processing input)")
        ]
        rec = catalog.query(
            "SELECT source_id, origin_uri, content_license FROM sources WHERE platform = 'owned'"
        )
        assert rec == [
            {
                "source_id": f"sha256:{_sha(x)}",
                "origin_uri": "memory:///cf-test/videos/x.mp4",
                "content_license": "CC0-1.0",
            }
        ]
    finally:
        fs.rm("/cf-test", recursive=True)


def _wav(path):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            out.mux(p)
    return path


def test_media_problem_names_what_is_not_video_or_audio(tmp_path):
    from PIL import Image

    from clipfactory.sources.owned import media_problem

    (tmp_path / "notes.mp4").write_text("meeting notes\n" * 30)
    (tmp_path / "notes.txt").write_text("meeting notes\n" * 30)  # FFmpeg's tty demuxer opens any .txt
    (tmp_path / "subs.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n")
    (tmp_path / "empty.mkv").write_bytes(b"")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "still.png")
    not_media = "not a readable video or audio file"
    assert {n: media_problem(str(tmp_path / n)) for n in ("notes.mp4", "notes.txt", "subs.srt", "empty.mkv",
                                                          "still.png")} == {
        "notes.mp4": f"{not_media} (FFmpeg: Invalid data found when processing input)",
        "notes.txt": f"{not_media}: a text file (FFmpeg reads it as tty)",
        "subs.srt": f"{not_media}: no video or audio stream (streams: subtitle)",
        "empty.mkv": f"{not_media}: it has zero bytes",
        "still.png": f"{not_media}: a still image (png)",
    }
    # video, and audio (a file named on its own is taken whatever it holds)
    assert media_problem(str(_tiny(tmp_path / "v.mkv", 50))) is None
    assert media_problem(str(_wav(tmp_path / "a.wav"))) is None


def test_a_file_that_is_not_media_is_named_with_its_own_fix(folder):
    (folder / "sub" / "slides.mp4").write_bytes(b"%PDF-1.4 slides, not a video\n" * 20)
    with pytest.raises(ManifestError) as exc:
        scan_owned([folder], license="CC0-1.0", rights_holder="Acme Films")
    assert exc.value.message == (
        f"1 owned file(s) cannot be used: {(folder / 'sub' / 'slides.mp4').resolve()}: not a readable video "
        "or audio file (FFmpeg: Invalid data found when processing input)"
    )
    assert exc.value.fix == "convert it to a video (or audio) file, or leave it out of the inputs"
    # without a licence too: both fixes
    with pytest.raises(ManifestError) as exc:
        scan_owned([folder])
    assert exc.value.message.startswith("4 owned file(s) cannot be used")
    assert "leave it out of the inputs" in exc.value.fix and "--license SPDX" in exc.value.fix


def test_ingest_owned_reports_a_file_that_is_not_media(catalog, folder):
    (folder / "slides.mp4").write_text("not a video\n" * 20)
    s = ingest_manifest(catalog, folder, license="CC0-1.0", rights_holder="Acme Films")
    assert (s.rows_total, s.rows_ok, s.rows_bad, s.new_sources) == (4, 3, 1, 3)
    [err] = s.errors
    assert err.pointer == str((folder / "slides.mp4").resolve())
    assert err.reason.startswith("not a readable video or audio file")
    assert catalog.scalar("SELECT count(*) FROM sources WHERE origin_uri LIKE '%slides.mp4'") == 0
