"""The registry of stages by their stable name."""

from __future__ import annotations

import importlib

from .errors import ConfigError
from .stage import Stage

_STAGES: dict[str, type[Stage]] = {}

#: Modules that define stages; importing them registers their classes.
STAGE_MODULES = [
    "clipfactory.stages.media.probe",
    "clipfactory.stages.media.analyse",
    "clipfactory.stages.signals.visual",
    "clipfactory.stages.media.cut",
    "clipfactory.stages.quality.filter",
    "clipfactory.stages.policy.gate",
    "clipfactory.stages.build.export",
    "clipfactory.stages.acquire.local",
    "clipfactory.stages.acquire.http",
    "clipfactory.stages.acquire.revalidate",
    "clipfactory.fingerprints.dedup",
    "clipfactory.stages.dedup.semantic",
    "clipfactory.stages.semantic.text",
    "clipfactory.stages.semantic.visual",
    "clipfactory.stages.signals.speech",
    "clipfactory.stages.caption.vlm",
]


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator. Names are unique and stable."""
    if not cls.name or "." not in cls.name:
        raise ValueError(f"stage {cls.__name__} needs a namespaced name such as 'quality.filter'")
    existing = _STAGES.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"stage name {cls.name!r} is taken by {existing.__qualname__}")
    _STAGES[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Stage]]:
    for mod in STAGE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if not (exc.name and mod.startswith(exc.name)):  # a real missing dependency inside the module
                raise
    return dict(_STAGES)


def get(name: str) -> type[Stage]:
    load_all()
    try:
        return _STAGES[name]
    except KeyError:
        raise ConfigError(f"unknown stage {name!r}", fix=f"one of: {', '.join(sorted(_STAGES))}") from None
