"""Owned media folders: content-addressed ids, declared licences, sidecars, problems reported."""

from __future__ import annotations

import hashlib
import json

import pytest

from clipfactory.errors import ManifestError
from clipfactory.sources import ingest_manifest, scan_owned, scan_owned_files


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "media"
    (d / "sub").mkdir(parents=True)
    (d / "a.mp4").write_bytes(b"a" * 1000)
    (d / "sub" / "a_copy.mp4").write_bytes(b"a" * 1000)  # same content: one source
    (d / "b.mov").write_bytes(b"b" * 500)
    (d / "b.mov.json").write_text(
        json.dumps({"license": "CC-BY-4.0", "rights_holder": "Jane Doe", "title": "Bee"})
    )
    (d / "sub" / "c.mkv").write_bytes(b"c" * 10)
    (d / "notes.txt").write_text("not media")
    return d


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_scan_owned_records(folder):
    recs = scan_owned([folder], license="CC0-1.0", rights_holder="Acme Films")
    by_id = {r.source_id: r for r in recs}
    a, b, c = f"sha256:{_sha(b'a' * 1000)}", f"sha256:{_sha(b'b' * 500)}", f"sha256:{_sha(b'c' * 10)}"
    assert set(by_id) == {a, b, c}
    assert by_id[a].platform == "owned" and by_id[a].content_sha256 == _sha(b"a" * 1000)
    assert by_id[a].size_bytes == 1000 and by_id[a].origin_uri == str((folder / "a.mp4").resolve())
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
    (folder / "broken.mp4").write_bytes(b"x")
    (folder / "broken.mp4.json").write_text("{not json")
    s = ingest_manifest(catalog, folder, dataset="studio")
    assert s.dataset == "studio"
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (5, 1, 4)
    reasons = {e.pointer.rsplit("/", 1)[-1]: e.reason for e in s.errors}
    assert reasons["broken.mp4"].startswith("unreadable sidecar broken.mp4.json")
    assert reasons["c.mkv"].startswith("no licence and no rights holder declared")
    assert catalog.scalar("SELECT count(*) FROM ingest_errors WHERE dataset = 'studio' AND line IS NULL") == 4
    assert catalog.query("SELECT title FROM sources") == [{"title": "Bee"}]


def test_fsspec_manifest_and_owned_prefix(catalog, manifests):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/cf-test/lists/kinetics-700_val.csv", (manifests / "kinetics700_test.csv").read_bytes())
    fs.pipe("/cf-test/videos/x.mp4", b"x" * 100)
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
        assert (o.format, o.new_sources) == ("owned", 1)
        rec = catalog.query(
            "SELECT source_id, origin_uri, content_license FROM sources WHERE platform = 'owned'"
        )
        assert rec == [
            {
                "source_id": f"sha256:{_sha(b'x' * 100)}",
                "origin_uri": "memory:///cf-test/videos/x.mp4",
                "content_license": "CC0-1.0",
            }
        ]
    finally:
        fs.rm("/cf-test", recursive=True)
