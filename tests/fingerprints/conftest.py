"""Fixtures for the fingerprint tests: synthetic footage, catalogs filled through the real analysis pass,
and small WebDataset builds written with the build module's shard writer."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from media_synth import synth_video
from run_cache import made_once

from clipfactory import ids
from clipfactory.catalog import Catalog, upsert_records
from clipfactory.fingerprints.frames import write_frame_hashes
from clipfactory.media.analyse import analyse
from clipfactory.records import ClipRecord, SourceRecord
from clipfactory.storage import BlobStore


@pytest.fixture(scope="session")
def synth_dir() -> Path:
    """Unrelated synthetic videos A..E (10 s, 320x240, 25 fps), written once per test run (tests/run_cache.py);
    tests read them and write elsewhere."""

    def make(d: Path) -> None:
        d.mkdir()
        for k, name in enumerate("ABCDE"):
            synth_video(d / f"{name}.mp4", 10.0, seed=100 + k)

    return made_once("synth-ABCDE", make)


_ANALYSED: dict[str, object] = {}  # this process's copies of the run's analyses, by content hash


def _analysed(path: Path, sha: str):
    """The analysis of the file with content hash ``sha``, computed once per test run: many tests build
    the same small catalogs, and analysing is what they would spend their time on."""

    def make(tmp: Path) -> None:
        tmp.write_bytes(pickle.dumps(analyse(path)))

    if sha not in _ANALYSED:
        _ANALYSED[sha] = pickle.loads(made_once(f"analysis-{sha}.pickle", make).read_bytes())
    return _ANALYSED[sha]


def add_source(
    catalog: Catalog,
    store: BlobStore,
    path: Path,
    *,
    source_id: str | None = None,
    license: str | None = "CC-BY-4.0",
    url: str | None = None,
    uploader: str | None = None,
    clip_s: float = 3.0,
    cut_clips: bool = True,
) -> tuple[SourceRecord, list[ClipRecord]]:
    """Put ``path`` in the store and catalog as the analysis stage would: per-frame PDQ blob, thumbnails,
    and clips of ``clip_s`` seconds (cut as real files when ``cut_clips``)."""
    uri, size = store.put_file(path)
    sha = uri.split(":")[-1]
    sid = source_id or ids.content_source_id(sha)
    res = _analysed(path, sha)
    fp_uri = write_frame_hashes(store, [(p.frame_index, p.time_ms, p.hash_hex, p.quality) for p in res.pdq])
    src = SourceRecord(
        source_id=sid,
        platform="owned" if url is None else "web",
        url=url,
        uploader=uploader,
        content_sha256=sha,
        blob_uri=uri,
        content_license=license,
        rights_holder="Test Holder",
        title=path.stem,
        size_bytes=size,
        duration_ms=res.duration_ms,
        width=res.probe.width,
        height=res.probe.height,
        fingerprint_uri=fp_uri,
        analysis_uri=store.put_bytes(res.to_json().encode()),
        acquired_at=datetime.now(UTC).isoformat(),
    )
    clips = []
    step = int(clip_s * 1000)
    thumbs = [store.put_bytes(sh.thumbnail) if sh.thumbnail else None for sh in res.shots]
    for start in range(0, res.duration_ms - step + 1, step):
        end = start + step
        shot = max(k for k, sh in enumerate(res.shots) if sh.start_ms <= start) if res.shots else None
        thumb_uri = thumbs[shot] if shot is not None else None
        cid = ids.clip_id(sid, start, end)
        blob = csha = None
        if cut_clips:
            from media_synth import transform

            tmp = store.incoming() / f"{cid}.mp4"
            # the same cut of the same file, made once per test run
            key = made_once(
                f"cut-{sha}-{start}-{end}.mp4",
                lambda out, s=start, e=end: transform(path, out, start_s=s / 1000, end_s=e / 1000),
            )
            shutil.copyfile(key, tmp)
            blob, _ = store.put_file(tmp)
            tmp.unlink()
            csha = blob.split(":")[-1]
        clips.append(
            ClipRecord(
                clip_id=cid,
                source_id=sid,
                start_ms=start,
                end_ms=end,
                blob_uri=blob,
                content_sha256=csha,
                thumb_uri=thumb_uri,
                shot_index=shot,
                fingerprint_uri=fp_uri,
                sharpness=100.0,
            )
        )
    with catalog.write() as con:
        upsert_records(con, [src, *clips])
    return src, clips


def write_test_build(
    catalog: Catalog,
    store: BlobStore,
    out: Path,
    clips: list[ClipRecord],
    *,
    name: str = "b",
    shard_size: int = 2,
    purpose: str = "research",
) -> dict:
    """A build in the export module's layout (shards, index.parquet, build.json, catalog rows), without
    the policy gate: enough for takedown and verify tests."""
    import pyarrow.parquet as pq

    from clipfactory.factory.export import ShardMember, assign_shards, write_shard

    version = 1
    build_id = f"{name}-v{version}"
    out_dir = out / name / f"v{version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, shards = [], []
    for shard, group in assign_shards(clips, shard_size):
        members = []
        for c in group:
            js = json.dumps(
                {"clip_id": c.clip_id, "source_id": c.source_id, "sha256": c.content_sha256}
            ).encode()
            jpg = store.path_of(c.thumb_uri).read_bytes() if c.thumb_uri else b""
            members.append(ShardMember(c.clip_id, {"mp4": store.path_of(c.blob_uri), "json": js, "jpg": jpg}))
            rows.append(
                {
                    "build_id": build_id,
                    "clip_id": c.clip_id,
                    "source_id": c.source_id,
                    "shard": shard,
                    "member_key": c.clip_id,
                    "mp4_sha256": c.content_sha256,
                    "json_sha256": hashlib.sha256(js).hexdigest(),
                    "jpg_sha256": hashlib.sha256(jpg).hexdigest(),
                }
            )
        digest = write_shard(out_dir / shard, members)
        shards.append({"name": shard, "n_clips": len(group), "sha256": digest})
    index = pa.Table.from_pylist(
        [
            {
                "build_id": r["build_id"],
                "shard": r["shard"],
                "key": r["member_key"],
                "clip_id": r["clip_id"],
                "source_id": r["source_id"],
                "mp4_sha256": r["mp4_sha256"],
            }
            for r in rows
        ]
    )
    pq.write_table(index, out_dir / "index.parquet")
    manifest = {
        "build_id": build_id,
        "name": name,
        "version": version,
        "purpose": purpose,
        "n_clips": len(rows),
        "n_shards": len(shards),
        "shard_size": shard_size,
        "shards": shards,
        "index": "index.parquet",
        "status": "complete",
        "supersedes": None,
        "out_dir": str(out_dir),
    }
    (out_dir / "build.json").write_text(json.dumps(manifest))
    with catalog.write() as con:
        con.execute(
            "INSERT INTO builds VALUES (?, ?, ?, ?, 'complete', ?, ?, ?, ?, NULL, ?)",
            [
                build_id,
                name,
                version,
                purpose,
                datetime.now(UTC).replace(tzinfo=None),
                str(out_dir),
                len(rows),
                len(shards),
                json.dumps({"shard_size": shard_size}),
            ],
        )
        con.register("_m", pa.Table.from_pylist(rows))
        con.execute("INSERT INTO build_members BY NAME SELECT * FROM _m")
        con.unregister("_m")
    return manifest
