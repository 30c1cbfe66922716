"""A finished build version's folder, wherever it lies: a local folder or an object-store URL.

``[build] out = "s3://bucket/builds"`` puts a build's files in a bucket (``s3://bucket/builds/NAME/vN``),
and the catalog records that URL as the build's ``out_dir``. The commands that read a build (``verify``,
``report``, ``audit``, ``builds show``, the web UI's transparency pages) go through :class:`BuildFolder`,
which reads a local folder directly and an object-store folder through fsspec: small files are read
whole, and :meth:`BuildFolder.local` downloads the files a command needs into a temporary folder.
A URL is never turned into a :class:`pathlib.Path` (which would make ``s3://b/x`` the local path
``s3:/b/x``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import ClipfactoryError, StorageLocationError
from .storage import LOCATION_FIX, filesystem, is_url, upload_file

MANIFEST = "build.json"


class BuildFolder:
    """The folder of one build version: ``location`` is a local path or an fsspec URL (``s3://…``).

    ``build`` names the build in errors (its id, else the location)."""

    def __init__(self, location: str | os.PathLike, build: str | None = None):
        text = str(location)
        self.remote = is_url(text)
        self.location = text.rstrip("/") if self.remote else text
        self.build = build or self.location
        self._fs = None

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"BuildFolder({self.location!r})"

    # -- object storage --------------------------------------------------------------------------------
    @property
    def fs(self):
        if self._fs is None:
            self._fs, self._base = filesystem(self.location)
        return self._fs

    def _key(self, name: str) -> str:
        self.fs  # noqa: B018 - sets the base path
        return f"{self._base.rstrip('/')}/{name}"

    def _call(self, what: str, fn):
        """``fn()``, a request to the object store; a failure other than a missing object becomes one line
        naming the build, its location and the fix."""
        try:
            return fn()
        except FileNotFoundError:
            raise
        except ClipfactoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - credentials, endpoint, a refused request
            raise StorageLocationError(
                f"could not {what} of the build at {self.location}: {type(exc).__name__}: {exc}",
                item=self.build,
                fix=LOCATION_FIX,
            ) from exc

    # -- reading ---------------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """The local path of a file of a local folder (a remote folder has none: use :meth:`local`)."""
        if self.remote:
            raise ValueError(f"{self.location} is not a local folder")
        return Path(self.location) / name

    def exists(self, name: str) -> bool:
        if not self.remote:
            return (Path(self.location) / name).is_file()
        self.fs.invalidate_cache(self._key(name).rsplit("/", 1)[0])
        return bool(self._call(f"look up {name}", lambda: self.fs.isfile(self._key(name))))

    def read_bytes(self, name: str) -> bytes | None:
        """The bytes of the folder's file ``name``, or ``None`` when it has none."""
        if not self.remote:
            p = Path(self.location) / name
            return p.read_bytes() if p.is_file() else None

        def read():
            with self.fs.open(self._key(name), "rb") as fh:
                return fh.read()

        try:
            return self._call(f"read {name}", read)
        except FileNotFoundError:
            return None

    def manifest(self) -> dict[str, Any] | None:
        """The build's ``build.json``, or ``None`` when the folder has none."""
        data = self.read_bytes(MANIFEST)
        return None if data is None else json.loads(data)

    def names(self, suffix: str = "") -> list[str]:
        """The names of the folder's files (not hidden ones) that end in ``suffix``, sorted."""
        if not self.remote:
            d = Path(self.location)
            if not d.is_dir():
                return []
            return sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffix))
        base = self._key("").rstrip("/")
        self.fs.invalidate_cache(base)
        try:
            found = self._call("list the files", lambda: self.fs.ls(base, detail=True))
        except FileNotFoundError:
            return []
        out = []
        for e in found:
            name = str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") == "file" and not name.startswith(".") and name.endswith(suffix):
                out.append(name)
        return sorted(out)

    def fetch(self, name: str, dest: str | os.PathLike) -> bool:
        """Copy the folder's file ``name`` to the local path ``dest``; ``False`` when there is none."""
        if not self.remote:
            p = Path(self.location) / name
            if not p.is_file():
                return False
            shutil.copyfile(p, dest)
            return True
        try:
            self._call(f"download {name}", lambda: self.fs.get_file(self._key(name), str(dest)))
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            return False
        return True

    @contextlib.contextmanager
    def local(self, names: Iterable[str] | None = None) -> Iterator[Path]:
        """A local folder that holds the build's files ``names`` (those it has; all its files when
        ``None``): the folder itself when it is local, else a temporary folder they are downloaded to,
        removed afterwards."""
        if not self.remote:
            yield Path(self.location)
            return
        wanted = self.names() if names is None else list(dict.fromkeys(names))
        with tempfile.TemporaryDirectory(prefix=".cf-build-") as tmp:
            for name in wanted:
                if "/" in name or name.startswith("."):
                    continue
                self.fetch(name, Path(tmp) / name)
            yield Path(tmp)

    # -- writing ---------------------------------------------------------------------------------------
    def publish(self, local_dir: str | os.PathLike, names: Iterable[str]) -> None:
        """Upload the files ``names`` of ``local_dir`` into the folder (each atomically), ``build.json``
        last. A local folder is written by the caller itself: nothing is done."""
        if not self.remote:
            return
        order = sorted(dict.fromkeys(names), key=lambda n: n == MANIFEST)
        for name in order:
            src = Path(local_dir) / name
            if src.is_file():
                self._call(f"upload {name}", lambda src=src, name=name: upload_file(src, f"{self.location}/{name}"))


def build_folder(location: str | os.PathLike | None, build: str | None = None) -> BuildFolder:
    return BuildFolder(location or "", build)
