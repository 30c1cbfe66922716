"""Configuration with dlt's precedence: CLI flags > ``CLIPFACTORY_*`` environment > ``clipfactory.toml`` > defaults.

Stage sections are keyed by the stage's stable ``name``. In TOML, ``[quality.filter]`` (nested tables) and
``["quality.filter"]`` (a quoted key) mean the same section. Environment variables use a double
underscore for nesting: ``CLIPFACTORY_STAGES__QUALITY.FILTER__MIN_LUMA=12`` is awkward, so stage options
are best set in TOML or with ``--set quality.filter.min_luma=12`` on the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path, PurePath
from typing import Any

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
        return (init_settings, env_settings)

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


def apply_sets(data: dict[str, Any], sets: list[str], stage_names: set[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides; stage names may contain dots."""
    data = json.loads(json.dumps(data))
    for item in sets:
        if "=" not in item:
            raise ConfigError(
                f"--set needs KEY=VALUE, got {item!r}", item=item, fix="e.g. --set quality.filter.min_luma=12"
            )
        key, value = item.split("=", 1)
        key = key.strip()
        stage = next((s for s in sorted(stage_names, key=len, reverse=True) if key.startswith(s + ".")), None)
        if stage:
            data.setdefault("stages", {}).setdefault(stage, {})[key[len(stage) + 1 :]] = _parse_value(value)
            continue
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(value)
    return data


def load_settings(
    config_file: str | os.PathLike | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Settings:
    """Resolve settings. ``overrides`` are CLI flags (strongest); ``None`` values are ignored."""
    from .registry import load_all

    stage_names = set(load_all())
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
    if sets:
        data = apply_sets(data, sets, stage_names)
    unknown_stages = set(data.get("stages", {})) - stage_names
    if unknown_stages:
        raise ConfigError(
            f"unknown stage section(s): {', '.join(sorted(unknown_stages))}",
            item=str(path),
            fix=f"stage sections are: {', '.join(sorted(stage_names))}",
        )
    # Environment beats the file: drop file values that the environment sets.
    env_keys = {
        k[len("CLIPFACTORY_") :].lower().split("__")[0] for k in os.environ if k.startswith("CLIPFACTORY_")
    }
    file_data = {k: v for k, v in data.items() if k not in env_keys}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        settings = Settings(**{**file_data, **flags}) if not env_keys else _with_env(file_data, flags)
    except ValidationError as exc:
        given = ([str(path)] if path.exists() else []) + (["--set"] if sets else []) + (
            ["the CLIPFACTORY_ environment"] if env_keys else []
        ) or ["the command's options"]
        raise ConfigError(
            f"invalid configuration: {describe_invalid(exc, Settings)}",
            item=" or ".join(given),
            fix="correct the option (docs/config.md lists them)",
        ) from exc
    return settings


def _with_env(file_data: dict[str, Any], flags: dict[str, Any]) -> Settings:
    # Init kwargs beat the environment in pydantic-settings, so pass the file values as defaults instead.
    env_only = Settings(**flags)
    merged = {**file_data, **{k: getattr(env_only, k) for k in env_only.model_fields_set}}
    return Settings(**merged)
