"""The whole factory from a licensed web manifest: ingest, then one `clipfactory run --dataset ...`.

Real media from ../shared/data is served by a real HTTP server on 127.0.0.1; the manifest gives licences,
rights holders, titles, time ranges and captions per row.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app

pytestmark = pytest.mark.shared_data

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"

_spec = importlib.util.spec_from_file_location(
    "cf_acquire_server", Path(__file__).parents[1] / "acquire" / "server.py"
)
if "cf_acquire_server" not in sys.modules:
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["cf_acquire_server"] = _mod
    _spec.loader.exec_module(_mod)
server_mod = sys.modules["cf_acquire_server"]


def _cli(*args: str) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.fixture
def site(tmp_path, monkeypatch):
    if not (MEDIA / "bbb_5s.mp4").exists():
        pytest.skip("needs ../shared/data")
    monkeypatch.chdir(tmp_path)
    for k in list(__import__("os").environ):
        if k.startswith("CLIPFACTORY_"):
            monkeypatch.delenv(k)
    with server_mod.TestServer() as srv:
        srv.add("/films/bunny.mp4", body=(MEDIA / "bbb_5s.mp4").read_bytes(), etag='"bunny"')
        srv.add("/films/bikes.mp4", body=(MEDIA / "bikes.mp4").read_bytes())
        srv.add("/films/cup.mp4", body=(MEDIA / "cup.mp4").read_bytes())
        srv.add("/films/notes.mp4", body=b"these are not the frames you are looking for\n" * 50, content_type="video/mp4")
        yield srv


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "clipfactory.toml"
    cfg.write_text(
        f"""catalog = "cat.duckdb"
store = "store"
purpose = "commercial"
[build]
name = "licensed"
out = "builds"
shard_size = 2
[acquire.http]
allow_private_addresses = true   # the test site is on 127.0.0.1
backoff_base_s = 0.02
backoff_max_s = 0.2
[quality.filter]
min_duration_s = 0.5
{extra}"""
    )
    return cfg


def _manifests(tmp_path: Path, site) -> tuple[Path, Path]:
    u = site.url
    a = tmp_path / "stock-a.csv"
    a.write_text(
        "video_url,licence,author,name,from,to,text\n"
        f"{u('/films/bunny.mp4')},CC-BY-4.0,Blender Foundation,Big Buck Bunny,0.5,2.5,a rabbit wakes up\n"
        f"{u('/films/bunny.mp4')},CC-BY-4.0,Blender Foundation,Big Buck Bunny,3.0,9.0,the meadow at dawn\n"
        f"{u('/films/cup.mp4')},CC0-1.0,Some Maker,Cup,1.0,4.0,hands turn a cup\n"
        f"{u('/films/bikes.mp4')},CC-BY-NC-4.0,A Cyclist,Bikes,0.0,5.0,bikes in a street\n"
        f"{u('/films/gone.mp4')},CC-BY-4.0,Nobody,Gone,0.0,2.0,a video that was deleted\n"
        f"{u('/films/notes.mp4')},CC-BY-4.0,Nobody,Notes,0.0,2.0,not a video at all\n"
    )
    b = tmp_path / "stock-b.csv"
    b.write_text(
        "video_url,licence,author,name,from,to,text\n"
        f"{u('/films/bunny.mp4')},CC-BY-4.0,Blender Foundation,Big Buck Bunny,0.5,2.5,bunny stretching in the grass\n"
    )
    return a, b


def _ingest(cfg: Path, path: Path, dataset: str) -> None:
    _cli(
        "ingest", str(path), "--dataset", dataset, "--config", str(cfg),
        "--map", "url=video_url,license=licence,rights_holder=author,title=name,start=from,end=to,caption=text,time-unit=s",
    )


def _build_files(out_dir: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for tar in sorted(Path(out_dir).glob("*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                files[m.name] = t.extractfile(m).read()
    return files


def test_one_run_from_a_licensed_web_manifest(tmp_path, site):
    cfg = _config(tmp_path)
    a, b = _manifests(tmp_path, site)
    _ingest(cfg, a, "stock-a")
    _ingest(cfg, b, "stock-b")

    r = _cli("run", "--config", str(cfg), "--dataset", "stock-a", "--dataset", "stock-b")
    gate, fetch = r["stages"]["policy.gate"], r["stages"]["acquire.http"]
    # Policy before bytes: the NC row is refused for a commercial build and never requested.
    assert gate["dropped"] == 1 and any(k.startswith("policy.") for k in gate["reasons"])
    assert site.times_of("/films/bikes.mp4") == []
    # Fetch failures end as rows with their reason; the run goes on.
    assert fetch["kept"] == 2
    assert fetch["reasons"].get("fetch.http_404") == 1
    assert fetch["reasons"].get("fetch.not_video") == 1

    build = r["build"]
    assert build["status"] == "written" or build["n_clips"] > 0
    index = pq.read_table(Path(build["out_dir"]) / "index.parquet").to_pylist()
    spans = sorted((row["start_ms"], row["end_ms"]) for row in index)
    # Clips follow the manifest spans: bunny 0.5-2.5 s and 3.0 s to its end (5.3 s, the span ran past it),
    # cup 1.0-4.0 s. Starts may move later onto a keyframe. The index gives the span the clip file holds:
    # bunny's frames are 40 ms apart (0, 40, ... ms), so 0.5-2.5 s holds the frames shown at 480-2440 ms
    # (those whose middle lies in the span), which end at 2480 ms; cup's are 37.3 ms apart, and its frame
    # shown at 3996.0 ms has its middle past 4.0 s, so cup's clip ends at 3996 ms.
    ends = sorted(e for _, e in spans)
    assert len(index) == 3, spans
    assert ends[0] == 2480 and ends[1] == 3996 and 5200 <= ends[2] <= 5400
    assert all(row["span_origin"] == "manifest" for row in index)
    bunny_first = next(row for row in index if row["end_ms"] == 2480)
    assert (bunny_first["planned_start_ms"], bunny_first["planned_end_ms"]) == (500, 2500)
    caps = {c["dataset"]: c["caption"] for c in json.loads(bunny_first["captions"])}
    # One source listed by two datasets gives one clip for the shared span, with both captions.
    assert caps == {"stock-a": "a rabbit wakes up", "stock-b": "bunny stretching in the grass"}
    assert sorted(bunny_first["caption_datasets"]) == ["stock-a", "stock-b"]

    members = _build_files(build["out_dir"])
    docs = [json.loads(v) for k, v in members.items() if k.endswith(".json")]
    assert len(docs) == 3
    bunny_url = site.url("/films/bunny.mp4")
    for d in docs:
        text = json.dumps(d)
        assert "127.0.0.1" in text  # the public URL of the work, in the attribution
    assert any(bunny_url in json.dumps(d) for d in docs)

    # The span that ran past the video was clipped to its duration and recorded.
    cat = Catalog(str(tmp_path / "cat.duckdb"))
    details = [
        json.loads(x["detail"])
        for x in cat.query("SELECT detail FROM latest_outcomes WHERE stage = 'media.analyse' AND status = 'kept'")
    ]
    assert sum(d.get("spans_clipped", 0) for d in details) == 1

    # A re-run does no finished work: nothing is requested again, nothing is cut again.
    requests_before = len(site.times_of("/films/bunny.mp4")) + len(site.times_of("/films/cup.mp4"))
    r2 = _cli("run", "--config", str(cfg), "--dataset", "stock-a", "--dataset", "stock-b")
    requests_after = len(site.times_of("/films/bunny.mp4")) + len(site.times_of("/films/cup.mp4"))
    assert requests_after == requests_before
    this_run = {(x["stage"], x["status"]): x["n"] for x in r2["this_run"]}
    assert ("media.cut", "kept") not in this_run
    assert r2["build"]["status"] == "unchanged"


def test_spans_setting_chooses_shots_or_split_spans(tmp_path, site):
    cfg = _config(tmp_path, '[media.analyse]\nspans = "shots"\n')
    a, _ = _manifests(tmp_path, site)
    _ingest(cfg, a, "stock-a")
    r = _cli("run", "--config", str(cfg), "--dataset", "stock-a")
    index = pq.read_table(Path(r["build"]["out_dir"]) / "index.parquet").to_pylist()
    assert index and all(row["span_origin"] == "shots" for row in index)
    assert all(row["captions"] is None for row in index)


def test_unknown_dataset_names_the_fix(tmp_path, site):
    cfg = _config(tmp_path)
    r = CliRunner().invoke(app, ["run", "--config", str(cfg), "--dataset", "no-such-list"])
    assert r.exit_code == 1
    assert "no-such-list" in r.output and "clipfactory ingest" in r.output


def test_video_level_captions_reach_clips_cut_from_shots(tmp_path, site):
    """A caption list without time ranges (as WebVid's): clips come from the shots, and each carries the
    dataset's caption of the whole video."""
    cfg = _config(tmp_path)
    m = tmp_path / "captions.csv"
    m.write_text(
        "video_url,licence,author,name,text\n"
        f"{site.url('/films/cup.mp4')},CC0-1.0,Some Maker,Cup,hands turn a cup on a table\n"
    )
    _cli(
        "ingest", str(m), "--dataset", "caps", "--config", str(cfg),
        "--map", "url=video_url,license=licence,rights_holder=author,title=name,caption=text",
    )
    r = _cli("run", "--config", str(cfg), "--dataset", "caps")
    index = pq.read_table(Path(r["build"]["out_dir"]) / "index.parquet").to_pylist()
    assert index and all(row["span_origin"] == "shots" for row in index)
    for row in index:
        assert json.loads(row["captions"]) == [
            {"dataset": "caps", "caption": "hands turn a cup on a table", "scope": "video"}
        ]
        assert row["caption_datasets"] == ["caps"]


def test_a_refused_fetch_says_why_and_how_to_allow_it(tmp_path, site):
    """Without allow_private_addresses, a loopback URL is refused; the run's output names the setting and
    says that nothing was built, instead of a build line of Nones."""
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("allow_private_addresses = true", "allow_private_addresses = false"))
    a, _ = _manifests(tmp_path, site)
    _ingest(cfg, a, "stock-a")
    r = CliRunner().invoke(app, ["run", "--config", str(cfg), "--dataset", "stock-a"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "fetch.private_address" in text
    assert "set acquire.http.allow_private_addresses = true" in text
    assert "no build: no clip reached the export" in text and "None" not in text
    assert site.times_of("/films/bunny.mp4") == []
