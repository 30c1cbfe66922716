"""Content-addressed blob store and atomic file writes.

Blobs are keyed by sha256 and live at ``<root>/blobs/<aa>/<bb>/<hex>``. Every write goes to a
temporary file in the same directory and is renamed into place, so a crash never leaves a
half-written blob under its final name. URIs look like ``blob:sha256:<hex>``.
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

from .errors import NotFoundError

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


class BlobStore:
    """A local content-addressed store. Remote stores (s3 and others through fsspec) are on the roadmap
    and keep the same interface."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, sha256_hex: str) -> Path:
        return self.root / "blobs" / sha256_hex[:2] / sha256_hex[2:4] / sha256_hex

    def path_of(self, uri: str) -> Path:
        p = self.path(sha_of_uri(uri))
        if not p.exists():
            raise NotFoundError("blob is missing from the store", item=uri, fix="re-acquire the source")
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
        h = hashlib.sha256()
        size = 0
        fd, tmp = self.new_part()
        try:
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                while True:
                    buf = fin.read(1 << 20)
                    if not buf:
                        break
                    h.update(buf)
                    size += len(buf)
                    fout.write(buf)
                fout.flush()
                os.fsync(fout.fileno())
            return self.adopt(tmp, h.hexdigest()), size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
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
