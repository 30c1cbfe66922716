"""Builds: versioned WebDataset shards, a Parquet index and a ``build.json`` manifest.

Layout of one build (``<build.out>/<name>/v<N>/``)::

    shard-000000.tar      <key>.mp4  <key>.json  <key>.jpg   per clip, clips sorted by clip_id
    shard-000001.tar      ...
    index.parquet         one row per clip: shard, key, span, licence, attribution text, scores, member hashes

Spans (``start_ms``/``end_ms`` in the index, ``span`` in the clip JSON, the attribution's "cut to") are the
span of the source that the clip's file holds, as ``media.cut`` measured it from what it wrote; the
planned span is kept beside it (``planned_start_ms``/``planned_end_ms``). They differ for stream copies,
which start on a keyframe near the planned start and can end a few frames early.
    ATTRIBUTION.md        the credit of every source work (TASL: title, author, source, licence), and its clips
    ATTRIBUTION.json      the same, structured
    datasheet.html, croissant.json, eu_training_summary.md/.json, ab2013.md, copyrighted_works.csv
                          the disclosure documents (clipfactory.disclosures), listed under ``reports``
    build.json            the manifest, written last: a build without it is incomplete

Nothing shipped names the operator's machine: ``origin_uri`` in clip JSON and the index is the source's
public URL, else its path relative to the input it was added from; the full path stays in the catalog.

Every file is written to a temporary sibling and renamed into place, so a crash never leaves a partial
shard under its final name. Shard assignment is deterministic: clips sorted by ``clip_id``, ``shard_size``
clips per shard, and the tar members carry fixed metadata, so the same clips give byte-identical shards.

**The build refuses every source the policy gate does not allow for the build's purpose.** Refused clips
get a dropped outcome row (stage ``build.export``, reason ``policy.<reason>``); exported clips a kept row.

A build is immutable. Writing the same clips again returns the existing build; anything else is a new
version that names the build it ``supersedes`` (what a takedown does through :func:`write_build`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import Catalog, dict_rows, load_records
from ..errors import NotFoundError
from ..ids import sha256_file
from ..records import ClipRecord, SourceRecord
from ..storage import BlobStore, atomic_path, atomic_write, is_url, local_cache, publish_dir, read_bytes_at

log = logging.getLogger(__name__)

EXPORT_STAGE = "build.export"
EXPORT_VERSION = 1
SHARD_PATTERN = "shard-{:06d}.tar"


# -- shards ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardMember:
    """One WebDataset sample: ``key`` and its files by extension (bytes, or a path to copy from)."""

    key: str
    files: dict[str, bytes | Path]


def write_shard(path: str | Path, members: Iterable[ShardMember]) -> str:
    """Write one tar shard atomically (temporary sibling, then rename). Returns the tar's sha256.

    Members get fixed metadata (mtime 0, uid/gid 0, mode 0644), so equal inputs give equal bytes.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for m in members:
                for ext in sorted(m.files, key=_member_order):
                    data = m.files[ext]
                    info = tarfile.TarInfo(f"{m.key}.{ext}")
                    info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
                    info.uname = info.gname = ""
                    if isinstance(data, bytes):
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    else:
                        info.size = Path(data).stat().st_size
                        with open(data, "rb") as fh:
                            tar.addfile(info, fh)
        digest = sha256_file(tmp)
    return digest


def _member_order(ext: str) -> tuple[int, str]:
    return ({"mp4": 0, "json": 1, "jpg": 2}.get(ext, 9), ext)


def assign_shards(clips: list[ClipRecord], shard_size: int) -> list[tuple[str, list[ClipRecord]]]:
    """Deterministic sharding: sort by ``clip_id``, ``shard_size`` clips per shard."""
    ordered = sorted(clips, key=lambda c: c.clip_id)
    size = max(1, int(shard_size))
    return [(SHARD_PATTERN.format(i // size), ordered[i : i + size]) for i in range(0, len(ordered), size)]


# -- licence lineage and attribution ---------------------------------------------------------------------


def license_label(spdx: str | None) -> str | None:
    """Human form of an SPDX id for attribution lines: ``CC-BY-3.0`` → ``CC BY 3.0``."""
    if not spdx:
        return None
    m = re.fullmatch(r"CC-(BY(?:-NC)?(?:-ND|-SA)?)-(\d\.\d)(?:-[A-Z]+)?", spdx)
    if m:
        return f"CC {m.group(1)} {m.group(2)}"
    m = re.fullmatch(r"CC0-(\d\.\d)", spdx)
    if m:
        return f"CC0 {m.group(1)}"
    return spdx


def attribution_text(source: SourceRecord) -> str:
    """The short credit line of a work, e.g. ``“Big Buck Bunny” © Blender Foundation, CC BY 3.0``.

    Kept for callers that want one line; builds ship the full TASL text of :func:`attribution_for`."""
    title = source.title or (Path(source.origin_uri).stem if source.origin_uri else source.source_id)
    parts = [f"“{title}”"]
    if source.rights_holder:
        parts.append(f"© {source.rights_holder}")
    text = " ".join(parts)
    label = license_label(source.content_license)
    return f"{text}, {label}" if label else text


_CC_ID = re.compile(
    r"CC-(?P<kind>BY(?:-NC)?(?:-ND|-SA)?)-(?P<version>\d\.\d)(?:-(?P<port>[A-Za-z]+))?", re.IGNORECASE
)
_CC0_ID = re.compile(r"CC0-(?P<version>\d\.\d)", re.IGNORECASE)
#: Licences whose works are in the public domain (beside CC0), with the page that says so.
PUBLIC_DOMAIN_URLS = {
    "cc-pddc": "https://creativecommons.org/licenses/publicdomain/",
    "pddl-1.0": "https://opendatacommons.org/licenses/pddl/1-0/",
    "licenseref-publicdomain": None,
    "licenseref-public-domain": None,
    "unlicense": "https://unlicense.org/",
}


def license_record(spdx: str | None, table=None) -> dict[str, Any]:
    """What an attribution needs to know about a licence: its family, name, URL and obligations.

    ``family`` is one of ``cc-by`` (CC BY and its NC/ND variants), ``cc-by-sa`` (share-alike variants),
    ``cc0``, ``public-domain``, ``custom`` (``LicenseRef-…``, other SPDX ids, expressions) and ``none``.
    Names, notes and the attribution / share-alike flags come from the licence table of the policy
    (``table``, a :class:`clipfactory.policy.taxonomy.LicenseTable`), so a policy file changes them.
    """
    spdx = (spdx or "").strip() or None
    terms = None
    if table is not None and spdx:
        try:
            terms = table.classify(spdx)
        except Exception:  # noqa: BLE001 - an expression the policy cannot read still gets credited
            terms = None
    entry: dict[str, Any] = {}
    if table is not None and spdx:
        entry = table.entries().get(spdx) or next(
            (v for k, v in table.entries().items() if k.lower() == spdx.lower()), {}
        )
    rec: dict[str, Any] = {
        "license": spdx,
        "name": entry.get("name") or license_label(spdx),
        "url": None,
        "note": entry.get("note"),
        "attribution_required": bool(terms.attribution) if terms is not None else True,
        "share_alike": bool(terms.share_alike) if terms is not None else False,
    }
    if spdx is None:
        return {**rec, "family": "none", "attribution_required": False}
    m = _CC_ID.fullmatch(spdx)
    if m:
        kind, version, port = m.group("kind").lower(), m.group("version"), m.group("port")
        url = f"https://creativecommons.org/licenses/{kind}/{version}/"
        if port:
            url += f"{port.lower()}/"
        sa = kind.endswith("-sa")
        return {
            **rec,
            "family": "cc-by-sa" if sa else "cc-by",
            "url": url,
            "attribution_required": True,
            "share_alike": sa or rec["share_alike"],
        }
    m = _CC0_ID.fullmatch(spdx)
    if m:
        url = f"https://creativecommons.org/publicdomain/zero/{m.group('version')}/"
        return {**rec, "family": "cc0", "url": url, "attribution_required": False}
    low = spdx.lower()
    if low in PUBLIC_DOMAIN_URLS or "public domain" in str(entry.get("name") or "").lower():
        return {
            **rec,
            "family": "public-domain",
            "name": entry.get("name") or ("Public domain" if low.startswith("licenseref-") else spdx),
            "url": PUBLIC_DOMAIN_URLS.get(low),
            "attribution_required": False,
        }
    url = None
    if not low.startswith("licenseref-") and re.fullmatch(r"[A-Za-z0-9.+-]+", spdx):
        url = f"https://spdx.org/licenses/{spdx}.html"  # a single SPDX id: its text is on the SPDX list
    return {**rec, "family": "custom", "url": url}


def _ms(ms: int | None) -> str:
    ms = int(ms or 0)
    m, rest = divmod(ms, 60_000)
    return f"{m}:{rest / 1000:06.3f}"


def file_span(clip: ClipRecord, cut: dict[str, Any] | None = None) -> tuple[int, int]:
    """The span of the source that the clip's file really holds: from the ``media.cut`` outcome detail
    (``cut``), which measured it from what was written; the planned span when the detail does not say.

    A stream copy starts on the keyframe (up to the cut's keyframe tolerance from the planned start) and
    can end a few frames early; a re-encode holds the frames of the planned span."""
    cut = cut or {}
    start, end = cut.get("start_ms"), cut.get("end_ms")
    if isinstance(start, int) and isinstance(end, int) and end > start:
        return start, end
    return clip.start_ms, clip.end_ms


def modifications(clip: ClipRecord, cut: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What was done to the work to make ``clip``: always cut to its span (the span its file holds, see
    :func:`file_span`); re-encoded when not copied."""
    start, end = file_span(clip, cut)
    cut = cut or {}
    out: list[dict[str, Any]] = [
        {
            "kind": "cut",
            "start_ms": start,
            "end_ms": end,
            "text": f"cut to {_ms(start)}–{_ms(end)} of the original",
        }
    ]
    if clip.cut_method == "reencode":
        enc = cut.get("encoder")
        out.append({"kind": "re-encoded", "encoder": enc, "text": f"re-encoded{f' ({enc})' if enc else ''}"})
    elif cut.get("audio_method") == "reencode":
        out.append({"kind": "audio re-encoded", "encoder": None, "text": "audio re-encoded"})
    return out


def _tasl(title: str, author: str | None, source: str | None, lic: dict[str, Any], modified: str | None) -> str:
    """The TASL credit (title, author, source, licence) of one work, per licence family."""
    work = f"“{title}”"
    if author:
        work += f" by {author}" if lic["family"] != "custom" else f" © {author}"
    if source:
        work += f" ({source})"
    name = lic.get("name") or lic.get("license")
    link = f" ({lic['url']})" if lic.get("url") else ""
    fam = lic["family"]
    if fam in ("cc-by", "cc-by-sa"):
        text = f"{work}, licensed under {name}{link}."
    elif fam == "cc0":
        text = f"{work}, dedicated to the public domain under {name}{link}."
    elif fam == "public-domain":
        text = f"{work}, in the public domain ({name}){link}."
    elif fam == "none":
        text = f"{work}, no licence recorded."
    else:
        text = f"{work}, used under {name}{link}"
        if lic.get("note"):
            text += f": {lic['note'].rstrip('.')}"
        text += "."
    if modified:
        text += f" Modified: {modified}."
    if fam == "cc-by-sa" or (fam != "cc-by" and lic.get("share_alike")):
        text += f" Share-alike: this adaptation is shared under the same licence, {name}{link}."
    return text


def work_origin(source: SourceRecord, roots: list[str] | None = None) -> str | None:
    """Where a work comes from, in a form that can be shipped: its public URL when it has one, else its
    path relative to the input it was added from (or its file name), never the operator's full path."""
    if source.url:
        return source.url
    if not source.origin_uri:
        return None
    from ..sources.owned import relative_origin

    rel = relative_origin(source.origin_uri, roots or [])
    if rel is not None:
        return rel
    tail = source.origin_uri.rstrip("/").rsplit("/", 1)[-1]
    return tail or None


def attribution_for(
    source: SourceRecord,
    licence: dict[str, Any],
    clip: ClipRecord,
    *,
    origin: str | None = None,
    cut: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The attribution of one clip: TASL text plus the same facts as fields.

    ``licence`` is :func:`license_record` of the source's content licence; ``origin`` is
    :func:`work_origin` of the source; ``cut`` the ``media.cut`` outcome detail of the clip.
    """
    changes = modifications(clip, cut)
    facts = _credit_facts(source, licence, origin)
    text = _tasl(facts["title"], facts["author"], origin, licence, " and ".join(c["text"] for c in changes))
    return {"text": text, **facts, "modifications": changes}


def _credit_facts(source: SourceRecord, licence: dict[str, Any], origin: str | None) -> dict[str, Any]:
    """The fields a clip's attribution and a work's entry in ``ATTRIBUTION.json`` share."""
    title = source.title or source.source_id
    author = source.rights_holder or source.uploader
    return {
        "title": title,
        "author": author,
        "rights_holder": source.rights_holder,
        "source": origin,
        "source_url": source.url,
        "license": licence.get("license"),
        "license_name": licence.get("name"),
        "license_url": licence.get("url"),
        "license_family": licence["family"],
        "license_note": licence.get("note"),
        "attribution_required": licence.get("attribution_required"),
        "share_alike": licence.get("share_alike"),
        "modified": True,
    }


def work_attribution(
    source: SourceRecord, licence: dict[str, Any], origin: str | None, clips: list[dict[str, Any]]
) -> dict[str, Any]:
    """One entry of ``ATTRIBUTION.json``: a source work and the clips of the build that use it."""
    kinds = sorted({m["kind"] for c in clips for m in c["modifications"]})
    n = len(clips)
    done = f"cut into {n} clip{'s' if n != 1 else ''}"
    if "re-encoded" in kinds:
        done += ", re-encoded"
    elif "audio re-encoded" in kinds:
        done += ", audio re-encoded"
    facts = _credit_facts(source, licence, origin)
    return {
        "source_id": source.source_id,
        "text": _tasl(facts["title"], facts["author"], origin, licence, done),
        **facts,
        "modifications": kinds,
        "clips": [
            {"clip_id": c["clip_id"], "start_ms": c["start_ms"], "end_ms": c["end_ms"], "text": c["text"]}
            for c in sorted(clips, key=lambda c: c["clip_id"])
        ],
    }


ATTRIBUTION_MD = "ATTRIBUTION.md"
ATTRIBUTION_JSON = "ATTRIBUTION.json"


def attribution_files(name: str, works: list[dict[str, Any]]) -> dict[str, bytes]:
    """``ATTRIBUTION.md`` and ``ATTRIBUTION.json`` of a build: one entry per source work, sorted by title.

    Nothing in them depends on the version or the time, so the same clips give the same bytes."""
    works = sorted(works, key=lambda w: (str(w["title"]).lower(), w["source_id"]))
    doc = {"build": name, "n_works": len(works), "n_clips": sum(len(w["clips"]) for w in works), "works": works}
    js = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode()
    lines = [
        f"# Attribution: build {name}",
        "",
        "Every clip of this build is a modified excerpt (cut, and where noted re-encoded) of the works below.",
        "Each clip's JSON carries its own attribution (`attribution`), and `index.parquet` its text.",
        "",
    ]
    titles = [str(w["title"]) for w in works]
    seen: dict[str, int] = {}
    for w in works:
        # Several files of one work (two excerpts of a film) are numbered under their shared title.
        t = str(w["title"])
        seen[t] = seen.get(t, 0) + 1
        n = titles.count(t)
        lines.append(f"## {w['title']}" + (f" ({seen[t]} of {n})" if n > 1 else ""))
        lines.append("")
        lines.append(w["text"])
        lines.append("")
        facts = [
            ("Author / rights holder", w["author"]),
            ("Source", w["source"]),
            ("Licence", f"{w['license_name'] or w['license']} (`{w['license']}`)" if w["license"] else None),
            ("Licence URL", w["license_url"]),
            ("Licence note", w["license_note"]),
            ("Modified", ", ".join(w["modifications"]) or "cut"),
            ("Clips", ", ".join(f"`{c['clip_id']}`" for c in w["clips"])),
        ]
        lines += [f"- {k}: {v}" for k, v in facts if v]
        lines.append("")
    return {ATTRIBUTION_MD: "\n".join(lines).encode(), ATTRIBUTION_JSON: js}


def _input_roots(con, source_ids: list[str]) -> dict[str, list[str]]:
    """The inputs (``manifests.uri`` of the owned listings) each source was added from."""
    try:
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    except Exception:  # pragma: no cover
        return {}
    if not {"memberships", "manifests"} <= have or not source_ids:
        return {}
    con.register("_cf_roots", pa.table({"id": pa.array(source_ids, pa.string())}))
    try:
        rows = con.execute(
            """SELECT m.source_id, f.uri FROM memberships m JOIN _cf_roots s ON m.source_id = s.id
               JOIN manifests f ON f.manifest_id = m.manifest_id WHERE f.uri IS NOT NULL
               ORDER BY m.source_id, f.ingested_at"""
        ).fetchall()
    finally:
        con.unregister("_cf_roots")
    out: dict[str, list[str]] = {}
    for sid, uri in rows:
        # `clipfactory ingest` of several owned folders records them joined by ", ".
        out.setdefault(sid, []).extend([uri, *(u for u in uri.split(", ") if u != uri)])
    return out


def _memberships(con, source_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Dataset memberships of each source, when the ingest tables exist."""
    try:
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    except Exception:  # pragma: no cover
        return {}
    if "memberships" not in have or not source_ids:
        return {}
    con.register("_cf_src", pa.table({"id": pa.array(source_ids, pa.string())}))
    try:
        cur = con.execute(
            "SELECT m.* FROM memberships m JOIN _cf_src s ON m.source_id = s.id ORDER BY m.source_id, m.dataset"
        )
        rows = dict_rows(cur)
    finally:
        con.unregister("_cf_src")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["source_id"], []).append(
            {k: r.get(k) for k in ("dataset", "manifest_id", "split", "label") if r.get(k) is not None}
        )
    return out


def lineage(
    source: SourceRecord,
    memberships: list[dict[str, Any]],
    decision: dict[str, Any] | None,
    attribution: str | None = None,
) -> dict[str, Any]:
    """The licence lineage of a clip: the pixels' licence, the platform, every dataset it came through,
    and the policy decision that let it into the build. ``attribution`` is the clip's TASL text (default:
    the short credit line of the work)."""
    chain: list[dict[str, Any]] = [
        {
            "kind": "content",
            "license": source.content_license,
            "rights_holder": source.rights_holder,
        },
        {"kind": "platform", "platform": source.platform},
    ]
    for m in memberships:
        chain.append({"kind": "dataset", **m})
    return {
        "content_license": source.content_license,
        "rights_holder": source.rights_holder,
        "attribution": attribution if attribution is not None else attribution_text(source),
        "lineage": chain,
        "decision": decision,
    }


# -- the policy gate -------------------------------------------------------------------------------------


def policy_check(
    catalog: Catalog, purpose: str, source_ids: list[str], settings=None
) -> tuple[set[str], dict[str, str], dict[str, dict[str, Any]]]:
    """Ask the policy gate about ``source_ids`` for ``purpose``.

    Returns ``(allowed, refused, decisions)``: the allowed ids, ``{source_id: "policy.<reason>"}`` for the
    rest, and the gate's decision per source (for the lineage). Without the gate module every source is
    refused (``policy.gate_unavailable``): a build never ships a source nobody checked.
    """
    ids_ = sorted(set(source_ids))
    if not ids_:
        return set(), {}, {}
    try:
        from ..policy import gate
    except ImportError:
        log.warning("the policy gate is not available; refusing every source")
        return set(), {s: "policy.gate_unavailable" for s in ids_}, {}
    evaluation = None
    if settings is not None:
        evaluation = list(settings.build.evaluation_manifests) or None
    gate.evaluate(catalog, purpose, settings=settings, source_ids=ids_, evaluation_datasets=evaluation)
    # Only this build's sources: stale decisions of other sources in the catalog are not its business.
    allowed_all = gate.allowed_source_ids(catalog, purpose, settings=settings, source_ids=ids_)
    decisions = stored_decisions(catalog, purpose, ids_)
    allowed = {s for s in ids_ if s in allowed_all}
    refused = {s: _reason(decisions.get(s) or {}) for s in ids_ if s not in allowed}
    return allowed, refused, decisions


def stored_decisions(catalog: Catalog, purpose: str, source_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The gate's stored decisions (``policy_decisions``) for ``source_ids`` and ``purpose``."""
    rows = catalog.query(
        """SELECT source_id, decision, effective_class, attribution, share_alike, reasons, policy_hash
           FROM policy_decisions WHERE purpose = ? AND source_id IN (SELECT unnest(?))""",
        [purpose, source_ids],
    )
    return {r["source_id"]: _jsonable({**r, "purpose": purpose}) for r in rows}


def _reason(decision: dict[str, Any]) -> str:
    for key in ("reason", "reasons"):
        v = decision.get(key)
        if isinstance(v, list | tuple) and v:
            v = v[0]
        if isinstance(v, dict):
            v = v.get("reason") or v.get("code")
        if isinstance(v, str) and v:
            return v if v.startswith("policy.") else f"policy.{v}"
    d = decision.get("decision")
    return f"policy.{d}" if isinstance(d, str) and d else "policy.not_allowed"


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# -- builds ----------------------------------------------------------------------------------------------


def _next_version(con, out_root: Path, name: str) -> int:
    row = con.execute("SELECT max(version) FROM builds WHERE name = ?", [name]).fetchall()
    n = int(row[0][0] or 0) if row else 0
    base = out_root / name
    if base.exists():
        for p in base.iterdir():
            m = re.fullmatch(r"v(\d+)", p.name)
            if m:
                n = max(n, int(m.group(1)))
    return n + 1


def _cut_details(con, clip_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not clip_ids:
        return {}
    con.register("_cf_clips", pa.table({"id": pa.array(clip_ids, pa.string())}))
    try:
        rows = con.execute(
            """SELECT o.item_id, o.detail FROM latest_outcomes o JOIN _cf_clips c ON o.item_id = c.id
               WHERE o.stage = 'media.cut' AND o.status = 'kept' ORDER BY o.recorded_at""",
        ).fetchall()
    finally:
        con.unregister("_cf_clips")
    return {r[0]: json.loads(r[1]) for r in rows if r[1]}


def shipped_thumbnail(jpg: bytes, cut: dict[str, Any] | None, settings, face_count: int | None = None) -> bytes:
    """The thumbnail a build with ``privacy.blur_faces`` ships: its faces blurred. ``media.cut`` found them
    (its detail's ``thumbnail_faces``: boxes in the thumbnail's pixels, an empty list for none, ``null`` for
    a face reported that no box was found for, blurred whole); a clip cut without that check is checked
    here with the same detector (``face_count`` above 0 and no box found: blurred whole). The JPEG is
    written again only where something is blurred."""
    from ..signals.faces import blur_detector, blurred_jpeg, thumbnail_faces

    cut = cut or {}
    if "thumbnail_faces" in cut:
        boxes = cut["thumbnail_faces"]
        if boxes == []:
            return jpg
        import numpy as np
        from PIL import Image

        with Image.open(io.BytesIO(jpg)) as im:
            rgb = np.asarray(im.convert("RGB"))
        return blurred_jpeg(rgb, None if boxes is None else [tuple(int(v) for v in b) for b in boxes])
    faces = settings.stage_config("signals.visual") if hasattr(settings, "stage_config") else {}
    detector = blur_detector(faces.get("face_detector", "blazeface"), min_score=faces.get("face_min_score", 0.5))
    rgb, boxes = thumbnail_faces(jpg, detector)
    if boxes or (face_count or 0) > 0:
        return blurred_jpeg(rgb, boxes or None)
    return jpg


def clip_json(
    clip: ClipRecord,
    source: SourceRecord,
    licence: dict[str, Any],
    cut: dict[str, Any] | None,
    jpg_sha256: str | None,
    *,
    origin: str | None = None,
    attribution: dict[str, Any] | None = None,
) -> bytes:
    """The ``<key>.json`` member: provenance, licence lineage and attribution, scores, caption, hashes.

    ``origin`` is what the build ships as ``origin_uri`` (:func:`work_origin`: the public URL, else a path
    relative to the input): the operator's full path stays in the catalog."""
    cut = dict(cut or {})
    start, end = file_span(clip, cut)
    doc = {
        "clip_id": clip.clip_id,
        "source_id": clip.source_id,
        "sha256": clip.content_sha256,
        "span": {
            "start_ms": start,
            "end_ms": end,
            "duration_ms": end - start,
            "planned_start_ms": clip.start_ms,
            "planned_end_ms": clip.end_ms,
            "start_frame": clip.start_frame,
            "end_frame": clip.end_frame,
        },
        "shot": {
            "index": clip.shot_index,
            "transition_in": clip.transition_in,
            "transition_out": clip.transition_out,
        },
        "cut": {
            "method": clip.cut_method,
            "file_start_ms": cut.get("start_ms"),
            "file_end_ms": cut.get("end_ms"),
            "encoder": cut.get("encoder"),
            "audio": cut.get("audio_method"),
        },
        "origin": {
            "platform": source.platform,
            "platform_id": source.platform_id,
            "url": source.url,
            "origin_uri": origin,
            "title": source.title,
            "content_sha256": source.content_sha256,
            "acquired_at": source.acquired_at,
        },
        "license": licence,
        "attribution": attribution,
        "scores": {
            "motion": clip.motion,
            "sharpness": clip.sharpness,
            "luma": clip.luma,
            "black_fraction": clip.black_fraction,
            "static_fraction": clip.static_fraction,
            "text_fraction": clip.text_fraction,
            "nsfw": clip.nsfw,
            "face_count": clip.face_count,
            "face_area": clip.face_area,
            "aesthetic": clip.aesthetic,
        },
        "caption": clip.caption,
        "caption_origin": caption_origin(clip),
        "captions": clip_captions(clip),
        "span_origin": clip.span_origin,
        "speech": speech_section(clip),
        "screen_text": clip.screen_text,
        "thumbnail_sha256": jpg_sha256,
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def clip_captions(clip: ClipRecord) -> list[dict[str, str]]:
    """Every caption of ``clip``, each with its ``origin``: ``manifest`` (``{"origin", "dataset",
    "caption"}``, from the manifests), ``vlm`` (``{"origin", "model", "caption"}``, from ``caption.vlm``;
    a rewrite of a manifest caption adds ``enhances``) and ``transcript`` (the words spoken in the clip,
    from ``signals.speech``, when there are any)."""
    out: list[dict[str, str]] = []
    if clip.captions:
        try:
            out = [{"origin": "manifest", **c} for c in json.loads(clip.captions) if isinstance(c, dict)]
        except ValueError:
            out = []
    if clip.transcript:
        out.append({"origin": "transcript", "caption": clip.transcript})
    return out


def caption_origin(clip: ClipRecord) -> str | None:
    """Where ``clip.caption`` came from: manifest, vlm or transcript (``None`` without a caption)."""
    if not clip.caption:
        return None
    return clip.caption_origin or "manifest"


def speech_section(clip: ClipRecord) -> dict[str, Any] | None:
    """``{"speech_ratio", "transcript"}`` when ``signals.speech`` ran on the clip, else ``None``."""
    if clip.speech_ratio is None and clip.transcript is None:
        return None
    return {"speech_ratio": clip.speech_ratio, "transcript": clip.transcript}


#: Fields of the clip JSON that say when, not what: they stay out of the build's content hash, so the same
#: footage fetched twice (or on two executors) gives the same build.
VOLATILE_FIELDS = (("origin", "acquired_at"),)


def _identity_sha256(js: bytes) -> str:
    doc = json.loads(js)
    for path in VOLATILE_FIELDS:
        node = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def content_hash(
    purpose: str, shard_size: int, rows: list[dict[str, Any]], files: dict[str, str] | None = None
) -> str:
    """Identity of a build's content: purpose, shard size, every member's hashes (rows sorted by
    ``clip_id``, each with ``clip_id``, ``mp4_sha256``, ``json_sha256``, ``jpg_sha256``) and the sha256 of
    the build-level files (``files``: ``{name: sha256}``, e.g. ``ATTRIBUTION.md`` and ``ATTRIBUTION.json``)."""
    h = hashlib.sha256(f"{purpose}|{shard_size}".encode())
    for r in rows:
        js = r.get("identity_sha256") or r["json_sha256"]
        h.update(f"|{r['clip_id']}:{r['mp4_sha256']}:{js}:{r['jpg_sha256']}".encode())
    for name in sorted(files or {}):
        h.update(f"|file:{name}:{files[name]}".encode())
    return h.hexdigest()[:32]


def _record_outcomes(con, run_id: str | None, rows: list[dict[str, Any]], sink: list | None = None) -> None:
    if sink is not None:  # the build.export stage: its executor records the outcome rows
        sink.extend(rows)
        return
    from ..catalog.outcomes import outcome_row, write_outcomes

    write_outcomes(
        con,
        [
            outcome_row(
                run_id, EXPORT_STAGE, EXPORT_VERSION, r.get("config_hash"), r["item_id"], r["status"],
                reason=r.get("reason"), detail=r.get("detail"), output_ids=r.get("output_ids") or [],
            )
            for r in rows
        ],
    )


def write_build(
    catalog: Catalog,
    settings,
    *,
    name: str,
    purpose: str,
    clips: list[ClipRecord],
    supersedes: str | None = None,
    run_id: str | None = None,
    shard_size: int | None = None,
    out: str | Path | None = None,
    outcome_sink: list | None = None,
) -> dict[str, Any]:
    """Export ``clips`` as a new version of build ``name`` for ``purpose``; returns the ``build.json`` dict.

    With ``outcome_sink``, the per-clip outcome rows are appended there instead of being recorded (the
    ``build.export`` stage hands them to its executor).

    Sources the policy gate does not allow for ``purpose`` are refused (dropped outcome rows); clips without
    a cut file are skipped. If the latest version of ``name`` holds exactly the same members (and nothing
    supersedes), it is returned unchanged with ``"status": "unchanged"``.
    """
    store = BlobStore(settings.store)
    shard_size = int(shard_size or settings.build.shard_size)
    # A build bound for an object store (``s3://…``) is written in a local staging folder first, then
    # uploaded file by file, build.json last (storage.publish_dir).
    out_url = str(out or settings.build.out).rstrip("/") if is_url(out or settings.build.out) else None
    # The catalog records the folder absolute: a later command (a takedown, verify, the web UI) may run
    # in another working directory, where a relative folder would name another place.
    out_root = local_cache(out_url) / "staging" if out_url else Path(out or settings.build.out).absolute()
    clips = list({c.clip_id: c for c in clips}.values())
    from ..fingerprints.dedup import dropped_clip_ids

    # Near-duplicates dropped by ``dedup.near`` stay out (their outcome rows say which copy was kept).
    duplicates = dropped_clip_ids(catalog)
    clips = [c for c in clips if c.clip_id not in duplicates]
    source_ids = sorted({c.source_id for c in clips})
    allowed, refused, decisions = policy_check(catalog, purpose, source_ids, settings)
    from ..fingerprints.guard import tombstoned_sources

    # taken-down footage never ships, also a near-copy analysed before the takedown (resumed since)
    for sid, why in tombstoned_sources(catalog, sorted(allowed)).items():
        allowed.discard(sid)
        refused[sid] = why
    config_hash = hashlib.sha256(f"{purpose}|{shard_size}".encode()).hexdigest()[:16]
    outcome_rows: list[dict[str, Any]] = []
    for c in clips:
        if c.source_id in refused:
            outcome_rows.append(
                {
                    "item_id": c.clip_id,
                    "status": "dropped",
                    "reason": refused[c.source_id],
                    "config_hash": config_hash,
                    "detail": {"source_id": c.source_id, "purpose": purpose},
                }
            )
    export = [c for c in clips if c.source_id in allowed and c.blob_uri]
    with catalog.read() as con:
        sources = {
            s.source_id: s for s in load_records(con, SourceRecord, sorted({c.source_id for c in export}))
        }
        members_of = _memberships(con, sorted(sources))
        roots_of = _input_roots(con, sorted(sources))
        cuts = _cut_details(con, [c.clip_id for c in export])
    export = [c for c in export if c.source_id in sources]
    balance_summary = None
    caps = dict(getattr(settings.build, "balance", None) or {})
    if caps:  # [build] balance: clips over a category's cap stay out, named (docs/semantic.md)
        export, balance_summary = _balance(catalog, export, caps, config_hash, outcome_rows)
    table = _license_table(settings)
    works: dict[str, dict[str, Any]] = {}  # source_id -> its licence record, shipped origin and clips
    for sid, src in sources.items():
        works[sid] = {
            "licence": license_record(src.content_license, table),
            "origin": work_origin(src, roots_of.get(sid)),
            "clips": [],
        }

    blur_faces = bool(getattr(getattr(settings, "privacy", None), "blur_faces", False))
    # Prepare every member's bytes (json, jpg) and hashes first: they decide whether anything changed.
    planned = []
    for shard, group in assign_shards(export, shard_size):
        for c in group:
            src = sources[c.source_id]
            jpg = (
                store.path_of(c.thumb_uri).read_bytes() if c.thumb_uri and store.exists(c.thumb_uri) else None
            )
            if jpg is not None and blur_faces:
                jpg = shipped_thumbnail(jpg, cuts.get(c.clip_id), settings, c.face_count)
            jpg_sha = hashlib.sha256(jpg).hexdigest() if jpg is not None else None
            work = works[c.source_id]
            credit = attribution_for(src, work["licence"], c, origin=work["origin"], cut=cuts.get(c.clip_id))
            span = file_span(c, cuts.get(c.clip_id))
            work["clips"].append({"clip_id": c.clip_id, "start_ms": span[0], "end_ms": span[1], **credit})
            licence = lineage(src, members_of.get(c.source_id, []), decisions.get(c.source_id), credit["text"])
            js = clip_json(
                c, src, licence, cuts.get(c.clip_id), jpg_sha, origin=work["origin"], attribution=credit
            )
            planned.append(
                {
                    "shard": shard,
                    "clip": c,
                    "source": src,
                    "json": js,
                    "jpg": jpg,
                    "clip_id": c.clip_id,
                    "mp4_sha256": c.content_sha256,
                    "json_sha256": hashlib.sha256(js).hexdigest(),
                    "identity_sha256": _identity_sha256(js),
                    "jpg_sha256": jpg_sha,
                    "attribution": licence["attribution"],
                    "origin": work["origin"],
                    "span": span,
                }
            )
    credits = attribution_files(
        name,
        [
            work_attribution(sources[sid], w["licence"], w["origin"], w["clips"])
            for sid, w in works.items()
            if w["clips"]
        ],
    )
    credit_sha = {n: hashlib.sha256(b).hexdigest() for n, b in credits.items()}
    build_hash = content_hash(purpose, shard_size, planned, credit_sha)

    with catalog.read() as con:
        latest = con.execute(
            "SELECT build_id, config, out_dir FROM builds WHERE name = ? ORDER BY version DESC LIMIT 1",
            [name],
        ).fetchall()
    if latest and supersedes is None:
        cfg = json.loads(latest[0][1] or "{}")
        held = (
            read_bytes_at(f"{latest[0][2]}/build.json") if cfg.get("content_hash") == build_hash else None
        )
        if held is not None:
            manifest = json.loads(held)
            manifest["status"] = "unchanged"
            manifest["out_dir"] = latest[0][2]
            with catalog.write() as con:
                _record_outcomes(con, run_id, outcome_rows, outcome_sink)
            return manifest

    with catalog.read() as con:
        version = _next_version(con, out_root, name)
    if supersedes is None and latest:
        supersedes = latest[0][0]
    build_id = f"{name}-v{version}"
    out_dir = out_root / name / f"v{version}"
    out_dir.mkdir(parents=True, exist_ok=True)

    shards: list[dict[str, Any]] = []
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for p in planned:
        by_shard.setdefault(p["shard"], []).append(p)
    for shard, rows in by_shard.items():
        members = []
        for p in rows:
            files: dict[str, bytes | Path] = {"mp4": store.path_of(p["clip"].blob_uri), "json": p["json"]}
            if p["jpg"] is not None:
                files["jpg"] = p["jpg"]
            members.append(ShardMember(p["clip_id"], files))
        shard_sha = write_shard(out_dir / shard, members)
        shards.append(
            {
                "name": shard,
                "n_clips": len(rows),
                "sha256": shard_sha,
                "bytes": (out_dir / shard).stat().st_size,
            }
        )

    index = _index_table(build_id, planned)
    with atomic_path(out_dir / "index.parquet") as tmp:
        pq.write_table(index, tmp)
    files = [{"name": "index.parquet", **_file_entry(out_dir / "index.parquet")}]
    for fname, data in sorted(credits.items()):
        with atomic_write(out_dir / fname, "wb") as fh:
            fh.write(data)
        files.append({"name": fname, "sha256": credit_sha[fname], "bytes": len(data)})
    created = datetime.now(UTC).replace(microsecond=0)
    manifest = {
        "build_id": build_id,
        "name": name,
        "version": version,
        "purpose": purpose,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "supersedes": supersedes,
        "n_clips": len(planned),
        "n_sources": len({p["clip"].source_id for p in planned}),
        "n_shards": len(shards),
        "shard_size": shard_size,
        "content_hash": build_hash,
        "shards": shards,
        "index": "index.parquet",
        "refused_sources": [{"source_id": s, "reason": r} for s, r in sorted(refused.items())],
        "files": files,
        "attribution": {"markdown": ATTRIBUTION_MD, "json": ATTRIBUTION_JSON},
        "attributions": sorted(
            w["text"] for w in json.loads(credits[ATTRIBUTION_JSON])["works"]
        ),
        "run_id": run_id,
        "status": "complete",
    }
    if balance_summary is not None:
        manifest["balance"] = balance_summary
    # The disclosure documents (datasheet, Croissant, regulatory summaries), computed from the index just
    # written and the catalog; they stay out of the content hash (they carry the build's time and id).
    from ..disclosures import write_reports

    reports = write_reports(
        catalog, settings, out_dir, manifest, statements=_earlier_statements(catalog, name, version)
    )
    manifest["files"] = files + reports["files"]
    manifest["reports"] = reports["reports"]
    manifest["report_statements"] = reports["statements"]  # what a takedown's rewrite of them states
    # The manifest is written last: its presence marks the build as complete. It names no local path
    # (builds are shipped); the returned dict adds ``out_dir`` for the caller.
    with atomic_write(out_dir / "build.json", "w") as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False))
    if out_url:
        staged, out_dir = out_dir, f"{out_url}/{name}/v{version}"
        try:
            publish_dir(staged, out_dir, last="build.json")
        except (FileNotFoundError, PermissionError) as exc:  # the bucket, not a file of the build
            from ..storage import location_error

            raise location_error("build.out", out_url, f"upload the build to {out_dir}", exc) from exc
        shutil.rmtree(staged, ignore_errors=True)
    manifest["out_dir"] = str(out_dir)

    outcome_rows += [
        {
            "item_id": p["clip_id"],
            "status": "kept",
            "config_hash": config_hash,
            "output_ids": [p["clip_id"]],
            "detail": {"build_id": build_id, "shard": p["shard"]},
        }
        for p in planned
    ]
    with catalog.write() as con:
        if supersedes:
            con.execute("UPDATE builds SET status = 'superseded' WHERE build_id = ?", [supersedes])
        con.execute(
            "INSERT INTO builds VALUES (?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?)",
            [
                build_id,
                name,
                version,
                purpose,
                created.replace(tzinfo=None),
                str(out_dir),
                len(planned),
                len(shards),
                supersedes,
                json.dumps(
                    {
                        "shard_size": shard_size,
                        "content_hash": build_hash,
                        "run_id": run_id,
                        "refused_sources": manifest["refused_sources"],
                    }
                ),
            ],
        )
        if planned:
            con.register(
                "_cf_members",
                pa.table(
                    {
                        "build_id": [build_id] * len(planned),
                        "clip_id": [p["clip_id"] for p in planned],
                        "source_id": [p["clip"].source_id for p in planned],
                        "shard": [p["shard"] for p in planned],
                        "member_key": [p["clip_id"] for p in planned],
                        "mp4_sha256": [p["mp4_sha256"] for p in planned],
                        "json_sha256": [p["json_sha256"] for p in planned],
                        "jpg_sha256": [p["jpg_sha256"] for p in planned],
                    }
                ),
            )
            try:
                con.execute("INSERT INTO build_members BY NAME SELECT * FROM _cf_members")
            finally:
                con.unregister("_cf_members")
        _record_outcomes(con, run_id, outcome_rows, outcome_sink)
    return manifest


_content_hash = content_hash  # the name the takedown rewrite imports


def _balance(catalog: Catalog, clips: list[ClipRecord], caps: dict[str, float], config_hash: str,
             outcome_rows: list[dict[str, Any]]) -> tuple[list[ClipRecord], dict[str, Any]]:
    """``[build] balance``: the clips that stay under every category's cap; the rest get dropped outcome
    rows (``build.balance_cap``). Returns the kept clips and the target/achieved summary."""
    from ..semantic.balance import REASON, balance, categories_of, check_caps

    check_caps(caps)
    category_of, known = categories_of(catalog, [c.source_id for c in clips])
    check_caps(caps, known)
    kept, dropped, summary = balance(clips, category_of, caps)
    for c, detail in dropped:
        outcome_rows.append({"item_id": c.clip_id, "status": "dropped", "reason": REASON,
                             "config_hash": config_hash, "detail": {"source_id": c.source_id, **detail}})
    return kept, summary


def _earlier_statements(catalog: Catalog, name: str, version: int) -> dict[str, Any] | None:
    """The operator's statements (``clipfactory report --statements``) recorded by the latest earlier
    version of the build ``name``, so that a new version states the same until told otherwise."""
    rows = catalog.query(
        "SELECT out_dir FROM builds WHERE name = ? AND version < ? ORDER BY version DESC LIMIT 1",
        [name, version],
    )
    if not rows or not rows[0]["out_dir"]:
        return None
    try:
        found = json.loads(read_bytes_at(f"{rows[0]['out_dir']}/build.json") or b"{}").get("report_statements")
    except (OSError, ValueError):
        return None
    return dict(found) if found else None


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _license_table(settings):
    """The policy's licence table (names, notes, obligations), or ``None`` without the policy module."""
    try:
        from ..policy.profiles import load_policy
    except ImportError:  # pragma: no cover
        return None
    return load_policy(settings).licenses


def _index_table(build_id: str, planned: list[dict[str, Any]]) -> pa.Table:
    rows = []
    for p in planned:
        c: ClipRecord = p["clip"]
        s: SourceRecord = p["source"]
        rows.append(
            {
                "build_id": build_id,
                "shard": p["shard"],
                "key": p["clip_id"],
                "clip_id": c.clip_id,
                "source_id": c.source_id,
                "start_ms": p["span"][0],
                "end_ms": p["span"][1],
                "duration_ms": p["span"][1] - p["span"][0],
                "planned_start_ms": c.start_ms,
                "planned_end_ms": c.end_ms,
                "cut_method": c.cut_method,
                "size_bytes": c.size_bytes,
                "content_license": s.content_license,
                "rights_holder": s.rights_holder,
                "attribution": p["attribution"],
                "origin_uri": p["origin"],
                "motion": c.motion,
                "sharpness": c.sharpness,
                "luma": c.luma,
                "black_fraction": c.black_fraction,
                "static_fraction": c.static_fraction,
                "text_fraction": c.text_fraction,
                "screen_text": c.screen_text,
                "nsfw": c.nsfw,
                "face_count": c.face_count,
                "face_area": c.face_area,
                "aesthetic": c.aesthetic,
                "caption": c.caption,
                "captions": c.captions,
                "caption_datasets": sorted({x["dataset"] for x in clip_captions(c) if x.get("dataset")}),
                "caption_origin": caption_origin(c),
                "speech_ratio": c.speech_ratio,
                "transcript": c.transcript,
                "span_origin": c.span_origin,
                "mp4_sha256": p["mp4_sha256"],
                "json_sha256": p["json_sha256"],
                "jpg_sha256": p["jpg_sha256"],
            }
        )
    schema = pa.schema(
        [
            ("build_id", pa.string()),
            ("shard", pa.string()),
            ("key", pa.string()),
            ("clip_id", pa.string()),
            ("source_id", pa.string()),
            ("start_ms", pa.int64()),
            ("end_ms", pa.int64()),
            ("duration_ms", pa.int64()),
            ("planned_start_ms", pa.int64()),
            ("planned_end_ms", pa.int64()),
            ("cut_method", pa.string()),
            ("size_bytes", pa.int64()),
            ("content_license", pa.string()),
            ("rights_holder", pa.string()),
            ("attribution", pa.string()),
            ("origin_uri", pa.string()),
            ("motion", pa.float64()),
            ("sharpness", pa.float64()),
            ("luma", pa.float64()),
            ("black_fraction", pa.float64()),
            ("static_fraction", pa.float64()),
            ("text_fraction", pa.float64()),
            ("screen_text", pa.string()),
            ("nsfw", pa.float64()),
            ("face_count", pa.int64()),
            ("face_area", pa.float64()),
            ("aesthetic", pa.float64()),
            ("caption", pa.string()),
            ("captions", pa.string()),
            ("caption_datasets", pa.list_(pa.string())),
            ("caption_origin", pa.string()),
            ("speech_ratio", pa.float64()),
            ("transcript", pa.string()),
            ("span_origin", pa.string()),
            ("mp4_sha256", pa.string()),
            ("json_sha256", pa.string()),
            ("jpg_sha256", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


# -- lookups ---------------------------------------------------------------------------------------------


def list_builds(catalog: Catalog, name: str | None = None) -> list[dict[str, Any]]:
    # The content hash says whether two builds hold the same clips and files (the same build on two executors,
    # a rebuild); it is in the build's configuration.
    sql = (
        "SELECT build_id, name, version, purpose, status, created_at, n_clips, n_shards, "
        "config->>'content_hash' AS content_hash, supersedes, out_dir FROM builds"
    )
    params: list[Any] = []
    if name:
        sql += " WHERE name = ?"
        params.append(name)
    return catalog.query(sql + " ORDER BY name, version", params)


def get_build(catalog: Catalog, build_id: str) -> dict[str, Any]:
    rows = catalog.query("SELECT * FROM builds WHERE build_id = ?", [build_id])
    if not rows:
        raise NotFoundError("no such build", item=build_id, fix="see `clipfactory builds list`")
    return rows[0]


def explain_section(con, source_id: str) -> dict[str, Any] | None:
    """The builds and clips that contain ``source_id`` (for ``clipfactory explain``), or ``None``."""
    try:
        rows = con.execute(
            """SELECT b.build_id, b.name, b.version, b.purpose, b.status, b.out_dir, m.clip_id, m.shard, m.mp4_sha256
               FROM build_members m JOIN builds b USING (build_id)
               WHERE m.source_id = ? ORDER BY b.name, b.version, m.clip_id""",
            [source_id],
        ).fetchall()
        n_clips = con.execute("SELECT count(*) FROM clips WHERE source_id = ?", [source_id]).fetchall()[0][0]
    except Exception:  # the media tables are not there yet
        return None
    if not rows and not n_clips:
        return None
    builds: dict[str, dict[str, Any]] = {}
    for b_id, name, version, purpose, status, out_dir, clip_id, shard, sha in rows:
        b = builds.setdefault(
            b_id,
            {
                "build_id": b_id,
                "name": name,
                "version": version,
                "purpose": purpose,
                "status": status,
                "out_dir": out_dir,
                "clips": [],
            },
        )
        b["clips"].append({"clip_id": clip_id, "shard": shard, "mp4_sha256": sha})
    return {"source_id": source_id, "n_clips": int(n_clips), "builds": list(builds.values())}
