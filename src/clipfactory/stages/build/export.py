"""``build.export``: the run's kept clips become a versioned WebDataset build.

Reads
    every cut :class:`~clipfactory.records.ClipRecord` of the run, in one batch.
Writes
    the shards, ``index.parquet`` and ``build.json`` under ``[build] out`` (see
    :func:`clipfactory.factory.export.write_build`) and the ``builds`` and build member rows; each clip in
    the build is ``kept`` (its detail names the build and shard).
Drop reasons
    ``policy.<reason>`` when the gate, asked again at export, refuses the clip's source;
    ``build.left_out`` for a clip with no cut file or dropped as a near-duplicate.
    ``build.balance_cap`` for a clip of a category over its ``[build] balance`` cap
    (:mod:`clipfactory.semantic.balance`).
Resources
    the driver process (a catalog stage). It is never resumed item by item: a build is made of all of the
    run's clips, and an unchanged set of members gives back the unchanged build.
"""

from __future__ import annotations

from pydantic import Field

from ...records import ClipRecord, Result
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig


@register
class ExportStage(Stage):
    name = "build.export"
    version = 2
    resources = Resources(cpus=1.0, memory_gb=1.0)
    batch_size = 1_000_000
    input_type = ClipRecord
    output_type = ClipRecord
    driver_side = True
    resume = False

    class Config(StageConfig):
        name: str = Field("build", description="Build name (set by the run from [build] name).")
        purpose: str = Field("research", description="The build's purpose profile (set by the run).")

    def __init__(self, config=None, context=None):
        super().__init__(config, context)
        self.last_build: dict = {}

    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        from ...catalog import Catalog
        from ...factory.export import write_build

        settings = self.context.extras.get("settings")
        if settings is None or not self.context.catalog_path:
            return [Result.failed(c.clip_id, "terminal", "build.export runs inside `clipfactory run`") for c in items]
        sink: list[dict] = []
        self.last_build = write_build(
            Catalog(self.context.catalog_path),
            settings,
            name=self.config.name,
            purpose=self.config.purpose,
            clips=items,
            run_id=self.context.run_id,
            outcome_sink=sink,
        )
        by_id = {r["item_id"]: r for r in sink}
        if self.last_build.get("status") == "unchanged":  # the same members as the latest version
            build_id = self.last_build["build_id"]
            rows = Catalog(self.context.catalog_path).query(
                "SELECT clip_id, shard FROM build_members WHERE build_id = ?", [build_id]
            )
            for r in rows:
                by_id.setdefault(
                    r["clip_id"],
                    {"status": "kept", "detail": {"build_id": build_id, "shard": r["shard"]}},
                )
        out = []
        for c in items:
            r = by_id.get(c.clip_id)
            if r is None:
                out.append(Result.dropped(c.clip_id, "build.left_out", {"build_id": self.last_build.get("build_id")}))
            elif r["status"] == "kept":
                out.append(Result.kept(c.clip_id, c, detail=r.get("detail")))
            else:
                out.append(Result.dropped(c.clip_id, r.get("reason") or "build.left_out", r.get("detail")))
        return out
