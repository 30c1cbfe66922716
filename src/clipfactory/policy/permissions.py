"""Written acquisition permissions (``Settings.permissions_file``).

Some platforms' terms forbid downloading unless the platform grants permission (YouTube's do). Such
content is acquired only where the operator has recorded a written permission::

    [[permission]]
    platform   = "youtube"                       # a platform key of the registry
    scope      = "all"                           # all | datasets | sources
    datasets   = []                              # with scope = "datasets": members of these datasets
    source_ids = []                              # with scope = "sources": these sources
    purposes   = []                              # purposes it covers (empty: every purpose)
    granted_by = "YouTube LLC, partnerships"
    granted_at = 2026-01-15
    expires    = 2027-01-15                      # optional
    document   = "permissions/youtube-2026.pdf"  # the written permission, relative to this file
    sha256     = "..."                           # optional; checked against the document

The document must exist; a recorded hash must match it. An expired permission is ignored (and said so).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import PolicyError, describe_invalid
from ..ids import sha256_file


class Permission(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str
    scope: Literal["all", "datasets", "sources"] = "all"
    datasets: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    granted_by: str
    granted_at: dt.date
    expires: dt.date | None = None
    document: str
    sha256: str | None = None
    notes: str | None = None

    @field_validator("granted_at", "expires", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return v.date() if isinstance(v, dt.datetime) else v

    def expired(self, today: dt.date | None = None) -> bool:
        return self.expires is not None and (today or dt.date.today()) > self.expires

    def covers_purpose(self, purpose: str | None) -> bool:
        return not self.purposes or purpose is None or purpose in self.purposes

    def evidence(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Permissions:
    """The recorded permissions, by platform."""

    def __init__(self, items: list[Permission], source: str | None, digest: str):
        self.items = items
        self.source = source
        self.digest = digest

    def for_platform(self, platform: str, purpose: str | None = None) -> list[Permission]:
        return [p for p in self.items if p.platform == platform and p.covers_purpose(purpose)]

    def active(
        self, platform: str, purpose: str | None = None, today: dt.date | None = None
    ) -> list[Permission]:
        return [p for p in self.for_platform(platform, purpose) if not p.expired(today)]

    def __hash__(self) -> int:
        return hash(self.digest)


EMPTY = Permissions([], None, "none")


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: tuple[int, int]) -> Permissions:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}", item=path) from exc
    unknown = set(data) - {"permission"}
    if unknown:
        raise PolicyError(
            f"unknown section(s) {', '.join(sorted(unknown))}",
            item=path,
            fix="a permissions file holds [[permission]] tables",
        )
    items: list[Permission] = []
    h = hashlib.sha256()
    for i, raw in enumerate(data.get("permission") or []):
        where = f"{path} [[permission]] #{i + 1}"
        try:
            perm = Permission(**raw)
        except (ValidationError, TypeError) as exc:
            raise PolicyError(
                f"invalid permission: {describe_invalid(exc)}", item=where, fix="see docs/policy.md, 'Permissions'"
            ) from exc
        if perm.scope == "datasets" and not perm.datasets:
            raise PolicyError("scope = 'datasets' needs a datasets list", item=where)
        if perm.scope == "sources" and not perm.source_ids:
            raise PolicyError("scope = 'sources' needs a source_ids list", item=where)
        doc = Path(perm.document)
        if not doc.is_absolute():
            doc = p.parent / doc
        if not doc.is_file():
            raise PolicyError(
                "the permission's document is missing",
                item=str(doc),
                fix="keep the written permission beside the permissions file, or fix `document`",
            )
        digest = sha256_file(str(doc))
        if perm.sha256 and perm.sha256.lower() != digest:
            raise PolicyError(
                "the permission's document does not match its recorded sha256",
                item=str(doc),
                fix="restore the original document, or record the new hash after checking it",
            )
        perm = perm.model_copy(update={"document": str(doc), "sha256": digest})
        items.append(perm)
        h.update(perm.model_dump_json().encode())
    return Permissions(items, path, h.hexdigest()[:16])


def load_permissions(settings: Any = None, *, path: str | os.PathLike | None = None) -> Permissions:
    if path is None and settings is not None:
        path = getattr(settings, "permissions_file", None)
    if path is None:
        return EMPTY
    p = Path(path)
    if not p.exists():
        raise PolicyError("permissions file not found", item=str(p), fix="check permissions_file")
    return _load_cached(str(p.resolve()), (p.stat().st_mtime_ns, p.stat().st_size))


__all__ = ["Permission", "Permissions", "load_permissions", "EMPTY"]
