"""The configuration reference in ``docs/config.md``, generated from the settings and stage ``Config`` classes.

    python -m clipfactory.factory.reference > /tmp/stages.md   # then paste between the markers

``docs/config.md`` keeps the generated part between ``<!-- stages:begin -->`` and ``<!-- stages:end -->``;
a test checks that it matches these classes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

BEGIN = "<!-- stages:begin -->"
END = "<!-- stages:end -->"


def _default(info) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()
    return "(required)"


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, tuple | list | set | frozenset):
        return "`[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v) + "]`"
    if isinstance(v, BaseModel):
        return "(see below)"
    return f"`{v}`"


def fields_table(model: type[BaseModel], prefix: str = "") -> str:
    rows = ["| key | default | what |", "| --- | --- | --- |"]
    for name, info in model.model_fields.items():
        desc = (info.description or "").replace("|", "/").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | {_fmt(_default(info))} | {desc} |")
    return "\n".join(rows)


def stage_reference(names: list[str] | None = None) -> str:
    """Markdown: one section per registered stage (or ``names``), with every option and its default."""
    from .. import registry

    stages = registry.load_all()
    out = []
    for name in sorted(names or stages):
        cls = stages[name]
        doc = (cls.__doc__ or "").strip()
        first = doc.splitlines()[0] if doc else ""
        out.append(f"### `[{name}]`\n")
        if first:
            out.append(first + "\n")
        r = cls.resources
        out.append(
            f"Stage version {cls.version}; batch size {cls.batch_size}; "
            f"resources {r.cpus:g} CPU, {r.gpus:g} GPU, {r.memory_gb:g} GB.\n"
        )
        if cls.Config.model_fields:
            out.append(fields_table(cls.Config) + "\n")
        else:
            out.append("No options.\n")
    return "\n".join(out).rstrip() + "\n"


def settings_reference() -> str:
    from ..config import BuildSettings, Settings

    return (
        "### Top level\n\n"
        + fields_table(Settings).replace("| `build` | (see below) |", "| `build` | see `[build]` |")
        + "\n\n### `[build]`\n\n"
        + fields_table(BuildSettings)
        + "\n"
    )


if __name__ == "__main__":  # pragma: no cover
    print(settings_reference())
    print(BEGIN)
    print(stage_reference())
    print(END)
