"""Format detection, and clear errors for a wrong --format or an unknown file."""

from __future__ import annotations

import pytest

from clipfactory.errors import ManifestError
from clipfactory.sources import ingest_manifest
from clipfactory.sources.detect import detect
from clipfactory.sources.readers import FileFacts


@pytest.mark.parametrize(
    ("name", "fmt", "kind"),
    [
        ("kinetics400_sample.csv", "kinetics", "csv"),
        ("kinetics700_test.csv", "kinetics", "csv"),
        ("hdvila_meta_part0.jsonl", "hd-vila-100m", "jsonl"),
        ("panda70m_sample.csv", "panda-70m", "csv"),
        ("internvid_sample.jsonl", "internvid-10m", "jsonl"),
        ("hdvg_part0.json", "hd-vg-130m", "json"),
        ("webvid_bad.csv", "webvid-10m", "csv"),
        ("acav100m_output.csv", "acav100m", "csv"),
        ("howto100m_sample.csv", "howto100m", "csv"),
        ("yt8m_ids.csv", "youtube-8m", "csv"),
        ("ego4d.json", "ego4d", "json"),
        ("ego4d_manifest.csv", "ego4d", "csv"),
        ("openvid_sample.csv", "openvid-1m", "csv"),
        ("msrvtt_train_videodatainfo.json", "msr-vtt", "json"),
        ("msrvtt_test_captions_sample.json", "msr-vtt", "json"),
    ],
)
def test_detection(manifests, name, fmt, kind):
    det = detect(FileFacts.of(manifests / name))
    assert (det.adapter.name if det.adapter else None, det.kind) == (fmt, kind)


def test_wrong_format_names_missing_columns_and_detected_format(catalog, manifests):
    with pytest.raises(ManifestError) as exc:
        ingest_manifest(catalog, manifests / "kinetics400_sample.csv", format="webvid-10m")
    msg = str(exc.value)
    assert "webvid-10m format needs column(s) videoid, contentUrl" in msg
    assert "label, youtube_id, time_start, time_end, split, is_cc" in msg
    assert "it looks like kinetics" in msg
    assert catalog.scalar("SELECT count(*) FROM manifests") == 0


@pytest.mark.parametrize(
    ("name", "fmt", "expect"),
    [
        (
            "kinetics400_sample.csv",
            "hd-vila-100m",
            "reads JSON Lines, but this file is CSV; it looks like kinetics",
        ),
        (
            "kinetics400_sample.csv",
            "acav100m",
            "acav100m files have no header, but this file starts with one",
        ),
        (
            "hdvg_part0.json",
            "msr-vtt",
            "does not have the keys of the msr-vtt format; it looks like hd-vg-130m",
        ),
        ("panda70m_sample.csv", "kinetics", "needs column(s) youtube_id, time_start, time_end"),
        ("kinetics400_sample.csv", "panda", "needs column(s) videoID, url, timestamp, caption"),
        ("kinetics400_sample.csv", "no-such-format", "unknown format 'no-such-format'"),
    ],
)
def test_wrong_format_errors(catalog, manifests, name, fmt, expect):
    with pytest.raises(ManifestError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        ingest_manifest(catalog, manifests / name, format=fmt)


def test_unknown_file_and_missing_file(catalog, tmp_path):
    p = tmp_path / "mystery.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ManifestError, match=r"cannot tell the manifest format \(columns: a, b\)"):
        ingest_manifest(catalog, p)
    with pytest.raises(ManifestError, match="manifest not found"):
        ingest_manifest(catalog, tmp_path / "nope.csv")


def test_format_override_implies_the_dataset(catalog, manifests):
    s = ingest_manifest(catalog, manifests / "kinetics_val.csv", format="kinetics-700")
    assert (s.format, s.dataset) == ("kinetics", "kinetics-700")


def test_invalid_dataset_name(catalog, manifests):
    with pytest.raises(ManifestError, match="invalid dataset name"):
        ingest_manifest(catalog, manifests / "kinetics700_test.csv", dataset="bad name/with slash")
