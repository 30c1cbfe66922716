"""Ingest memory: MSR-VTT's real caption file under a 1 GB limit, memory that does not grow with the
number of captions, and an out-of-memory that is one clear error naming the setting to raise.

Each ingest runs in a fresh Python process, which reports its own peak RSS (``VmHWM``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

_RUN = textwrap.dedent(
    """
    import json, resource, sys
    from clipfactory.catalog import Catalog
    from clipfactory.sources.ingest import ingest_manifest

    catalog, manifest, limit = sys.argv[1:4]
    s = ingest_manifest(Catalog(catalog), manifest, memory_limit=limit, threads=2)
    # VmHWM is the peak of this program's own memory. ru_maxrss is not: Linux carries the parent's peak
    # over exec, so a child of a large pytest worker would report the worker's size.
    with open("/proc/self/status") as fh:
        hwm = [line for line in fh if line.startswith("VmHWM:")]
    peak_mb = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": s.rows_total, "bad": s.rows_bad, "spans": s.spans, "captions": s.captions, "peak_mb": peak_mb}))
    """
)


def _ingest_in_process(tmp_path: Path, manifest: Path, limit: str) -> dict:
    catalog = tmp_path / f"{manifest.stem}.duckdb"
    r = subprocess.run(
        [sys.executable, "-c", _RUN, str(catalog), str(manifest), limit],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _counts(path: Path) -> tuple[int, int]:
    """Videos and captions of an MSR-VTT caption file, counted with the json module."""
    videos = json.loads(path.read_text())
    return len(videos), sum(len(v["caption"]) for v in videos)


def test_msrvtt_captions_ingest_under_1gb(shared_data, tmp_path):
    manifest = shared_data / "manifests" / "msrvtt_test_captions.json"
    videos, captions = _counts(manifest)
    got = _ingest_in_process(tmp_path, manifest, "1GB")
    assert (got["rows"], got["bad"], got["spans"], got["captions"]) == (videos, 0, 0, captions)
    assert got["peak_mb"] < 1024, got


def _write_scaled(src: Path, dst: Path, times: int) -> None:
    """An MSR-VTT caption file with ``times`` as many videos (each with its captions) as ``src``."""
    videos = json.loads(src.read_text())
    with dst.open("w") as fh:
        fh.write("[")
        n = 0
        for _ in range(times):
            for v in videos:
                fh.write(
                    (", " if n else "")
                    + json.dumps({"video": f"video{100000 + n}.mp4", "caption": v["caption"]})
                )
                n += 1
        fh.write("]")


def test_memory_does_not_grow_with_the_caption_count(shared_data, tmp_path):
    """Ten times the captions under the same small DuckDB limit: the ingest completes, and its peak is
    about that of the real file (the document is streamed by element, and DuckDB spills to disk)."""
    real = shared_data / "manifests" / "msrvtt_test_captions.json"
    big = tmp_path / "msrvtt_x10.json"
    _write_scaled(real, big, 10)
    videos, captions = _counts(real)
    one = _ingest_in_process(tmp_path, real, "150MB")
    ten = _ingest_in_process(tmp_path, big, "150MB")
    assert (one["rows"], one["spans"], one["captions"]) == (videos, 0, captions)
    assert (ten["rows"], ten["bad"], ten["spans"], ten["captions"]) == (10 * videos, 0, 0, 10 * captions)
    assert ten["peak_mb"] < 1.5 * one["peak_mb"], (one, ten)


@pytest.mark.parametrize("name", ["msrvtt_test_captions_sample.json", "kinetics400_sample.csv"])
def test_out_of_memory_is_one_error_naming_the_limit(manifests, tmp_path, name):
    cat = tmp_path / "catalog.duckdb"
    r = CliRunner().invoke(
        app, ["ingest", str(manifests / name), "--memory-limit", "1MB", "--catalog", str(cat)]
    )
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    err = " ".join(r.stderr.split())
    assert err.startswith(f"error: {manifests / name}: DuckDB ran out of memory"), err
    assert "--memory-limit 1MB" in err and "give a larger --memory-limit" in err
    assert "Traceback" not in r.output and "OutOfMemory" not in r.output
    # Nothing of the file was written: no manifest, source, span or error row.
    if cat.exists():
        c = Catalog(cat, create=False)
        for table in ("manifests", "sources", "clip_spans", "ingest_errors"):
            assert c.scalar(f"SELECT count(*) FROM {table}") == 0, table
    ok = CliRunner().invoke(app, ["ingest", str(manifests / name), "--catalog", str(cat), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["manifests"][0]["already_ingested"] is False


def test_an_unreadable_memory_limit_is_named(manifests, tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "ingest",
            str(manifests / "kinetics400_sample.csv"),
            "--memory-limit",
            "lots",
            "--catalog",
            str(tmp_path / "c.duckdb"),
        ],
    )
    assert r.exit_code == 1
    err = " ".join(r.stderr.split())
    assert (
        err == "error: --memory-limit: not a memory size: 'lots' (fix: give a size such as 512MB, 1GB or 4GB)"
    )
    assert list(tmp_path.iterdir()) == []  # refused before the catalog is opened: nothing is created


def test_the_cli_bounds_the_ingest_memory_when_no_limit_is_given(manifests, tmp_path, monkeypatch):
    """Without --memory-limit the CLI gives the ingest 1536MB (DuckDB's own default, 80% of RAM, let a
    10 M-row file peak at 3.9 GB); a given limit is passed as given."""
    import clipfactory.sources.ingest as ingest

    seen = []
    real = ingest.ingest_manifest

    def spy(*args, **kwargs):
        seen.append(kwargs["memory_limit"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "ingest_manifest", spy)
    manifest = str(manifests / "kinetics400_sample.csv")
    r = CliRunner().invoke(app, ["ingest", manifest, "--catalog", str(tmp_path / "a.duckdb")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["ingest", manifest, "--memory-limit", "3GB", "--catalog", str(tmp_path / "b.duckdb")])
    assert r.exit_code == 0, r.output
    assert seen == ["1536MB", "3GB"]
