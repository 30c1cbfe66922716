"""The main job, ``clipfactory run``: owned media to a versioned WebDataset build.

Steps, all in one run (one ``runs`` row; every item gets outcome rows):

1. **add**: acquire ``Settings.inputs`` (with ``Settings.license``/``rights_holder`` or per-file sidecars)
   into the blob store with the ``acquire.local`` stage, and record their ``owned`` dataset membership;
2. **policy gate**: sources the gate does not allow for the purpose get a dropped outcome row
   (stage ``policy.gate``, reason ``policy.<reason>``) and go no further;
3. ``media.probe`` → ``media.analyse`` (one decode; fans out to planned clips) → ``quality.filter`` →
   ``media.cut``. ``media.analyse`` emits the updated source record followed by its clips; only the clips
   go on. The quality filter needs only the scores of the analysis, so it runs before cutting: a clip
   that would be dropped is never cut;
4. **export**: the kept clips become a build (:func:`clipfactory.factory.export.write_build`), which checks
   the gate again.

Running it again does no finished work twice: every stage skips items that already have a kept or dropped
outcome for the same stage version and config, and an unchanged build is not written again.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import registry
from ..catalog import Catalog
from ..catalog.outcomes import outcome_row, write_outcomes
from ..executors import executor_from_settings
from ..progress import NullProgress, Progress
from ..records import ClipRecord
from ..stage import Stage, StageContext
from ..storage import BlobStore
from .add import add_owned
from .export import policy_check, write_build

log = logging.getLogger(__name__)

MEDIA_STAGES = ("media.probe", "media.analyse")
CLIP_STAGES = ("quality.filter", "media.cut")
GATE_STAGE = "policy.gate"


def make_stage(settings, name: str, context: StageContext) -> Stage:
    return registry.get(name)(settings.stage_config(name), context)


def _gate_outcomes(
    catalog: Catalog, run_id: str, purpose: str, refused: dict[str, str], allowed: set[str]
) -> None:
    """Record the gate's decisions as outcome rows, only where they changed since the last run."""
    ids_ = sorted(set(refused) | allowed)
    before = {
        r["item_id"]: (r["status"], r["reason"])
        for r in catalog.query(
            """SELECT item_id, status, reason FROM latest_outcomes
               WHERE stage = ? AND config_hash = ? AND item_id IN (SELECT unnest(?))""",
            [GATE_STAGE, purpose, ids_],
        )
    }
    rows = [
        outcome_row(
            run_id, GATE_STAGE, 1, purpose, sid, "dropped" if sid in refused else "kept",
            reason=refused.get(sid), detail={"purpose": purpose}, output_ids=[] if sid in refused else [sid],
        )
        for sid in ids_
        if before.get(sid) != (("dropped", refused[sid]) if sid in refused else ("kept", None))
    ]
    if rows:
        with catalog.write() as con:
            write_outcomes(con, rows)


def stage_counts(catalog: Catalog, stage: Stage | str, item_ids: list[str]) -> dict[str, Any]:
    """Counts of the latest outcomes of ``item_ids`` at ``stage`` (its version and config), by status and
    reason. Counts always come from outcome rows."""
    name = stage if isinstance(stage, str) else stage.name
    params: list[Any] = [name, list(dict.fromkeys(item_ids))]
    where = "stage = ? AND item_id IN (SELECT unnest(?))"
    if isinstance(stage, Stage):
        where += " AND stage_version = ? AND config_hash = ?"
        params += [stage.version, stage.config_hash]
    rows = catalog.query(
        f"""SELECT status, coalesce(reason, CASE WHEN status = 'failed' THEN 'failed.' || error_kind END) AS reason,
                   count(*) AS n, sum(len(output_ids)) AS outputs
            FROM latest_outcomes WHERE {where} GROUP BY ALL ORDER BY status, reason""",
        params,
    )
    out: dict[str, Any] = {"kept": 0, "dropped": 0, "failed": 0, "outputs": 0, "reasons": {}}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + int(r["n"])
        if r["status"] == "kept":
            out["outputs"] += int(r["outputs"] or 0)
        if r["reason"]:
            out["reasons"][r["reason"]] = int(r["n"])
    return out


def run_pipeline(
    settings,
    *,
    progress: Progress | None = None,
    purpose: str | None = None,
    build_name: str | None = None,
) -> dict[str, Any]:
    """Run the main job with ``settings``; returns a JSON-ready summary (counts from outcome rows)."""
    purpose = purpose or settings.purpose
    name = build_name or settings.build.name
    progress = progress or NullProgress()
    catalog = Catalog(settings.catalog)
    store = BlobStore(settings.store)
    cleaned = store.clean_incoming()
    ex = executor_from_settings(settings, catalog, progress=progress)
    recovered = ex.recover_parts()
    ctx = StageContext(store_root=settings.store, catalog_path=str(catalog.path), work_dir=None)
    run_id = ex.start_run("run", settings.resolved())
    status = "failed"
    try:
        report, sources = add_owned(
            catalog,
            settings,
            list(settings.inputs),
            license=settings.license,
            rights_holder=settings.rights_holder,
            executor=ex,
            run_id=run_id,
        )
        source_ids = [s.source_id for s in sources]
        allowed, refused, _ = policy_check(catalog, purpose, source_ids, settings)
        _gate_outcomes(catalog, run_id, purpose, refused, allowed)
        to_media = [s for s in sources if s.source_id in allowed]

        stages = {n: make_stage(settings, n, ctx) for n in MEDIA_STAGES + CLIP_STAGES}
        inputs: dict[str, list[str]] = {}
        current: list = to_media
        for n in MEDIA_STAGES + CLIP_STAGES:
            if n == "quality.filter":  # media.analyse emits the updated source, then its clips
                current = [r for r in current if isinstance(r, ClipRecord)]
            inputs[n] = [stages[n].item_id(r) for r in current]
            current = ex.run([stages[n]], current, run_id=run_id).outputs
        kept = [r for r in current if isinstance(r, ClipRecord)]

        progress.start("build.export", total=len(kept), unit="clips")
        build = write_build(catalog, settings, name=name, purpose=purpose, clips=kept, run_id=run_id)
        progress.advance("build.export", len(kept))
        progress.finish("build.export")
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        ex.finish_run(run_id, status)
        if hasattr(ex, "shutdown"):
            ex.shutdown()

    # Counts from outcome rows: every item that entered each stage, whichever run finished it.
    counts = {
        "acquire.local": stage_counts(catalog, make_stage(settings, "acquire.local", ctx), report["items"])
    }
    counts[GATE_STAGE] = stage_counts(catalog, GATE_STAGE, source_ids)
    for n, st in stages.items():
        counts[n] = stage_counts(catalog, st, inputs[n])
    counts["build.export"] = stage_counts(catalog, "build.export", inputs["media.cut"])
    new_rows = catalog.query(
        "SELECT stage, status, count(*) AS n FROM stage_outcomes WHERE run_id = ? GROUP BY ALL ORDER BY stage, status",
        [run_id],
    )
    return {
        "run_id": run_id,
        "status": status,
        "purpose": purpose,
        "inputs": len(report["items"]),
        "sources": len(source_ids),
        "clips_planned": len(inputs["quality.filter"]),
        "clips_kept": len(kept),
        "stages": counts,
        "this_run": new_rows,
        "build": {
            "build_id": build.get("build_id"),
            "status": build.get("status"),
            "out_dir": build.get("out_dir"),
            "n_clips": build.get("n_clips"),
            "n_shards": build.get("n_shards"),
            "shards": [s["name"] for s in build.get("shards", [])],
            "refused_sources": build.get("refused_sources", []),
        },
        "recovered_parts": recovered,
        "cleaned_incoming": cleaned,
    }
