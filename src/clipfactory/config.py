"""Configuration with dlt's precedence: CLI flags and ``--set`` > ``CLIPFACTORY_*`` environment >
``clipfactory.toml`` > defaults. Each level overrides single keys of the ones below it.

Stage sections are keyed by the stage's stable ``name``. In TOML, ``[quality.filter]`` (nested tables) and
``["quality.filter"]`` (a quoted key) mean the same section. Environment variables use a double
underscore for nesting, and a stage name's dot is one more double underscore:
``CLIPFACTORY_BUILD__SHARD_SIZE=50``, ``CLIPFACTORY_QUALITY__FILTER__MIN_LUMA=12``. On the command line:
``--set quality.filter.min_luma=12``. Every key, stage options included, is checked when the settings are
loaded, before a command does any work.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path, PurePath
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError, describe_invalid

DEFAULT_CONFIG_FILE = "clipfactory.toml"


class BuildSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt build option is an error, never ignored

    name: str = Field("build", description="Name of the build; shards go to <out>/<name>/v<N>/")
    out: str = Field("builds", description="Folder that receives builds")
    shard_size: int = Field(100, description="Clips per WebDataset shard")
    evaluation_manifests: list[str] = Field(
        default_factory=list, description="Datasets (by name) whose sources are excluded from training builds"
    )
    balance: dict[str, float] = Field(
        default_factory=dict,
        description="Largest share of the build's clips per content category, e.g. {driving = 0.3}; clips over "
        "a cap are left out (build.balance_cap, docs/semantic.md)",
    )


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt privacy option is an error, never ignored

    blur_faces: bool = Field(
        False,
        description="Blur the faces of what a build ships and what caption.vlm sends: the clips whose thumbnail "
        "shows a face (or was not checked) are re-encoded with the faces of their frames blurred, and the shipped "
        "thumbnails are blurred (docs/signals.md)",
    )


class Settings(BaseSettings):
    """Top-level settings. Unknown top-level keys are errors, so typos surface."""

    model_config = SettingsConfigDict(env_prefix="CLIPFACTORY_", env_nested_delimiter="__", extra="forbid")

    catalog: str = Field("clipfactory.duckdb", description="Path of the DuckDB catalog file")
    store: str = Field("clipfactory-store", description="Root folder of the content-addressed blob store")
    parts: str | None = Field(
        None,
        description="Where results wait as Parquet parts until the catalog loads them: a folder or an "
        "object store URL (s3://bucket/prefix), under which each catalog has its own folder; none keeps "
        "them beside the catalog (<catalog>.parts)",
    )

    @field_validator("store", "parts", mode="before")
    @classmethod
    def _store_url(cls, value: Any) -> Any:
        """An object store URL (``s3://bucket/prefix``) given to a path-typed option such as ``--store``
        arrives with its ``//`` collapsed (``s3:/bucket/prefix``); it is a URL again here."""
        if isinstance(value, (str, PurePath)):
            text = str(value)
            scheme, sep, rest = text.partition(":/")
            if sep and len(scheme) > 1 and scheme.isalnum() and not rest.startswith("/"):
                from fsspec.registry import known_implementations

                if scheme.lower() in known_implementations:
                    return f"{scheme}://{rest}"
            return text
        return value
    purpose: str = Field(
        "research", description="Purpose profile of builds: commercial, research or a custom one"
    )
    policy_file: str | None = Field(
        None, description="A policy TOML with custom profiles and licence overrides"
    )
    registry_file: str | None = Field(
        None, description="A TOML that adds or overrides dataset registry entries"
    )
    permissions_file: str | None = Field(None, description="A TOML recording written acquisition permissions")
    executor: str = Field("local", description="Executor: local (this machine) or ray (a Ray cluster)")
    ray_address: str | None = Field(
        None,
        description='Ray cluster address for the ray executor: "auto" (the cluster this machine is a node of; '
        "run clipfactory there, Ray Client ray:// addresses do not work); none starts a local Ray",
    )
    workers: int = Field(1, description="Worker processes (local) or actors per stage (ray)")
    error_budget: float = Field(0.05, description="Share of items failing with bugs that stops a run")
    retries: int = Field(3, description="Attempts for transient failures")
    inputs: list[str] = Field(
        default_factory=list, description="Media files or folders for `clipfactory run`"
    )
    datasets: list[str] = Field(
        default_factory=list, description="Catalog datasets whose sources `clipfactory run` builds from"
    )
    splits: list[str] = Field(default_factory=list, description="Only sources of these dataset splits")
    labels: list[str] = Field(default_factory=list, description="Only sources with these dataset labels")
    limit: int | None = Field(None, description="At most this many catalog sources per run")
    license: str | None = Field(None, description="SPDX licence of owned media given in `inputs`")
    rights_holder: str | None = Field(None, description="Rights holder of owned media given in `inputs`")
    build: BuildSettings = Field(default_factory=BuildSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Stage sections by stage name"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ):
        # load_settings reads the environment itself, one key per variable (see _ENV_READ)
        return (init_settings,) if _ENV_READ.get() else (init_settings, env_settings)

    def stage_config(self, name: str) -> dict[str, Any]:
        return dict(self.stages.get(name, {}))

    def stage_hash(self, name: str) -> str:
        payload = json.dumps(self.stage_config(name), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _flatten_stage_sections(data: dict[str, Any], stage_names: set[str]) -> dict[str, Any]:
    """Move ``[quality.filter]`` and ``["quality.filter"]`` tables under ``stages``."""
    data = dict(data)
    stages: dict[str, Any] = dict(data.pop("stages", {}) or {})
    for name in sorted(stage_names):
        head, _, tail = name.partition(".")
        if name in data:
            stages.setdefault(name, {}).update(data.pop(name))
        elif isinstance(data.get(head), dict) and tail in data[head]:
            stages.setdefault(name, {}).update(data[head].pop(tail))
            if not data[head]:
                data.pop(head)
    if stages:
        data["stages"] = stages
    return data


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _wants_text(annotation: Any) -> bool:
    """Whether a field typed ``annotation`` takes text only (``str``, ``str | None``, a choice of words), so
    that ``--set build.name=2024`` or ``CLIPFACTORY_BUILD__NAME=2024`` stays the text ``"2024"``."""
    if annotation is str:
        return True
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return all(isinstance(a, str) for a in args)
    return bool(args) and get_origin(annotation) in (Union, UnionType) and all(a is str for a in args)


def _annotation(path: tuple[str, ...], stage_classes: dict[str, Any]) -> Any:
    """The type of the setting at ``path`` (``("build", "name")``, ``("stages", "quality.filter", "min_luma")``);
    None where there is no such setting."""
    if path[0] == "stages":
        cls = stage_classes.get(path[1]) if len(path) == 3 else None
        field = cls.Config.model_fields.get(path[2]) if cls is not None else None
        return field.annotation if field is not None else None
    model: Any = Settings
    for key in path:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return None
        model = field.annotation
    return model


def _typed(text: str, path: tuple[str, ...], stage_classes: dict[str, Any]) -> Any:
    """A value given as text (``--set``, the environment) as TOML reads it; a text-only setting keeps the
    text unless it is a quoted TOML string (``--set build.name='"b"'`` is ``b``)."""
    value = _parse_value(text)
    if _wants_text(_annotation(path, stage_classes)) and not isinstance(value, str):
        return text
    return value


def _stage_key(parts: list[str], stage_names: set[str]) -> tuple[str, list[str]] | None:
    """``["quality", "filter", "min_luma"]`` as the stage ``quality.filter`` and its key; None for no stage."""
    for name in sorted(stage_names, key=len, reverse=True):
        n = name.count(".") + 1
        if ".".join(parts[:n]) == name and len(parts) > n:
            return name, parts[n:]
    return None


def _close(word: str, choices: Any) -> str | None:
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _unknown_stage(name: str, stage_names: set[str], item: str) -> ConfigError:
    near = _close(name, stage_names)
    return ConfigError(
        f"unknown stage section [{name}]" + (f"; did you mean [{near}]?" if near else ""),
        item=item,
        fix=f"the stage sections are {', '.join(sorted(stage_names))} (docs/config.md)",
    )


#: ``CLIPFACTORY_*`` variables that are switches of the command line, not settings.
_NOT_SETTINGS = {"config", "debug"}


def env_assignments(environ: Any, stage_names: set[str]) -> list[tuple[tuple[str, ...], str, str]]:
    """The settings that ``CLIPFACTORY_*`` environment variables give, one key each: ``(path, text, name)``.

    ``CLIPFACTORY_BUILD__NAME=x`` is ``("build", "name")``; ``CLIPFACTORY_QUALITY__FILTER__MIN_LUMA=12`` is
    the stage option ``("stages", "quality.filter", "min_luma")`` (so is
    ``CLIPFACTORY_STAGES__QUALITY.FILTER__MIN_LUMA``). Variables that name no setting (other tools' and
    clipfactory's own switches such as ``CLIPFACTORY_CACHE_DIR``) are left alone; one whose first word is a
    stage namespace (``CLIPFACTORY_SIGNALS__SPEACH__ENABLED``) and names no stage is an error."""
    heads = {n.partition(".")[0] for n in stage_names}
    out = []
    for var in sorted(environ):
        if not var.upper().startswith("CLIPFACTORY_"):
            continue
        parts = [p for p in var[len("CLIPFACTORY_") :].lower().split("__")]
        if not all(parts) or parts[0] in _NOT_SETTINGS:
            continue
        text = environ[var]
        if parts[0] == "stages" and len(parts) >= 3:
            if parts[1] not in stage_names:
                raise _unknown_stage(parts[1], stage_names, var)
            out.append((("stages", parts[1], *parts[2:]), text, var))
            continue
        stage = _stage_key(parts, stage_names)
        if stage is not None:
            out.append((("stages", stage[0], *stage[1]), text, var))
        elif parts[0] in Settings.model_fields:
            out.append((tuple(parts), text, var))
        elif parts[0] in heads and len(parts) >= 3:
            raise _unknown_stage(".".join(parts[:2]), stage_names, var)
    return out


def _assign(data: dict[str, Any], path: tuple[str, ...], value: Any, item: str) -> None:
    node = data
    for i, key in enumerate(path[:-1]):
        nxt = node.setdefault(key, {})
        if not isinstance(nxt, dict):
            raise ConfigError(
                f"{'.'.join(path[: i + 1])} is a single value, so it has no key {path[i + 1]!r}",
                item=item,
                fix=f"set {'.'.join(path[: i + 1])} itself (docs/config.md)",
            )
        node = nxt
    node[path[-1]] = value


def _set_assignments(sets: list[str], stage_names: set[str]) -> list[tuple[tuple[str, ...], str, str]]:
    out = []
    for item in sets:
        if "=" not in item:
            raise ConfigError(
                f"--set needs KEY=VALUE, got {item!r}", item=item, fix="e.g. --set quality.filter.min_luma=12"
            )
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        stage = _stage_key(parts, stage_names)
        path = ("stages", stage[0], *stage[1]) if stage else tuple(parts)
        out.append((path, value, f"--set {item}"))
    return out


def apply_sets(data: dict[str, Any], sets: list[str], stage_names: set[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides, one key each; stage names may contain dots."""
    from .registry import load_all

    data = json.loads(json.dumps(data))
    classes = {n: c for n, c in load_all().items() if n in stage_names}
    for path, text, item in _set_assignments(sets, stage_names):
        _assign(data, path, _typed(text, path, classes), item)
    return data


#: While :func:`load_settings` builds a :class:`Settings`, it has read the environment itself (one key per
#: variable, at its place in the precedence); pydantic-settings' own reading (which replaces a whole
#: ``[build]`` table) is off.
_ENV_READ: ContextVar[bool] = ContextVar("clipfactory_env_read", default=False)


def _origin_of(loc: tuple, origins: dict[tuple, str], default: str) -> str:
    for n in range(len(loc), 0, -1):
        if tuple(loc[:n]) in origins:
            return origins[tuple(loc[:n])]
    # a value below one that was set whole (a table given by a variable): that variable
    for path, origin in origins.items():
        if path[: len(loc)] == tuple(loc):
            return origin
    return default


class _OneError:
    """One error of a pydantic ``ValidationError``, for :func:`describe_invalid`."""

    def __init__(self, err: dict[str, Any]):
        self._err = err

    def errors(self, include_url: bool = False) -> list[dict[str, Any]]:
        return [self._err]


def _top_level_problems(
    data: dict[str, Any], stage_names: set[str], origins: dict[tuple, str], default: str
) -> list[tuple[str, str]]:
    """Unknown top-level keys and sections, each with a close match among the known keys and the stage
    sections (``[signal.speech]``: did you mean ``[signals.speech]``?); ``(problem, where)`` pairs."""
    known = set(Settings.model_fields) - {"stages"}
    heads = {n.partition(".")[0] for n in stage_names}
    out = []
    for key in sorted(set(data) - set(Settings.model_fields)):
        value = data[key]
        where = _origin_of((key,), origins, default)
        subs = sorted(k for k, v in value.items() if isinstance(v, dict)) if isinstance(value, dict) else []
        if "." in key or subs:  # a stage section: ["signal.speech"] or [signal.speech]
            for name in [key] if "." in key else [f"{key}.{s}" for s in subs]:
                near = _close(name, stage_names)
                out.append((f"[{name}]: unknown section" + (f"; did you mean [{near}]?" if near else ""), where))
        else:
            near = _close(key, known | heads)
            what = "section" if isinstance(value, dict) else "option"
            out.append((f"{key}: unknown {what}" + (f"; did you mean {near}?" if near else ""), where))
    return out


def _stage_problems(
    data: dict[str, Any], stage_classes: dict[str, Any], origins: dict[tuple, str], default: str
) -> list[tuple[str, str]]:
    """Every stage section read with its stage's options, so that a wrong one stops a command before work."""
    out = []
    stages = data.get("stages") if isinstance(data.get("stages"), dict) else {}
    for name in sorted(stages):
        where = _origin_of(("stages", name), origins, default)
        if name not in stage_classes:
            near = _close(name, stage_classes)
            out.append((f"[{name}]: unknown stage section" + (f"; did you mean [{near}]?" if near else ""), where))
            continue
        if not isinstance(stages[name], dict):
            out.append((f"[{name}] is a section of options, not a value", where))
            continue
        config = stage_classes[name].Config
        try:
            config(**stages[name])
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(str(p) for p in err.get("loc", ()))[:1]
                one = _OneError(err)
                out.append(
                    (f"[{name}] {describe_invalid(one, config)}", _origin_of(("stages", name, *loc), origins, default))
                )
    return out


def load_settings(
    config_file: str | os.PathLike | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Settings:
    """Resolve settings, strongest first: ``overrides`` (CLI flags; ``None`` values are ignored) and ``sets``
    (``--set KEY=VALUE``), then ``CLIPFACTORY_*`` environment variables, then the TOML file, then the
    defaults. Each flag, ``--set`` and variable overrides one key; relative paths in the file are relative
    to the file's folder. Every key is checked, stage sections with their stage's options, before this
    returns: an error names where the wrong value came from (the file, the variable, the ``--set``)."""
    from .registry import load_all

    stage_classes = load_all()
    stage_names = set(stage_classes)
    data: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path(DEFAULT_CONFIG_FILE)
    if config_file and not path.exists():
        raise ConfigError("config file not found", item=str(path), fix="check the path given to --config")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", item=str(path)) from exc
        data = _flatten_stage_sections(data, stage_names)
        base = path.resolve().parent
        for key in ("catalog", "store", "parts", "policy_file", "registry_file", "permissions_file"):
            if isinstance(data.get(key), str) and not os.path.isabs(data[key]) and "://" not in data[key]:
                data[key] = os.path.normpath(base / data[key])
        if isinstance(data.get("inputs"), list):
            data["inputs"] = [
                i if os.path.isabs(i) or "://" in i else os.path.normpath(base / i) for i in data["inputs"]
            ]
        if isinstance(data.get("build"), dict) and isinstance(data["build"].get("out"), str):
            if not os.path.isabs(data["build"]["out"]) and "://" not in data["build"]["out"]:
                data["build"]["out"] = os.path.normpath(base / data["build"]["out"])
    default = str(path) if path.exists() else "the command's options"
    origins: dict[tuple, str] = {}
    # the environment, then --set, each overriding one key of what is there (values relative to the current
    # folder, as given)
    for key_path, text, item in env_assignments(os.environ, stage_names) + _set_assignments(sets or [], stage_names):
        _assign(data, key_path, _typed(text, key_path, stage_classes), item)
        origins[key_path] = item
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
            origins[(key,)] = "the command's options"
    problems = _top_level_problems(data, stage_names, origins, default)
    top_level = bool(problems)
    problems += _stage_problems(data, stage_classes, origins, default)
    token = _ENV_READ.set(True)
    try:
        settings = Settings(**{k: v for k, v in data.items() if k in Settings.model_fields})
    except ValidationError as exc:
        settings = None
        for err in exc.errors(include_url=False):
            one = _OneError(err)
            where = _origin_of(tuple(str(p) for p in err.get("loc", ())), origins, default)
            problems.append((describe_invalid(one, Settings), where))
    finally:
        _ENV_READ.reset(token)
    if problems or settings is None:
        raise ConfigError(
            "invalid configuration: " + "; ".join(p for p, _ in problems),
            item=" or ".join(dict.fromkeys(w for _, w in problems)),
            fix=(
                f"the top-level keys are {', '.join(sorted(set(Settings.model_fields) - {'stages'}))}; the stage "
                f"sections are {', '.join(sorted(stage_names))} (docs/config.md)"
                if top_level
                else "correct the option (docs/config.md lists them)"
            ),
        )
    return settings
