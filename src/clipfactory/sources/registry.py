"""The dataset and platform registry: a data file, merged with the user's own.

The built-in entries live in ``sources/registry/datasets.toml`` (every dataset of the domain notes, and the
platforms their pixels come from). A user file (``Settings.registry_file``) adds entries or overrides
fields of existing ones: a ``[datasets.<key>]`` table with the same key is merged field by field over
the built-in entry. Nothing here is code-level knowledge about a dataset: change the data, not the code.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import PolicyError, describe_invalid

USE_CLASSES = ("commercial", "unspecified", "non-commercial", "academic-only")


class DatasetEntry(BaseModel):
    """One dataset: its artefact licence, where its pixels come from, and what it was drawn from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str | None = None
    homepage: str | None = None
    annotation_license: str | None = None
    license_name: str | None = None
    license_class: Literal["commercial", "unspecified", "non-commercial", "academic-only"] | None = None
    attribution: bool | None = None
    share_alike: bool | None = None
    content_source: str | None = None
    derived_from: tuple[str, ...] = ()
    withdrawn: dt.date | None = None
    withdrawn_reason: str | None = None
    no_redistribution: bool = False
    needs_review: bool = False
    delete_on_request: bool = False
    evaluation_splits: tuple[str, ...] = ()
    distributed_as: str | None = None
    notes: str | None = None

    @field_validator("withdrawn", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.date()
        return v

    @property
    def needs_check(self) -> bool:
        """Whether some fact of this entry came from a secondary source (marked *(check)*)."""
        return "(check" in (self.notes or "")


class PlatformEntry(BaseModel):
    """A platform that hosts pixels, and how its terms let us acquire them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str | None = None
    kind: str | None = None
    hosts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    download: Literal["local", "allowed", "permission_required"] = "allowed"
    default_content_license: str | None = None
    terms_license: str | None = None
    terms_url: str | None = None
    notes: str | None = None


class Registry:
    """Datasets and platforms by key, with lineage helpers."""

    def __init__(
        self, datasets: dict[str, DatasetEntry], platforms: dict[str, PlatformEntry], sources: list[str]
    ):
        self.datasets = datasets
        self.platforms = platforms
        self.sources = sources
        self._alias = {}
        for key, p in platforms.items():
            self._alias[key] = key
            for a in p.aliases:
                self._alias[a.lower()] = key
        self._check()

    # -- validation --------------------------------------------------------------------------------
    def _check(self) -> None:
        for key, d in self.datasets.items():
            for parent in d.derived_from:
                if parent not in self.datasets:
                    raise PolicyError(
                        f"dataset {key!r} is derived from {parent!r}, which the registry does not know",
                        item=key,
                        fix=f"add a [datasets.{parent}] entry to your registry file",
                    )
            if d.content_source and self.platform(d.content_source) is None:
                raise PolicyError(
                    f"dataset {key!r} names content source {d.content_source!r}, which is not a known platform",
                    item=key,
                    fix=f"add a [platforms.{d.content_source}] entry to your registry file",
                )
            self.chain(key)  # raises on cycles

    # -- lookups -----------------------------------------------------------------------------------
    def dataset(self, key: str) -> DatasetEntry | None:
        return self.datasets.get(key)

    def platform(self, key: str | None) -> PlatformEntry | None:
        if not key:
            return None
        k = self._alias.get(key.strip().lower())
        return self.platforms.get(k) if k else None

    def platform_key(self, key: str | None) -> str | None:
        """The canonical platform key for a spelling in ``sources.platform`` (or ``None`` if unknown)."""
        if not key:
            return None
        return self._alias.get(key.strip().lower())

    def platform_for_host(self, host: str | None) -> PlatformEntry | None:
        """The platform whose host list covers ``host`` (sub-domains included)."""
        if not host:
            return None
        host = host.strip().lower().rstrip(".")
        if ":" in host:
            host = host.split(":", 1)[0]
        for p in self.platforms.values():
            for h in p.hosts:
                if host == h or host.endswith("." + h):
                    return p
        return None

    def host_table(self) -> list[tuple[str, str]]:
        """(host, platform key) pairs for vectorised matching in SQL."""
        return [(h, p.key) for p in self.platforms.values() for h in p.hosts]

    def chain(self, key: str) -> list[str]:
        """The dataset and every dataset it derives from, depth first, each once."""
        out: list[str] = []

        def walk(k: str, path: tuple[str, ...]) -> None:
            if k in path:
                raise PolicyError(
                    f"dataset lineage has a cycle: {' <- '.join((*path, k))}",
                    item=k,
                    fix="fix derived_from in the registry file",
                )
            if k in out:
                return
            out.append(k)
            entry = self.datasets.get(k)
            for parent in entry.derived_from if entry else ():
                walk(parent, (*path, k))

        walk(key, ())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "datasets": [_entry_dict(d) for d in self.datasets.values()],
            "platforms": [_entry_dict(p) for p in self.platforms.values()],
        }

    def digest(self) -> str:
        payload = json.dumps(
            {
                "datasets": {k: _entry_dict(v) for k, v in sorted(self.datasets.items())},
                "platforms": {k: _entry_dict(v) for k, v in sorted(self.platforms.items())},
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _entry_dict(entry: BaseModel) -> dict[str, Any]:
    d = entry.model_dump(mode="json")
    if isinstance(entry, DatasetEntry):
        d["needs_check"] = entry.needs_check
    return d


def builtin_registry_text() -> str:
    return resources.files("clipfactory.sources").joinpath("registry/datasets.toml").read_text()


def read_toml(path: str | os.PathLike, what: str, fix: str) -> dict[str, Any]:
    """The TOML file ``path`` of the registry or the policy: where it is missing the error says
    ``WHAT not found`` with ``fix``; where it is not valid TOML, what the parser says."""
    p = Path(path)
    if not p.exists():
        raise PolicyError(f"{what} not found", item=str(p), fix=fix)
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}", item=str(p)) from exc


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(extra) - {"datasets", "platforms"}
    if unknown:
        raise PolicyError(
            f"unknown registry section(s): {', '.join(sorted(unknown))}",
            item=where,
            fix="a registry file has [datasets.<key>] and [platforms.<key>] tables",
        )
    out = {k: {kk: dict(vv) for kk, vv in v.items()} for k, v in base.items()}
    for section in ("datasets", "platforms"):
        for key, fields in (extra.get(section) or {}).items():
            if not isinstance(fields, dict):
                raise PolicyError(f"[{section}.{key}] must be a table", item=where)
            out.setdefault(section, {}).setdefault(key, {}).update(fields)
    return out


def _build(data: dict[str, Any], sources: list[str]) -> Registry:
    datasets: dict[str, DatasetEntry] = {}
    platforms: dict[str, PlatformEntry] = {}
    try:
        for key, fields in (data.get("platforms") or {}).items():
            platforms[key] = PlatformEntry(key=key, **fields)
        for key, fields in (data.get("datasets") or {}).items():
            datasets[key] = DatasetEntry(key=key, **fields)
    except ValidationError as exc:
        raise PolicyError(
            f"invalid registry entry: {describe_invalid(exc)}", item=" + ".join(sources), fix="see docs/policy.md, 'Registry'"
        ) from exc
    return Registry(datasets, platforms, sources)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str | None, mtime: tuple[int, int] | None) -> Registry:
    data = tomllib.loads(builtin_registry_text())
    sources = ["builtin:sources/registry/datasets.toml"]
    if path:
        data = _merge(data, read_toml(path, "registry file", "check registry_file / --registry"), path)
        sources.append(path)
    return _build(data, sources)


def load_registry(settings: Any = None, *, path: str | os.PathLike | None = None) -> Registry:
    """The built-in registry merged with ``path`` (or ``settings.registry_file``)."""
    if path is None and settings is not None:
        path = getattr(settings, "registry_file", None)
    if path is None:
        return _load_cached(None, None)
    p = Path(path)
    if not p.exists():
        raise PolicyError("registry file not found", item=str(p), fix="check registry_file / --registry")
    return _load_cached(str(p.resolve()), (p.stat().st_mtime_ns, p.stat().st_size))


def list_datasets(settings: Any = None) -> list[dict[str, Any]]:
    """Registry entries as plain dicts (what ``clipfactory policy datasets`` prints)."""
    reg = load_registry(settings)
    out = []
    for d in reg.datasets.values():
        row = _entry_dict(d)
        row["lineage"] = reg.chain(d.key)
        out.append(row)
    return out


__all__ = [
    "USE_CLASSES",
    "DatasetEntry",
    "PlatformEntry",
    "Registry",
    "load_registry",
    "list_datasets",
    "builtin_registry_text",
]
