"""caption.vlm in `clipfactory run` when the endpoint keeps failing: the clip is built without a VLM caption,
or, with required = true, held back."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from clipfactory.catalog import Catalog
from clipfactory.config import Settings
from clipfactory.factory import pipeline

from .vlm_server import VlmServer


def _docs(out_dir: str) -> list[dict]:
    docs = []
    for shard in sorted(Path(out_dir).glob("*.tar")):
        with tarfile.open(shard) as tf:
            docs += [json.loads(tf.extractfile(m).read()) for m in tf.getmembers() if m.name.endswith(".json")]
    return docs


def test_a_failing_endpoint_leaves_clips_in_the_build_unless_required(tmp_path):
    from speech.avmedia import make_video

    media = tmp_path / "media"
    media.mkdir()
    make_video(media / "v.mp4", 2.5, seed=11)
    with VlmServer(lambda req, n: "503") as srv:

        def settings(required: bool) -> Settings:
            return Settings(
                catalog=str(tmp_path / "cat.duckdb"), store=str(tmp_path / "store"), inputs=[str(media)],
                license="CC-BY-4.0", rights_holder="Test Holder", purpose="commercial", retries=2,
                build={"name": "vlm", "out": str(tmp_path / "builds"), "shard_size": 100},
                stages={
                    "caption.vlm": {"endpoint": srv.url, "model": "m", "frames": 1, "required": required},
                    "quality.filter": {"min_duration_s": 0.5, "min_sharpness": 0.0},
                },
            )

        first = pipeline.run_pipeline(settings(False))
        n = first["stages"]["caption.vlm"]["received"]
        assert n >= 1 and first["stages"]["caption.vlm"]["failed"] == n
        assert first["stages"]["caption.vlm"]["reasons"] == {"caption.http_503": n}
        assert len(srv.requests) == 2 * n  # each clip tried twice (retries = 2)
        docs = _docs(first["build"]["out_dir"])
        assert len(docs) == n and first["clips_exported"] == n
        assert all(d["caption"] is None and not [c for c in d["captions"] if c["origin"] == "vlm"] for d in docs)
        rows = Catalog(tmp_path / "cat.duckdb").query(
            "SELECT error_kind, attempt FROM latest_outcomes WHERE stage = 'caption.vlm'"
        )
        assert {(r["error_kind"], r["attempt"]) for r in rows} == {("transient", 2)}

        held = pipeline.run_pipeline(settings(True))
    assert held["stages"]["caption.vlm"]["failed"] == n
    assert held["stages"]["media.cut"]["received"] == 0 and held["clips_exported"] == 0
