"""``clipfactory verify --build B``: prove that no tombstoned content is in a build.

The proof reads the build's files, not the catalog's account of them. Every tar shard in the build's
folder is scanned member by member:

* every member's bytes are hashed (sha256) and looked up in the tombstones' exact hashes (source files,
  clip files, thumbnails, earlier shard members);
* every ``.json`` member's ``source_id``, ``clip_id`` and ``sha256`` fields are checked against the
  tombstoned ids and hashes;
* ``frames_per_clip`` frames of every ``.mp4`` member are decoded and PDQ-matched against the tombstones'
  dense frame hashes, which finds re-encoded, resized or re-cut copies: a member is flagged when at least
  60% of its usable sampled frames (and two of them, or all when fewer) match a tombstone.

The catalog's ``build_members`` rows of tombstoned sources are reported too. A build that was not read
whole is not proof either way: shards that ``build.json`` lists but that are missing, clips the build holds
by its own account (the catalog's members, else ``build.json``'s counts) that no shard gave, or no
``build.json`` at all are ``problems``. ``ok`` is true only when the build was read whole and no tombstoned
content was found; the CLI exits with code 1 otherwise.

The build's folder may be local or on object storage (``s3://…``, read through fsspec): each shard is
downloaded to a temporary file in turn, scanned and removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..buildfolder import BuildFolder
from ..catalog import Catalog
from ..errors import NotFoundError
from .hashes import MATCH_DISTANCE, MIN_QUALITY

log = logging.getLogger(__name__)

PDQ_SHARE = 0.6


def resolve_build(catalog: Catalog, build: str) -> dict[str, Any]:
    rows = catalog.query(
        "SELECT build_id, name, version, status, out_dir FROM builds WHERE build_id = ?", [build]
    )
    if not rows:
        rows = catalog.query(
            "SELECT build_id, name, version, status, out_dir FROM builds WHERE name = ? ORDER BY version DESC LIMIT 1",
            [build],
        )
    if not rows:
        folder = BuildFolder(build)
        m = folder.manifest()
        if m is not None:
            return {
                "build_id": m.get("build_id", folder.location),
                "name": m.get("name"),
                "version": m.get("version"),
                "status": m.get("status"),
                "out_dir": folder.location,
                "in_catalog": False,
            }
        raise NotFoundError(
            "no such build", item=build, fix="give a build id (name-vN), a build name or a build folder"
        )
    return {**rows[0], "in_catalog": True}


def _member_key(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext


def verify_build(
    catalog: Catalog,
    build: str,
    *,
    store=None,
    frames_per_clip: int = 3,
    max_distance: int = MATCH_DISTANCE,
) -> dict[str, Any]:
    """Scan the build's shards for tombstoned content. Returns findings and counts; ``ok`` when none."""
    from .sample import sample_bytes
    from .tombstones import _load_pdq

    t0 = time.perf_counter()
    b = resolve_build(catalog, build)
    folder = BuildFolder(b["out_dir"] or "", b["build_id"])
    with catalog.read() as con:
        tomb_sources = {
            r[0]: r[1] for r in con.execute("SELECT source_id, tombstone_id FROM tombstones").fetchall()
        }
        tomb_hashes: dict[str, str] = {}
        for tid, sha in con.execute(
            "SELECT tombstone_id, sha256 FROM tombstone_hashes UNION ALL "
            "SELECT tombstone_id, content_sha256 FROM tombstones WHERE content_sha256 IS NOT NULL"
        ).fetchall():
            tomb_hashes.setdefault(sha, tid)
        tomb = _load_pdq(con, catalog)
        cat_rows = con.execute(
            "SELECT clip_id, source_id, shard, member_key FROM build_members WHERE build_id = ?",
            [b["build_id"]],
        ).fetchall()
    findings: list[dict[str, Any]] = []
    for _clip_id, source_id, shard, key in cat_rows:
        if source_id in tomb_sources:
            findings.append(
                {
                    "shard": shard,
                    "member": key,
                    "kind": "catalog_member",
                    "source_id": source_id,
                    "tombstone_id": tomb_sources[source_id],
                }
            )
    manifest = folder.manifest()
    no_manifest = manifest is None
    manifest = manifest or {}
    removed_shards = set(manifest.get("removed_shards", []))
    listed = [
        s["name"]
        for s in manifest.get("shards", [])
        if isinstance(s, dict) and "name" in s and s["name"] not in removed_shards
    ]
    tars = folder.names(".tar")
    missing = [n for n in listed if n not in tars]
    # What the build holds by its own account: the catalog's members (less those of shards a takedown
    # removed), else the clips its build.json lists. Members it holds that no shard gave are missing.
    if b.get("in_catalog", True):
        expected = {key or cid for cid, _sid, shard, key in cat_rows if shard not in removed_shards}
        n_expected = len(expected)
    else:
        expected = None
        n_expected = sum(
            int(s.get("n_clips") or 0)
            for s in manifest.get("shards", [])
            if isinstance(s, dict) and s.get("name") not in removed_shards
        )
    seen_keys: set[str] = set()
    n_members = 0
    samples: list[np.ndarray] = []
    owners: list[tuple[str, str]] = []
    frame_owner: list[int] = []
    n_frames = 0
    use_pdq = frames_per_clip > 0 and len(tomb.index) > 0
    gone: list[str] = []
    for tar_path in _shards(folder, tars, gone):
        with tarfile.open(tar_path, "r") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                n_members += 1
                data = tar.extractfile(info).read()
                key, ext = _member_key(info.name)
                seen_keys.add(key)
                sha = hashlib.sha256(data).hexdigest()
                if sha in tomb_hashes:
                    findings.append(
                        {
                            "shard": tar_path.name,
                            "member": info.name,
                            "kind": "sha256",
                            "sha256": sha,
                            "tombstone_id": tomb_hashes[sha],
                        }
                    )
                if ext == "json":
                    try:
                        doc = json.loads(data)
                    except ValueError:
                        doc = {}
                    sid = doc.get("source_id") if isinstance(doc, dict) else None
                    if sid in tomb_sources:
                        findings.append(
                            {
                                "shard": tar_path.name,
                                "member": info.name,
                                "kind": "json_source_id",
                                "source_id": sid,
                                "tombstone_id": tomb_sources[sid],
                            }
                        )
                    dsha = doc.get("sha256") if isinstance(doc, dict) else None
                    if dsha in tomb_hashes:
                        findings.append(
                            {
                                "shard": tar_path.name,
                                "member": info.name,
                                "kind": "json_sha256",
                                "sha256": dsha,
                                "tombstone_id": tomb_hashes[dsha],
                            }
                        )
                elif ext in ("mp4", "mkv", "webm", "mov") and use_pdq:
                    try:
                        q = sample_bytes(data, name=info.name, fps=2.0, max_frames=frames_per_clip).usable(
                            MIN_QUALITY
                        )
                    except Exception as exc:  # an undecodable member is reported, never skipped silently
                        findings.append(
                            {
                                "shard": tar_path.name,
                                "member": info.name,
                                "kind": "undecodable",
                                "detail": str(exc),
                            }
                        )
                        continue
                    n_frames += q.n_sampled
                    if len(q.hashes):
                        owners.append((tar_path.name, info.name))
                        samples.append(q.hashes)
                        frame_owner += [len(owners) - 1] * len(q.hashes)
    if samples:
        allh = np.concatenate(samples)
        fo = np.array(frame_owner)
        qi, ri, d = tomb.index.search(allh, max_distance)
        per_owner_total = np.bincount(fo, minlength=len(owners))
        if len(qi):
            hit_owner = fo[qi]
            t_of = tomb.index.src[ri]
            pairs = np.unique(np.stack([hit_owner, qi, t_of], axis=1), axis=0)
            for o in np.unique(pairs[:, 0]):
                sub = pairs[pairs[:, 0] == o]
                for t in np.unique(sub[:, 2]):
                    m = len(np.unique(sub[sub[:, 2] == t][:, 1]))
                    n = int(per_owner_total[o])
                    if m / n >= PDQ_SHARE and m >= min(2, n):
                        shard, member = owners[int(o)]
                        findings.append(
                            {
                                "shard": shard,
                                "member": member,
                                "kind": "pdq",
                                "matched_frames": m,
                                "frames": n,
                                "tombstone_id": tomb.ids[int(t)],
                                "source_id": tomb.sources[int(t)],
                            }
                        )
                        break
    missing += [n for n in gone if n not in missing]
    if expected is not None:
        missing_members = sorted(expected - seen_keys)
    else:
        missing_members = [] if len(seen_keys) >= n_expected else [f"{n_expected - len(seen_keys)} clips"]
    problems = []
    if no_manifest:
        problems.append(f"no build.json at {folder.location}")
    if missing:
        problems.append(f"{len(missing)} shard{'s' if len(missing) != 1 else ''} missing: {', '.join(missing)}")
    if missing_members:
        problems.append(
            f"{len(missing_members)} of the build's {n_expected} clips are in no shard read"
            + (f" (e.g. {missing_members[0]})" if expected is not None else "")
        )
    return {
        "build_id": b["build_id"],
        "out_dir": folder.location,
        "status": b.get("status"),
        # Clean only when the build was read whole: every shard it lists, every clip it holds.
        "ok": not findings and not problems,
        "complete": not problems,
        "problems": problems,
        "shards_scanned": len(tars) - len(gone),
        "members_scanned": n_members,
        "clips_scanned": len(seen_keys),
        "clips_expected": n_expected,
        "missing_members": missing_members,
        "frames_checked": n_frames,
        "tombstones": len(tomb_sources),
        "findings": findings,
        "missing_shards": missing,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _shards(folder: BuildFolder, names: list[str], gone: list[str]) -> Iterator[Path]:
    """A local path of each shard of ``folder`` in turn: the file itself in a local folder, else a
    download of it to a temporary file that is removed once the next is asked for. A shard that went
    away after the listing is added to ``gone``."""
    if not folder.remote:
        for n in names:
            yield folder.path(n)
        return
    with tempfile.TemporaryDirectory(prefix=".cf-verify-") as tmp:
        for n in names:
            dest = Path(tmp) / n
            if folder.fetch(n, dest):
                yield dest
                dest.unlink(missing_ok=True)
            else:
                gone.append(n)
