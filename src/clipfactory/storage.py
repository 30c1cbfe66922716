"""Content-addressed blob store and atomic file writes.

Blobs are keyed by sha256 and live at ``<root>/blobs/<aa>/<bb>/<hex>``. Every write goes to a
temporary file in the same directory and is renamed into place, so a crash never leaves a
half-written blob under its final name. URIs look like ``blob:sha256:<hex>``.

A root that is a URL (``s3://bucket/prefix``, or any other fsspec protocol) gives an
:class:`ObjectBlobStore`: blobs live in the object store under the same keys, and each machine keeps a
local cache of the blobs it wrote or read (media libraries decode local files). Uploads are atomic too
(:func:`upload_file`): an object appears under its final name only when all of it is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import ClipfactoryError, NotFoundError, StorageLocationError
from .ids import sha256_file

BLOB_PREFIX = "blob:sha256:"


def _umask() -> int:
    """The process umask. Linux shows it in ``/proc/self/status``; elsewhere it can only be read by setting
    it, and it is set straight back."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(fd: int) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (always 0600) the mode ``open()`` would have given it:
    0666 less the umask (0644 under the usual umask 022)."""
    os.fchmod(fd, 0o666 & ~_umask())


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[BinaryIO]:
    """Write to a temporary sibling, fsync, then rename over ``path``. On error the target is untouched.

    The file gets the mode a plain ``open()`` gives a new file (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        _new_file_mode(fd)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write with another library; rename it over ``path`` on success.

    The temporary file has the mode a plain ``open()`` gives a new file (0666 less the umask); a library
    that replaces it instead of writing into it makes its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    try:
        _new_file_mode(fd)
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def blob_uri(sha256_hex: str) -> str:
    return BLOB_PREFIX + sha256_hex


def sha_of_uri(uri: str) -> str:
    if not uri.startswith(BLOB_PREFIX):
        raise ValueError(f"not a blob URI: {uri!r}")
    return uri[len(BLOB_PREFIX) :]


def is_url(location: str | os.PathLike | None) -> bool:
    """Whether ``location`` names an object store (``s3://…``, ``gs://…``, ``memory://…``) rather than a
    local path (``file://`` counts as local)."""
    text = str(location or "")
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isalnum() and scheme.lower() != "file"


class BlobStore:
    """A local content-addressed store; ``BlobStore("s3://…")`` gives an :class:`ObjectBlobStore`, which
    keeps the same interface."""

    def __new__(cls, root: str | os.PathLike, *args, **kwargs):
        if cls is BlobStore and is_url(root):
            return super().__new__(ObjectBlobStore)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, sha256_hex: str) -> Path:
        return self.root / "blobs" / sha256_hex[:2] / sha256_hex[2:4] / sha256_hex

    def path_of(self, uri: str) -> Path:
        p = self.path(sha_of_uri(uri))
        if not p.exists():
            raise NotFoundError(
                f"blob is missing from the store at {self.root} (no file {p})", item=uri,
                fix="re-acquire the source (`clipfactory fetch`), or give the store that holds it (--store)",
            )
        return p

    def exists(self, uri_or_sha: str) -> bool:
        sha = sha_of_uri(uri_or_sha) if uri_or_sha.startswith(BLOB_PREFIX) else uri_or_sha
        return self.path(sha).exists()

    def incoming(self) -> Path:
        d = self.root / "incoming"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def new_part(self, prefix: str = ".put.") -> tuple[int, str]:
        """A new temporary file in ``incoming/`` for a blob being written: ``(fd, path)``. Its name ends in
        ``.part`` (what :meth:`clean_incoming` removes) and its mode is what ``open()`` gives a new file,
        so blobs follow the umask like every other file the store holds."""
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=self.incoming())
        _new_file_mode(fd)
        return fd, tmp

    def put_file(self, src: str | os.PathLike) -> tuple[str, int]:
        """Copy a file in, hashing as it streams. Returns ``(uri, size)``."""
        with open(src, "rb") as fin:
            uri, _, size = self.put_stream(fin)
        return uri, size

    def put_stream(self, fh, prefix: str = ".put.") -> tuple[str, str, int]:
        """Stream an open binary file in (a temp file ``prefix*.part`` in ``incoming/``, hashed as it is
        written, then :meth:`adopt`). Returns ``(uri, sha256, size)``; an error leaves no temp file."""
        h = hashlib.sha256()
        size = 0
        fd, tmp = self.new_part(prefix)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    buf = fh.read(1 << 20)
                    if not buf:
                        break
                    h.update(buf)
                    size += len(buf)
                    out.write(buf)
                out.flush()
                os.fsync(out.fileno())
            sha = h.hexdigest()
            return self.adopt(tmp, sha), sha, size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> str:
        return self._keep_bytes(hashlib.sha256(data).hexdigest(), data)

    def _keep_bytes(self, sha: str, data: bytes) -> str:
        """Write ``data`` (of hash ``sha``) to its local path unless it is there; its blob URI."""
        target = self.path(sha)
        if not target.exists():
            with atomic_write(target) as fh:
                fh.write(data)
        return blob_uri(sha)

    def adopt(self, tmp_path: str | os.PathLike, sha256_hex: str) -> str:
        """Move a fully written and hashed temporary file into place (same filesystem)."""
        target = self.path(sha256_hex)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.unlink(tmp_path)
        else:
            os.replace(tmp_path, target)
        return blob_uri(sha256_hex)

    def delete(self, uri_or_sha: str) -> bool:
        sha = sha_of_uri(uri_or_sha) if uri_or_sha.startswith(BLOB_PREFIX) else uri_or_sha
        p = self.path(sha)
        try:
            p.unlink()
            return True
        except FileNotFoundError:
            return False

    def iter_blobs(self) -> Iterator[str]:
        base = self.root / "blobs"
        if not base.exists():
            return
        for p in base.glob("*/*/*"):
            if p.is_file() and not p.name.startswith("."):
                yield blob_uri(p.name)

    def clean_incoming(self) -> int:
        """Remove leftovers of interrupted writes. Returns how many files were removed."""
        n = 0
        d = self.root / "incoming"
        if d.exists():
            for p in d.iterdir():
                if p.name.endswith(".part"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    def copy_out(self, uri: str, dest: str | os.PathLike) -> None:
        shutil.copyfile(self.path_of(uri), dest)


# -- object storage ---------------------------------------------------------------------------------------
#: Parts of a multipart upload, in bytes (S3 wants at least 5 MiB for every part but the last). A file
#: smaller than one part is sent in one request.
PART_SIZE = int(os.environ.get("CLIPFACTORY_UPLOAD_PART_BYTES", 64 * 2**20))


def filesystem(url: str):
    """The fsspec filesystem of ``url`` and the path inside it. A missing protocol package (``s3fs``)
    raises the error that names its install command."""
    from .errors import require

    fsspec = require("fsspec", "s3", feature="object storage")
    protocol = url.partition("://")[0].lower()
    if protocol in ("s3", "s3a"):
        require("s3fs", "s3", feature="storage on S3")
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


#: Protocols whose first path segment is a bucket (or container) that must exist before anything is written.
BUCKET_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs")

LOCATION_FIX = (
    "check that the bucket exists and that this machine's credentials (AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY or an instance role) and endpoint (AWS_ENDPOINT_URL) reach it, then run the "
    "command again"
)


def location_error(
    setting: str, url: str, what: str, exc: BaseException | None = None, *,
    cls: type[StorageLocationError] = StorageLocationError, fix: str = LOCATION_FIX,
) -> StorageLocationError:
    """The one-line error for an object-store location of the settings (``store = s3://bucket/x``) that this
    machine cannot use: the setting, what failed and why, and the fix."""
    cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return cls(f"could not {what}{cause}", item=f"{setting} = {url}", fix=fix)


def check_location(setting: str, url: str) -> None:
    """Check that the bucket of the object-store location ``url`` (the value of the setting ``setting``)
    exists and can be listed with this machine's credentials and endpoint; otherwise raise
    :class:`~clipfactory.errors.StorageLocationError` naming the setting, the bucket and the fix. Locations
    without buckets (local folders, ``memory://``) pass."""
    if not is_url(url):
        return
    protocol = url.partition("://")[0].lower()
    if protocol not in BUCKET_PROTOCOLS:
        return
    fs, path = filesystem(url)
    bucket = path.strip("/").split("/", 1)[0]
    try:
        fs.invalidate_cache(bucket)
        if protocol in ("s3", "s3a") and hasattr(fs, "call_s3"):
            fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)  # one request, whatever the bucket holds
        else:
            fs.ls(bucket, detail=False)
    except ClipfactoryError:
        raise
    except Exception as exc:
        raise location_error(setting, url, f"list the bucket {bucket!r}", exc) from exc


def upload_file(src: str | os.PathLike, url: str, *, part_size: int | None = None) -> None:
    """Copy a local file to ``url`` so that the object appears only complete: parts of a multipart upload
    become an object when the upload completes, after the last byte, and an error (or a killed process)
    before that leaves no object under the name (an aborted or abandoned upload is invisible; S3's
    lifecycle rule for incomplete uploads removes what a killed process left)."""
    fs, path = filesystem(url)
    size = part_size or PART_SIZE
    with open(src, "rb") as fin:
        write_object(fs, path, iter(lambda: fin.read(min(size, 8 * 2**20)), b""), part_size=size)


def write_object(fs, path: str, chunks, *, part_size: int | None = None) -> None:
    """Write the byte ``chunks`` to ``path`` on ``fs`` atomically (see :func:`upload_file`)."""
    fh = fs.open(path, "wb", block_size=part_size or PART_SIZE)
    try:
        for chunk in chunks:
            fh.write(chunk)
    except BaseException:
        # Closing would commit what was written so far: discard aborts the multipart upload instead.
        discard = getattr(fh, "discard", None)
        if discard is not None:
            with contextlib.suppress(Exception):
                discard()
            fh.closed = True  # nothing more to flush when the file object is collected
        raise
    fh.close()


def local_cache(url: str) -> Path:
    """The local folder that caches what this machine read from or wrote to ``url``:
    ``$CLIPFACTORY_CACHE_DIR`` (default ``~/.cache/clipfactory``) ``/stores/<hash of the url>``."""
    base = Path(os.environ.get("CLIPFACTORY_CACHE_DIR") or Path.home() / ".cache" / "clipfactory")
    return base / "stores" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


class ObjectBlobStore(BlobStore):
    """Blobs on an object store (``s3://bucket/prefix`` through fsspec and s3fs), with a local cache.

    Every blob written (:meth:`put_file`, :meth:`put_bytes`, :meth:`adopt`) is uploaded atomically under
    ``<url>/blobs/<aa>/<bb>/<hex>`` and kept in the cache; :meth:`path_of` downloads a blob that is not
    cached, so any machine given the same URL reads the same blobs. The cache folder is also the store's
    local ``root``: scratch files, the incoming folder and the other local files of the store (quarantine,
    takedown evidence, fingerprint indexes) live there, on the machine that writes them. Credentials and
    the endpoint come from the usual AWS settings (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, …).
    """

    def __init__(self, root: str | os.PathLike, cache: str | os.PathLike | None = None):
        self.url = str(root).rstrip("/")
        super().__init__(cache or local_cache(self.url))
        self._fs = None

    def __reduce__(self):  # a stage context pickles the URL, not the client
        return (ObjectBlobStore, (self.url, self.root))

    @property
    def fs(self):
        if self._fs is None:
            self._fs, self._base = filesystem(self.url)
        return self._fs

    def _write(self, what: str, fn):
        """``fn()``, a write to the object store. A missing bucket or a refused request (which s3fs raises as
        ``FileNotFoundError`` / ``PermissionError``) is about the ``store`` setting, not about the item being
        written: it becomes the error that names the setting and the fix, never one a caller could take for
        a missing input file."""
        try:
            return fn()
        except (FileNotFoundError, PermissionError) as exc:
            raise location_error("store", self.url, what, exc) from exc

    def key(self, sha256_hex: str) -> str:
        self.fs  # noqa: B018 - sets the base path
        return f"{self._base}/blobs/{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}"

    def url_of(self, uri: str) -> str:
        """The object URL of a blob URI."""
        sha = sha_of_uri(uri)
        return f"{self.url}/blobs/{sha[:2]}/{sha[2:4]}/{sha}"

    def path_of(self, uri: str) -> Path:
        sha = sha_of_uri(uri)
        p = self.path(sha)
        if p.exists():
            return p
        fd, tmp = self.new_part(".get.")
        os.close(fd)
        try:
            try:
                self.fs.get_file(self.key(sha), tmp)
            except FileNotFoundError:
                raise NotFoundError(
                    f"blob is missing from the store at {self.url} (no object {self.key(sha)})", item=uri,
                    fix="re-acquire the source (`clipfactory fetch`), or give the store that holds it (--store)",
                ) from None
            got = sha256_file(tmp)
            if got != sha:  # a damaged object never enters the cache under another's name
                raise NotFoundError(
                    f"the object store holds other bytes for this blob (sha256 {got})",
                    item=uri,
                    fix="delete the object and re-acquire the source",
                )
            p.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, p)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return p

    def exists(self, uri_or_sha: str) -> bool:
        sha = sha_of_uri(uri_or_sha) if uri_or_sha.startswith(BLOB_PREFIX) else uri_or_sha
        return self.path(sha).exists() or self.fs.exists(self.key(sha))

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        key = self.key(sha)
        if not self.fs.exists(key):
            self._write(f"write the blob {key}", lambda: write_object(self.fs, key, [data]))
        return self._keep_bytes(sha, data)

    def adopt(self, tmp_path: str | os.PathLike, sha256_hex: str) -> str:
        """Upload a fully written and hashed local file (unless the store has the blob), then keep it in
        the cache."""
        key = self.key(sha256_hex)
        if not self.fs.exists(key):
            with open(tmp_path, "rb") as fin:
                chunks = iter(lambda: fin.read(8 * 2**20), b"")
                self._write(f"write the blob {key}", lambda: write_object(self.fs, key, chunks))
        return super().adopt(tmp_path, sha256_hex)

    def delete(self, uri_or_sha: str) -> bool:
        sha = sha_of_uri(uri_or_sha) if uri_or_sha.startswith(BLOB_PREFIX) else uri_or_sha
        cached = super().delete(sha)
        key = self.key(sha)
        if self.fs.exists(key):
            self.fs.rm_file(key)
            return True
        return cached

    def iter_blobs(self) -> Iterator[str]:
        self.fs  # noqa: B018 - sets the base path
        base = f"{self._base}/blobs"
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        for key in found:
            name = key.rsplit("/", 1)[-1]
            if len(name) == 64 and not name.startswith("."):
                yield blob_uri(name)


def publish_dir(local_dir: str | os.PathLike, url: str, *, last: str | None = None) -> None:
    """Upload every file of ``local_dir`` to ``url`` (atomically each), ``last`` after all the others:
    a reader that waits for that file (a build's ``build.json``) finds everything else in place."""
    local_dir = Path(local_dir)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == last)
    for p in files:
        upload_file(p, f"{url.rstrip('/')}/{p.relative_to(local_dir).as_posix()}")


def read_bytes_at(location: str | os.PathLike) -> bytes | None:
    """The bytes of a local file or an object URL, or ``None`` where there is none."""
    if is_url(location):
        fs, path = filesystem(str(location))
        try:
            with fs.open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
    p = Path(location)
    return p.read_bytes() if p.is_file() else None
