"""Owned media: folders, files and fsspec prefixes whose rights the operator declares.

Each media file becomes a :class:`SourceRecord` identified by its content (``sha256:<hex>``), with the
licence and rights holder declared on the command line (``--license SPDX --rights-holder NAME``) or in a
sidecar ``<file>.json`` (``{"license": ..., "rights_holder": ..., "title": ...}``; the sidecar wins).
A file with neither is reported, not ingested: owned media without a declared licence cannot be used.
So is a file that is not a video or audio file FFmpeg can read (a text file named ``notes.mp4``): each file's
container header is opened once with PyAV (:func:`media_problem`), so it is refused here rather than at
``media.probe``. Hashing is I/O bound and runs in a few threads; nothing here decodes video.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import Catalog
from ..errors import ManifestError
from ..ids import content_source_id
from ..records import SourceRecord
from .readers import RowError

#: The files a folder input takes (a file named on its own is taken whatever its name): containers, and raw
#: video streams (H.264/HEVC Annex B, MPEG-2, IVF, DV). Audio-only files are not video and are left out.
MEDIA_SUFFIXES = frozenset(
    (
        ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv .mxf .y4m"
        " .h264 .264 .h265 .265 .hevc .m2v .ivf .dv .vob .asf .f4v .nut .mjpeg .mjpg"
    ).split()
)
_CHUNK = 4 << 20

#: How the reason of a file :func:`media_problem` refuses starts, and what to do about it.
NOT_MEDIA = "not a readable video or audio file"
NOT_MEDIA_FIX = "convert it to a video (or audio) file, or leave it out of the inputs"
#: What to do about a file without a declared licence or rights holder.
NO_LICENCE_FIX = (
    "give --license SPDX --rights-holder NAME, or a sidecar <file>.json per file "
    "(a config's `license` and `rights_holder` apply only to its own `inputs`)"
)


@dataclass
class OwnedScan:
    """What a scan found: one record per distinct content, and the files that could not be used."""

    records: list[SourceRecord] = field(default_factory=list)
    problems: list[RowError] = field(default_factory=list)  # pointer = the file, reason = why
    files: int = 0
    not_media: int = 0  # how many of the problems are files that are not readable media


def validate_license(expr: str | None) -> str | None:
    """Normalise an SPDX expression; ``LicenseRef-...`` keys are accepted. Raises on anything else."""
    if expr is None or not expr.strip():
        return None
    return _validated(expr.strip())


@functools.lru_cache(maxsize=4096)
def _validated(expr: str) -> str:
    """``validate_license`` of a stripped expression, once per expression, with the one SPDX licensing
    object of the process (building it took about 55 ms, at every call before); an invalid expression
    raises each time."""
    from ..policy.taxonomy import _spdx

    info = _spdx().validate(expr)
    bad = [s for s in info.invalid_symbols if not str(s).startswith("LicenseRef-")]
    if bad or (info.errors and not info.invalid_symbols):
        raise ManifestError(
            f"not an SPDX licence expression: {expr!r}",
            item=expr,
            fix="use an SPDX id such as CC-BY-4.0, or LicenseRef-<name> for a custom licence",
        )
    return info.normalized_expression or expr


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, Any]]:
    """``(path, filesystem)`` for every media file under ``paths`` (local or fsspec), in sorted order."""
    for p in paths:
        sp = str(p)
        if _is_remote(sp):
            import fsspec

            fs, root = fsspec.core.url_to_fs(sp)
            if fs.isdir(root):
                found = sorted(f for f in fs.find(root) if Path(f).suffix.lower() in MEDIA_SUFFIXES)
            elif fs.exists(root):
                found = [root]
            else:
                raise ManifestError("no such file or folder", item=sp)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            for f in found:
                yield f"{protocol}://{f}" if "://" not in f else f, fs
            continue
        local = Path(sp.removeprefix("file://"))
        if local.is_dir():
            for f in sorted(local.rglob("*")):
                if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES and not f.name.startswith("."):
                    yield str(f.resolve()), None
        elif local.is_file():
            yield str(local.resolve()), None
        else:
            raise ManifestError("no such file or folder", item=sp, fix="check the path")


def input_root(path: str | os.PathLike) -> str:
    """The canonical form of an input given to ``add`` (a file, a folder or a URL prefix): local paths are
    made absolute, as :func:`scan_owned_files` records them in ``origin_uri``."""
    sp = str(path)
    if _is_remote(sp):
        return sp
    return str(Path(sp.removeprefix("file://")).resolve())


def _remote_key(uri: str) -> str:
    return uri.split("://", 1)[1].strip("/") if "://" in uri else uri.strip("/")


def relative_origin(origin_uri: str | None, roots: Iterable[str]) -> str | None:
    """``origin_uri`` relative to the first of ``roots`` (inputs given to ``add``) that holds it.

    A folder or prefix root gives the path below it (``clips/a.mp4``); a root that is the file itself gives
    its name. ``None`` when no root holds it. The result never names the operator's machine, so it is what
    a build ships (the catalog keeps the full ``origin_uri``).
    """
    if not origin_uri:
        return None
    for root in roots:
        if not root:
            continue
        if _is_remote(origin_uri) or _is_remote(root):
            if not (_is_remote(origin_uri) and _is_remote(root)):
                continue
            if origin_uri.split("://", 1)[0] != root.split("://", 1)[0]:
                continue
            o, r = _remote_key(origin_uri), _remote_key(root)
        else:
            o = str(Path(origin_uri.removeprefix("file://")))
            r = str(Path(root.removeprefix("file://")))
        if o == r:
            return o.rsplit("/", 1)[-1]
        if o.startswith(r.rstrip("/") + "/"):
            return o[len(r.rstrip("/")) + 1 :]
    return None


def _open(path: str, fs: Any):
    if fs is None:
        return open(path, "rb")
    return fs.open(path.split("://", 1)[1] if "://" in path else path, "rb")


def media_problem(path: str, fs: Any = None) -> str | None:
    """Why ``path`` is not a video or audio file FFmpeg can read, or ``None`` when it is one.

    Opens the container with PyAV and reads its header and stream descriptions (what ``av.open`` does:
    a few packets at most, nothing decoded past them), then closes it. Refused: a zero-byte file, a file
    FFmpeg cannot open (a text file named ``.mp4``), a text file FFmpeg would render as ANSI art (its
    ``tty`` demuxer), a still image, and a container with neither a video nor an audio stream.
    """
    try:
        if fs is None:
            if os.path.getsize(path) == 0:
                return f"{NOT_MEDIA}: it has zero bytes"
            return _container_problem(path)
        with _open(path, fs) as fh:
            if fh.read(1) == b"":
                return f"{NOT_MEDIA}: it has zero bytes"
            fh.seek(0)
            return _container_problem(fh)
    except OSError as exc:
        return f"cannot read: {exc}"


def _container_problem(source: Any) -> str | None:
    import av

    from ..media.probe import IMAGE_DEMUXERS, TEXT_CODECS, TEXT_DEMUXERS

    try:
        container = av.open(source, "r")
    except av.error.FFmpegError as exc:
        return f"{NOT_MEDIA} (FFmpeg: {exc.strerror or exc})"
    with container:
        fmt = container.format.name or ""
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        codecs = sorted({s.codec_context.name for s in streams if s.codec_context is not None})
        if fmt in TEXT_DEMUXERS or (codecs and set(codecs) <= TEXT_CODECS):
            return f"{NOT_MEDIA}: a text file (FFmpeg reads it as {fmt})"
        if fmt in IMAGE_DEMUXERS or fmt.endswith("_pipe"):
            return f"{NOT_MEDIA}: a still image ({', '.join(codecs)})"
        if not streams:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            return f"{NOT_MEDIA}: no video or audio stream (streams: {', '.join(kinds)})"
    return None


def _hash(path: str, fs: Any) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with _open(path, fs) as fh:
        while True:
            buf = fh.read(_CHUNK)
            if not buf:
                break
            h.update(buf)
            size += len(buf)
    return h.hexdigest(), size


def _sidecar(path: str, fs: Any) -> tuple[dict[str, Any] | None, str | None]:
    side = path + ".json"
    try:
        if fs is None:
            if not os.path.exists(side):
                return None, None
            text = Path(side).read_text(encoding="utf-8")
        else:
            key = side.split("://", 1)[1] if "://" in side else side
            if not fs.exists(key):
                return None, None
            with fs.open(key, "rb") as fh:
                text = fh.read().decode("utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable sidecar {Path(side).name}: {exc}"
    if not isinstance(data, dict):
        return None, f"sidecar {Path(side).name} is not a JSON object"
    return data, None


def listing_names(uris: list[str]) -> dict[str, str]:
    """How an owned manifest's listing names each file: local paths relative to the folder that holds them
    all, URLs as they are. A manifest's identity is what the files are, not where this machine keeps them,
    so the same media added from another folder (or machine) is the same manifest, and a build of it has
    the same content hash."""
    local = [u for u in uris if "://" not in u and os.path.isabs(u)]
    root = os.path.commonpath(local) if local else None
    if root is not None and (len(set(local)) == 1 or not os.path.isdir(root)):
        root = os.path.dirname(root)
    return {u: os.path.relpath(u, root) if root is not None and u in local else u for u in uris}


def scan_owned_files(
    paths: Iterable[str | os.PathLike],
    license: str | None = None,
    rights_holder: str | None = None,
    *,
    workers: int = 4,
) -> OwnedScan:
    """Hash and describe owned media files; files without a declared licence become problems."""
    default_license = validate_license(license)
    holder = rights_holder.strip() if rights_holder and rights_holder.strip() else None
    files = list(_iter_files(paths))
    scan = OwnedScan(files=len(files))
    if not files:
        return scan

    def one(item: tuple[str, Any]) -> tuple[str, SourceRecord | None, str | None]:
        path, fs = item
        bad_media = media_problem(path, fs)
        if bad_media:
            return path, None, bad_media
        side, side_err = _sidecar(path, fs)
        if side_err:
            return path, None, side_err
        side = side or {}
        try:
            lic = validate_license(side.get("license") or side.get("content_license")) or default_license
        except ManifestError as exc:
            return path, None, f"sidecar licence: {exc.message}"
        who = side.get("rights_holder") or side.get("rightsHolder") or holder
        if not lic or not who:
            need = " and no ".join(n for n, v in (("licence", lic), ("rights holder", who)) if not v)
            return (
                path,
                None,
                f"no {need} declared: give --license SPDX --rights-holder NAME, or a sidecar {Path(path).name}.json",
            )
        try:
            sha, size = _hash(path, fs)
        except OSError as exc:
            return path, None, f"cannot read: {exc}"
        rec = SourceRecord(
            source_id=content_source_id(sha),
            platform="owned",
            platform_id=sha,
            url=side.get("url"),
            content_sha256=sha,
            origin_uri=path,
            content_license=lic,
            rights_holder=str(who),
            uploader=side.get("uploader"),
            title=side.get("title") or Path(path).stem,
            size_bytes=size,
        )
        return path, rec, None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(files)))) as pool:
        results = list(pool.map(one, files))
    seen: set[str] = set()
    for path, rec, err in results:
        if err:
            scan.problems.append(RowError(None, err, None, path))
            scan.not_media += err.startswith(NOT_MEDIA)
        elif rec is not None and rec.source_id not in seen:
            seen.add(rec.source_id)
            scan.records.append(rec)
    return scan


def scan_owned(
    paths: Iterable[str | os.PathLike], license: str | None = None, rights_holder: str | None = None
) -> list[SourceRecord]:
    """Source records for owned media files (one per distinct content), sidecars honoured.

    Raises :class:`ManifestError` naming every file that lacks a declared licence or rights holder, or that
    is not a video or audio file (:func:`media_problem`); nothing is returned for the others then.
    """
    scan = scan_owned_files(paths, license, rights_holder)
    if scan.problems:
        shown = "; ".join(f"{p.pointer}: {p.reason}" for p in scan.problems[:5])
        more = f" (and {len(scan.problems) - 5} more)" if len(scan.problems) > 5 else ""
        fixes = [NOT_MEDIA_FIX] if scan.not_media else []
        if scan.not_media < len(scan.problems):
            fixes.append(NO_LICENCE_FIX)
        raise ManifestError(
            f"{len(scan.problems)} owned file(s) cannot be used: {shown}{more}", fix="; ".join(fixes)
        )
    return scan.records


def ingest_owned(
    catalog: Catalog,
    paths: Iterable[str | os.PathLike],
    *,
    license: str | None = None,
    rights_holder: str | None = None,
    dataset: str = "owned",
    opts: Any = None,
):
    """Register owned media as sources and members of ``dataset``, in one transaction."""
    from .ingest import _dataset_name, ingest_pre_rows

    paths = [str(p) for p in paths]
    dataset = _dataset_name(dataset)
    scan = scan_owned_files(paths, license, rights_holder)
    if not scan.files:
        raise ManifestError("no media files found", item=", ".join(paths), fix="check the folder or prefix")
    recs = scan.records
    named = listing_names([r.origin_uri for r in recs] + [p.pointer for p in scan.problems])
    listing = "\n".join(
        sorted(
            f"{named[r.origin_uri]}\t{r.content_sha256}\t{r.content_license}\t{r.rights_holder}\t{r.title}"
            for r in recs
        )
        + sorted(f"{named[p.pointer]}\t{p.reason}" for p in scan.problems)
    )
    manifest_id = hashlib.sha256(f"owned\n{dataset}\n{listing}".encode()).hexdigest()
    pre = pa.table(
        {
            "ord": pa.array(range(len(recs)), pa.int64()),
            "pointer": pa.array([r.origin_uri for r in recs], pa.string()),
            "platform": pa.array(["owned"] * len(recs), pa.string()),
            "pid": pa.array([r.content_sha256 for r in recs], pa.string()),
            "id_text": pa.array([r.origin_uri for r in recs], pa.string()),
            "url": pa.array([r.url for r in recs], pa.string()),
            "title": pa.array([r.title for r in recs], pa.string()),
            "content_sha256": pa.array([r.content_sha256 for r in recs], pa.string()),
            "origin_uri": pa.array([r.origin_uri for r in recs], pa.string()),
            "size_bytes": pa.array([r.size_bytes for r in recs], pa.int64()),
            "content_license": pa.array([r.content_license for r in recs], pa.string()),
            "rights_holder": pa.array([r.rights_holder for r in recs], pa.string()),
        }
    )
    uri = paths[0] if len(paths) == 1 else ", ".join(paths)
    return ingest_pre_rows(
        catalog,
        pre,
        manifest_id=manifest_id,
        dataset=dataset,
        uri=uri,
        fmt="owned",
        registry_key="owned" if dataset == "owned" else None,
        opts=opts,
        extra_errors=scan.problems,
    )
