"""The main job, ``clipfactory run``: dataset manifests and owned media to a versioned WebDataset build.

One run (one ``runs`` row; every item gets outcome rows), one pipeline of registered stages:

1. **select**: the sources of the datasets named by ``--dataset``/``datasets`` (narrowed by split, label
   and ``--limit``), together with the owned ``inputs``, which ``acquire.local`` adds first;
2. ``policy.gate``: each source is decided for the build's purpose on its catalog metadata, before any
   byte. A source the purpose may not use is never fetched;
3. ``acquire.http``: web sources without a blob are fetched, with every consent check (sources that already
   have a blob skip it);
4. ``media.probe`` → ``media.analyse`` (one decode; plans clips from the manifest spans or the detected
   shots, see ``media.analyse.spans``) → ``signals.visual`` (NSFW, faces and aesthetic scores from the shot
   thumbnails) → ``quality.filter`` → ``dedup.near`` → [``signals.speech``] →
   [``caption.vlm``] → [``dedup.semantic``] → ``media.cut``. Only clips go on from the analysis; a clip the
   filter or a dedup stage drops is never cut. The bracketed stages run when their sections ask for them
   (``enabled = true``); a clip the annotating ones (:data:`OPTIONAL_STAGES`) fail goes on without their
   annotation, while ``dedup.semantic`` (:data:`OPT_IN_STAGES`) decides like ``dedup.near``;
5. ``build.export``: the kept clips become a build (:func:`clipfactory.factory.export.write_build`),
   which asks the gate again.

Running it again does no finished work twice: every stage skips items that already have a kept or dropped
outcome for the same stage version and config, and an unchanged build is not written again.

The summary adds up. For each stage (in pipeline order) ``received`` is how many items entered it in this
run, ``kept``/``dropped``/``failed`` their latest outcomes (whichever run finished them), and ``outputs``
how many records it sent on: what the next stage received. ``resumed`` says, per stage, how many of the
received items an earlier run had finished. ``media.analyse`` plans clips for every analysed source
(``clips_planned``) but sends on only those of sources the purpose allows; the clips of refused sources
whose bytes are held (analysed for their fingerprints only) are ``clips_withheld``. ``build.export`` counts
the members of this run's build.
"""

from __future__ import annotations

import logging
from typing import Any

from ..catalog import Catalog
from ..catalog.outcomes import record_resumed
from ..errors import ConfigError, NotFoundError
from ..pipelines import Run
from ..progress import NullProgress, Progress
from ..records import ClipRecord, SourceRecord
from ..stage import Stage
from ..storage import BlobStore, check_location
from .add import add_owned

log = logging.getLogger(__name__)

MEDIA_STAGES = ("media.probe", "media.analyse")
CLIP_STAGES = (
    "signals.visual", "quality.filter", "dedup.near", "signals.speech", "caption.vlm", "dedup.semantic", "media.cut",
)
#: Clip stages that always run and only annotate: a clip they fail goes on without their annotation too.
ANNOTATING_STAGES = ("signals.visual",)
#: Stages that annotate clips and run only when their section asks for them (their class's ``wanted``). A clip
#: they fail (after the executor's retries) goes on without their annotation, unless the stage's ``required``
#: option says it must not; a later run tries it again.
OPTIONAL_STAGES = ("signals.speech", "caption.vlm")
#: Stages that run only when their section asks for them and decide like any other: a clip they drop or fail
#: goes no further. ``dedup.semantic`` runs after the captions and transcripts, whose text it compares.
OPT_IN_STAGES = ("dedup.semantic",)
GATE_STAGE = "policy.gate"
FETCH_STAGE = "acquire.http"
EXPORT_STAGE = "build.export"


def select_sources(
    catalog: Catalog,
    datasets: list[str],
    *,
    splits: list[str] | None = None,
    labels: list[str] | None = None,
    limit: int | None = None,
) -> list[SourceRecord]:
    """The sources that ``datasets`` list (optionally only of some splits or labels), in source id order."""
    if not datasets:
        return []
    known = {r["dataset"] for r in catalog.query("SELECT DISTINCT dataset FROM memberships")}
    for d in datasets:
        if d not in known:
            raise NotFoundError(
                "no such dataset in the catalog", item=d,
                fix="ingest its manifest with `clipfactory ingest`, or see `clipfactory datasets list`",
            )
    where = ["m.dataset IN (SELECT unnest(?))"]
    params: list[Any] = [list(datasets)]
    if splits:
        where.append("m.split IN (SELECT unnest(?))")
        params.append(list(splits))
    if labels:
        where.append("m.label IN (SELECT unnest(?))")
        params.append(list(labels))
    sql = f"""SELECT s.* FROM sources s WHERE s.source_id IN (
                 SELECT m.source_id FROM memberships m WHERE {" AND ".join(where)})
              ORDER BY s.source_id"""
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [SourceRecord.from_row(r) for r in catalog.query(sql, params)]


def sources_by_id(catalog: Catalog, source_ids: list[str]) -> list[SourceRecord]:
    """The catalog's sources of ``source_ids`` (a plan's), in source id order; an id it lacks is an error."""
    ids_ = list(dict.fromkeys(source_ids))
    rows = catalog.query("SELECT s.* FROM sources s WHERE s.source_id IN (SELECT unnest(?)) ORDER BY s.source_id", [ids_])
    missing = sorted(set(ids_) - {r["source_id"] for r in rows})
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotFoundError(
            f"{len(missing)} planned source{'s' if len(missing) != 1 else ''} not in the catalog: {shown}",
            item=missing[0], fix="make the plan again from this catalog (`clipfactory plan ... --out PLAN`)",
        )
    return [SourceRecord.from_row(r) for r in rows]


def _datasets_held(catalog: Catalog) -> list[tuple[str, int]]:
    if not catalog.path.is_file():
        return []
    return [
        (r["dataset"], int(r["n"]))
        for r in catalog.query(
            "SELECT dataset, count(DISTINCT source_id) AS n FROM memberships GROUP BY dataset ORDER BY dataset"
        )
    ]


def _nothing_named(catalog: Catalog) -> ConfigError:
    held = _datasets_held(catalog)
    if held:
        listed = ", ".join(f"{d} ({n} source{'s' if n != 1 else ''})" for d, n in held)
        fix = (
            f"name what to build with --dataset (the catalog holds {listed}; media added with "
            "`clipfactory add` is the dataset owned), or `datasets = [...]` or `inputs = [...]` in clipfactory.toml"
        )
    else:
        fix = (
            "give media with `inputs = [...]` in clipfactory.toml, or add it with `clipfactory add` or ingest a "
            "manifest with `clipfactory ingest`, then name its dataset with --dataset"
        )
    return ConfigError("nothing to build: the run names no inputs and no dataset", fix=fix)


def _nothing_selected(
    catalog: Catalog, datasets: list[str], splits: list[str], labels: list[str]
) -> ConfigError:
    names = ", ".join(datasets)
    facets = []
    for col, wanted in (("split", splits), ("label", labels)):
        if wanted:
            rows = catalog.query(
                f"SELECT DISTINCT {col} AS v FROM memberships WHERE dataset IN (SELECT unnest(?)) "
                f"AND {col} IS NOT NULL ORDER BY 1 LIMIT 21",
                [list(datasets)],
            )
            vals = [r["v"] for r in rows]
            shown = ", ".join(vals[:20]) + (", …" if len(vals) > 20 else "")
            facets.append(f"--{col} {', '.join(wanted)} (its {col}s: {shown or 'none'})")
    if facets:
        return ConfigError(
            f"nothing to build: no source of {names} matches " + " and ".join(facets),
            item=names, fix="check the --split/--label values against `clipfactory datasets list`",
        )
    return ConfigError(f"nothing to build: {names} holds no sources", item=names,
                       fix="see `clipfactory datasets list`")


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
                   count(*) AS n, sum(len(output_ids)) AS outputs,
                   arg_min(coalesce(error, CASE WHEN json_valid(detail) THEN json_extract_string(detail, '$.why') END), item_id)
                       FILTER (WHERE status <> 'kept') AS why,
                   min(item_id) FILTER (WHERE status <> 'kept') AS first_item
            FROM latest_outcomes WHERE {where} GROUP BY ALL ORDER BY status, reason""",
        params,
    )
    out: dict[str, Any] = {"kept": 0, "dropped": 0, "failed": 0, "outputs": 0, "reasons": {}, "why": {},
                           "example": {}}
    firsts: dict[str, str] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + int(r["n"])
        if r["status"] == "kept":
            out["outputs"] += int(r["outputs"] or 0)
        if r["reason"]:
            out["reasons"][r["reason"]] = int(r["n"])
            if r["why"] and r["status"] != "kept":
                out["why"][r["reason"]] = r["why"]  # one item's words, e.g. the setting that would allow it
            if r["first_item"] and r["status"] != "kept":
                firsts[r["reason"]] = r["first_item"]
    if firsts:
        # the item the words are about, by the name a user knows it by (its file or URL), not only its id
        names = _item_names(catalog, sorted(set(firsts.values())))
        out["example"] = {reason: names.get(item, item) for reason, item in firsts.items()}
    return out


def _item_names(catalog: Catalog, item_ids: list[str]) -> dict[str, str]:
    """Item id → the file, URL or title of its source (for a clip, of the clip's source)."""
    import duckdb

    try:
        rows = catalog.query(
            """WITH ids AS (SELECT unnest(?) AS id)
               SELECT ids.id, coalesce(s.origin_uri, s.url, s.title, s.source_id) AS name FROM ids
               JOIN sources s ON s.source_id = ids.id
               UNION ALL
               SELECT ids.id, coalesce(s.origin_uri, s.url, s.title, s.source_id) FROM ids
               JOIN clips c ON c.clip_id = ids.id JOIN sources s ON s.source_id = c.source_id""",
            [item_ids],
        )
    except duckdb.Error as exc:  # an older catalog without a column: the ids stand
        log.debug("item names: %s", exc)
        return {}
    return {r["id"]: r["name"] for r in rows}


def run_pipeline(
    settings,
    *,
    progress: Progress | None = None,
    purpose: str | None = None,
    build_name: str | None = None,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
    labels: list[str] | None = None,
    limit: int | None = None,
    transport: Any = None,
    source_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Run the main job with ``settings``; returns a JSON-ready summary (counts from outcome rows).
    ``source_ids`` (a plan's sources, ``clipfactory run --plan``) are built beside the datasets' sources."""
    from ..acquire.driver import fetch_stage_run, policy_settings
    from ..stages.policy.gate import policy_fingerprint

    purpose = purpose or settings.purpose
    name = build_name or settings.build.name
    datasets = list(datasets if datasets is not None else getattr(settings, "datasets", []) or [])
    splits = list(splits if splits is not None else getattr(settings, "splits", []) or [])
    labels = list(labels if labels is not None else getattr(settings, "labels", []) or [])
    if limit is None:
        limit = getattr(settings, "limit", None)
    progress = progress or NullProgress()
    from .. import registry

    # every configured stage's options are read now, so a misspelt or bad option stops the run before it
    # opens the catalog or does any work (each stage reads its options again when the run reaches it)
    for n in sorted(settings.stages):
        registry.get(n)(settings.stage_config(n))
    # so is every object-store location the run writes to: a missing bucket, missing credentials or an
    # unreachable endpoint is one error naming the setting, not a failure of every item (``parts`` is the
    # executor's to check)
    for setting, location in (("store", settings.store), ("build.out", settings.build.out)):
        check_location(setting, str(location))
    catalog = Catalog(settings.catalog)
    if not settings.inputs and not datasets and not source_ids:
        raise _nothing_named(catalog)
    selected = select_sources(catalog, datasets, splits=splits, labels=labels, limit=limit) if datasets else []
    if source_ids:
        selected = list({s.source_id: s for s in selected + sources_by_id(catalog, source_ids)}.values())
    if datasets and not selected and not settings.inputs:
        raise _nothing_selected(catalog, datasets, splits, labels)

    for n in OPTIONAL_STAGES + OPT_IN_STAGES:  # a missing extra or a bad endpoint stops the run before any work
        if registry.get(n).wanted(settings.stage_config(n)):
            registry.get(n)(settings.stage_config(n)).check()
    store = BlobStore(settings.store)
    cleaned = store.clean_incoming()
    report: dict[str, Any] = {"items": []}
    inputs: dict[str, list[str]] = {}
    stages: dict[str, Stage] = {}
    sent_on: dict[str, int] = {}  # records each stage handed to the next one
    resumed: dict[str, int] = {}  # received items an earlier run had finished
    planned: list[ClipRecord] = []
    with Run(settings, command="run", catalog=catalog, progress=progress) as run:
        owned: list[SourceRecord] = []
        if settings.inputs:
            report, owned = add_owned(
                catalog, settings, list(settings.inputs),
                license=settings.license, rights_holder=settings.rights_holder, run=run,
            )
            resumed["acquire.local"] = int(report.get("skipped") or 0)
            sent_on["acquire.local"] = len(owned)
        sources = list({s.source_id: s for s in owned + selected}.values())
        source_ids = [s.source_id for s in sources]

        gate_cfg = {
            "purpose": purpose,
            "policy_hash": policy_fingerprint(settings, purpose),
            "evaluation": list(settings.build.evaluation_manifests),
        }

        gate = registry.get(GATE_STAGE)(gate_cfg, run.context(policy_settings=policy_settings(settings)))
        stages[GATE_STAGE] = gate
        inputs[GATE_STAGE] = source_ids
        gated = run.stage(gate, sources)
        allowed = gated.outputs
        resumed[GATE_STAGE], sent_on[GATE_STAGE] = gated.summary.skipped, len(allowed)

        # Web sources without a blob are fetched; the rest already have their bytes.
        to_fetch = [s for s in allowed if not s.blob_uri and s.url]
        have = [s for s in allowed if s.blob_uri]
        inputs[FETCH_STAGE] = [s.source_id for s in to_fetch]
        fetched: list = []
        if to_fetch:
            fetch_stage, done = fetch_stage_run(run, to_fetch, transport=transport)
            stages[FETCH_STAGE] = fetch_stage
            fetched = [s for s in done["outputs"] if isinstance(s, SourceRecord)]
            resumed[FETCH_STAGE], sent_on[FETCH_STAGE] = done["summary"].skipped, len(fetched)
        current: list = have + fetched
        # Sources the purpose may not use whose bytes are already here are analysed too (never cut or
        # exported): their fingerprints let dedup.near recognise a relabelled copy of them.
        allowed_ids = {s.source_id for s in allowed}
        held_refused = [s for s in sources if s.source_id not in allowed_ids and s.blob_uri]
        refused_ids = {s.source_id for s in held_refused}
        current += held_refused

        for n in MEDIA_STAGES + CLIP_STAGES:
            cfg = settings.stage_config(n)
            if n == "dedup.near":
                from ..fingerprints.dedup import prepare

                cfg = {"purpose": purpose, **cfg}
                prepare(catalog, store, purpose, settings)
            if n in ("media.cut", "caption.vlm") and settings.privacy.blur_faces:
                faces = settings.stage_config("signals.visual")  # the same face detector as the clips' scores
                cfg = {**cfg, "blur_faces": True,
                       **{k: faces[k] for k in ("face_detector", "face_min_score") if k in faces}}
            if n in OPTIONAL_STAGES + OPT_IN_STAGES and not registry.get(n).wanted(cfg):
                continue
            if n == "dedup.semantic":
                cfg = {"purpose": purpose, **cfg}
            stage = registry.get(n)(cfg, run.context(settings=settings) if n in OPT_IN_STAGES else run.context())
            if n in OPTIONAL_STAGES + OPT_IN_STAGES or n in ANNOTATING_STAGES or n == "media.analyse":
                stage.check()  # a missing extra stops the run here, with the pip install to run
            stages[n] = stage
            if n == CLIP_STAGES[0]:  # media.analyse emits the updated source, then its clips
                planned = [r for r in current if isinstance(r, ClipRecord)]
                current = [r for r in planned if r.source_id not in refused_ids]
                sent_on["media.analyse"] = len(current)
            inputs[n] = [stage.item_id(r) for r in current]
            done_n = run.stage(stage, current)
            if (n in OPTIONAL_STAGES or n in ANNOTATING_STAGES) and not getattr(stage.config, "required", False):
                current = _with_unannotated(current, done_n.outputs)
            else:
                current = done_n.outputs
            resumed[n], sent_on[n] = done_n.summary.skipped, len(current)
        kept = [r for r in current if isinstance(r, ClipRecord)]
        sent_on["media.cut"] = len(kept)

        export = registry.get(EXPORT_STAGE)({"name": name, "purpose": purpose}, run.context(settings=settings))
        stages[EXPORT_STAGE] = export
        inputs[EXPORT_STAGE] = [c.clip_id for c in kept]
        exported = run.stage(export, kept)
        build = export.last_build
        resumed[EXPORT_STAGE] = exported.summary.skipped
        sent_on[EXPORT_STAGE] = _members_of(catalog, build.get("build_id"), inputs[EXPORT_STAGE])
    run_id = run.run_id
    with catalog.write() as con:
        record_resumed(con, run_id, sum(resumed.values()))

    # Counts from outcome rows: every item that entered each stage, whichever run finished it.
    counts: dict[str, Any] = {}
    if report["items"]:
        counts["acquire.local"] = stage_counts(catalog, run_local_stage(settings), report["items"])
        counts["acquire.local"]["received"] = len(dict.fromkeys(report["items"]))
    for n, st in stages.items():
        counts[n] = stage_counts(catalog, st, inputs[n])
        counts[n]["received"] = len(dict.fromkeys(inputs[n]))
    for n, c in counts.items():
        c["outputs"] = sent_on.get(n, 0)
    order = {n: i for i, n in enumerate(counts)}
    new_rows = sorted(
        catalog.query(
            "SELECT stage, status, count(*) AS n FROM stage_outcomes WHERE run_id = ? GROUP BY ALL ORDER BY stage, status",
            [run_id],
        ),
        key=lambda r: (order.get(r["stage"], len(order)), r["stage"], r["status"]),
    )
    return {
        "run_id": run_id,
        "status": run.status,
        "purpose": purpose,
        "datasets": datasets,
        "inputs": len(report["items"]),
        "sources": len(source_ids),
        "fetched": len(fetched),
        "fingerprint_only_sources": len(held_refused),
        "clips_planned": len(planned),
        "clips_withheld": len(planned) - len(inputs[CLIP_STAGES[0]]),
        "clips_sent_on": len(inputs[CLIP_STAGES[0]]),
        "clips_kept": len(kept),
        "clips_exported": sent_on[EXPORT_STAGE],
        "stages": counts,
        "resumed": {n: resumed.get(n, 0) for n in counts},
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
        "recovered_parts": run.recovered,
        "interrupted_runs": run.interrupted,
        "cleaned_incoming": cleaned,
    }


def _with_unannotated(received: list, outputs: list) -> list:
    """An optional stage's outputs, with the clips it failed put back unchanged, in the order received."""
    done = {r.id: r for r in outputs}
    return [done.get(r.id, r) for r in received]


def _members_of(catalog: Catalog, build_id: str | None, clip_ids: list[str]) -> int:
    """How many of ``clip_ids`` the build ``build_id`` holds: the clips this run's build ships."""
    if not build_id or not clip_ids:
        return 0
    return int(
        catalog.scalar(
            "SELECT count(DISTINCT clip_id) FROM build_members WHERE build_id = ? AND clip_id IN (SELECT unnest(?))",
            [build_id, list(dict.fromkeys(clip_ids))],
        )
        or 0
    )


def run_local_stage(settings) -> Stage:
    from .. import registry

    return registry.get("acquire.local")(settings.stage_config("acquire.local"))
