"""Purpose profiles and the policy they live in.

The built-in policy (``policy/default_policy.toml``) has the licence table and two profiles,
``commercial`` and ``research``. A user policy file (``Settings.policy_file``) adds licence classes and
profiles, or overrides fields of built-in ones. A profile may start from another with ``extends``.

The licence table is layered: built-in policy < custom licences declared by registry entries
(``license_class`` on a dataset with a ``LicenseRef``) < the user's policy file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PolicyError, describe_invalid
from ..sources.registry import Registry, load_registry, read_toml
from .taxonomy import USE_CLASSES, LicenseTable


class Profile(BaseModel):
    """What one purpose accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str | None = None
    extends: str | None = None
    accept: tuple[str, ...] = Field(default=("commercial",), description="Use classes the purpose accepts")
    deny_no_redistribution: bool = True
    deny_datasets: tuple[str, ...] = ()
    deny_platforms: tuple[str, ...] = ()
    attribution_ok: bool = True
    share_alike_ok: bool = True
    reviewed: tuple[str, ...] = Field(default=(), description="Datasets whose legal review is done")
    decontaminate_benchmarks: bool = True

    @field_validator("accept")
    @classmethod
    def _classes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c not in USE_CLASSES]
        if bad:
            raise ValueError(f"unknown use class(es) {bad}; use classes are {list(USE_CLASSES)}")
        if not v:
            return ()
        # A licence that allows more use also allows this use: accepting a class accepts every less
        # restrictive one, so the check on the effective (most restrictive) class is the whole check.
        top = max(USE_CLASSES.index(c) for c in v)
        return USE_CLASSES[: top + 1]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Policy:
    """The resolved policy: licence table, profiles, and the registry it was built with."""

    licenses: LicenseTable
    profiles: dict[str, Profile]
    registry: Registry
    sources: tuple[str, ...]
    digest: str

    def profile(self, purpose: str) -> Profile:
        p = self.profiles.get(purpose)
        if p is None:
            # No square brackets: a terminal that reads Rich markup would drop "[profiles.x]" as a style tag.
            known = ", ".join(sorted(self.profiles)) or "none"
            named = repr(purpose) if purpose else "(none given)"
            raise PolicyError(
                f"unknown purpose profile {named}; the known purposes are: {known}",
                item=purpose or "purpose",
                fix=f"pass one of them with --purpose or `purpose = ...` in the config, or add a table named "
                f"profiles.{purpose or '<name>'} to the policy file that policy_file or --policy names",
            )
        return p

    def __hash__(self) -> int:
        return hash(self.digest)


def builtin_policy_text() -> str:
    return resources.files("clipfactory.policy").joinpath("default_policy.toml").read_text()


def _check_sections(data: dict[str, Any], where: str) -> None:
    unknown = set(data) - {"licenses", "profiles"}
    if unknown:
        raise PolicyError(
            f"unknown policy section(s): {', '.join(sorted(unknown))}",
            item=where,
            fix="a policy file has [licenses.<id>] and [profiles.<name>] tables",
        )


def _resolve_profiles(raw: dict[str, dict[str, Any]], where: str) -> dict[str, Profile]:
    out: dict[str, Profile] = {}

    def build(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if name in seen:
            raise PolicyError(f"profile 'extends' cycle: {' -> '.join((*seen, name))}", item=where)
        if name not in raw:
            raise PolicyError(
                f"profile {seen[-1]!r} extends unknown profile {name!r}",
                item=where,
                fix=f"known profiles: {', '.join(sorted(raw))}",
            )
        fields = dict(raw[name])
        parent = fields.get("extends")
        if parent:
            base = build(parent, (*seen, name))
            base.pop("description", None)
            base.update(fields)
            fields = base
        return fields

    for name in raw:
        fields = build(name, ())
        try:
            out[name] = Profile(name=name, **{k: v for k, v in fields.items() if k != "name"})
        except ValidationError as exc:
            raise PolicyError(
                f"invalid profile {name!r}: {describe_invalid(exc)}", item=where, fix="see docs/policy.md"
            ) from exc
    return out


@functools.lru_cache(maxsize=16)
def _load_cached(policy_path: str | None, _mtime: tuple[int, int] | None, registry: Registry) -> Policy:
    base = tomllib.loads(builtin_policy_text())
    user = read_toml(policy_path, "policy file", "check policy_file / --policy") if policy_path else {}
    _check_sections(user, policy_path or "")

    table = LicenseTable()
    for key, entry in (base.get("licenses") or {}).items():
        table.set(key, entry, source="builtin-policy")
    for d in registry.datasets.values():
        lic = (d.annotation_license or "").strip()
        if d.license_class and lic and " " not in lic:
            entry = {
                "class": d.license_class,
                "attribution": bool(d.attribution),
                "share_alike": bool(d.share_alike),
            }
            if d.license_name:
                entry["name"] = d.license_name
            table.set(lic, entry, source=f"registry:{d.key}")
    for key, entry in (user.get("licenses") or {}).items():
        if not isinstance(entry, dict):
            raise PolicyError(f"[licenses.{key}] must be a table", item=policy_path)
        table.set(key, entry, source="user-policy")

    raw: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (base.get("profiles") or {}).items()}
    for name, fields in (user.get("profiles") or {}).items():
        if not isinstance(fields, dict):
            raise PolicyError(f"[profiles.{name}] must be a table", item=policy_path)
        raw.setdefault(name, {}).update(fields)
    profiles = _resolve_profiles(raw, policy_path or "builtin policy")

    sources = ["builtin:policy/default_policy.toml"] + ([policy_path] if policy_path else [])
    digest = hashlib.sha256(
        json.dumps(
            {
                "licenses": table.entries(),
                "profiles": {k: v.to_dict() for k, v in sorted(profiles.items())},
                "registry": registry.digest(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return Policy(table, profiles, registry, tuple(sources + registry.sources), digest)


def load_policy(settings: Any = None, *, path: str | os.PathLike | None = None) -> Policy:
    """The built-in policy merged with ``path`` (or ``settings.policy_file``) and the registry."""
    registry = load_registry(settings)
    if path is None and settings is not None:
        path = getattr(settings, "policy_file", None)
    if path is None:
        return _load_cached(None, None, registry)
    p = Path(path)
    if not p.exists():
        raise PolicyError("policy file not found", item=str(p), fix="check policy_file / --policy")
    return _load_cached(str(p.resolve()), (p.stat().st_mtime_ns, p.stat().st_size), registry)


def list_profiles(settings: Any = None) -> list[dict[str, Any]]:
    """Every profile, resolved (what ``clipfactory policy profiles`` prints)."""
    pol = load_policy(settings)
    return [p.to_dict() for p in pol.profiles.values()]


__all__ = ["Profile", "Policy", "load_policy", "list_profiles", "builtin_policy_text"]
