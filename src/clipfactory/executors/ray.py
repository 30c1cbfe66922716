"""The Ray executor: each stage becomes one Ray Data ``map_batches`` call.

A stage with its own ``setup`` (models to load once) or a GPU runs as an actor class, one instance per
worker; any other stage runs as a plain function task. Input records travel as Arrow tables of their own
record type; results come back as Arrow rows (status, reason, error, and the output records as JSON rows with
their type), and this driver writes them through exactly the same Parquet-part path as the local executor.
The same pipeline therefore gives the same catalog rows on both executors; a test proves it.

Ray stays inside this module. Stages never know which executor runs them.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from ..errors import require
from ..records import Record, Result
from ..stage import Stage
from .local import LocalExecutor

_RESULT_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("error_kind", pa.string()),
        ("error", pa.string()),
        ("detail", pa.string()),
        ("out_types", pa.list_(pa.string())),
        ("out_rows", pa.list_(pa.string())),
    ]
)


def _record_types() -> dict[str, type[Record]]:
    from ..catalog.db import RECORD_TYPES

    return {cls.table: cls for cls in RECORD_TYPES}


def results_to_table(results: list[Result]) -> pa.Table:
    rows = []
    for r in results:
        rows.append(
            {
                "item_id": r.item_id,
                "status": r.status,
                "reason": r.reason,
                "error_kind": r.error_kind,
                "error": r.error,
                "detail": r.detail,
                "out_types": [type(rec).table for rec in r.records],
                "out_rows": [json.dumps(rec.to_row()) for rec in r.records],
            }
        )
    return pa.Table.from_pylist(rows, schema=_RESULT_SCHEMA)


def results_from_rows(rows: list[dict[str, Any]]) -> list[Result]:
    types = _record_types()
    out = []
    for row in rows:
        recs = tuple(
            types[t].from_row(json.loads(j)) for t, j in zip(row["out_types"], row["out_rows"], strict=True)
        )
        out.append(
            Result(
                row["item_id"],
                row["status"],
                recs,
                reason=row["reason"],
                error_kind=row["error_kind"],
                error=row["error"],
                detail=row["detail"],
            )
        )
    return out


class _StageActor:
    """Holds one stage instance per Ray worker; ``setup`` runs once."""

    def __init__(self, stage_cls: type[Stage], config: dict, context, record_table: str):
        self.stage = stage_cls(config, context)
        self.stage.setup()
        self.cls = _record_types()[record_table]

    def __call__(self, batch: pa.Table) -> pa.Table:
        return results_to_table(self.stage.process_batch(self.cls.from_table(batch)))


def _stage_fn(batch: pa.Table, stage_cls: type[Stage], config: dict, context, record_table: str) -> pa.Table:
    stage = stage_cls(config, context)
    cls = _record_types()[record_table]
    return results_to_table(stage.process_batch(cls.from_table(batch)))


class RayExecutor(LocalExecutor):
    """Runs each stage as a Ray Data ``map_batches``; persistence, resume and retries are the local executor's.

    ``address`` is a Ray cluster address (``auto`` or ``ray://host:10001``); ``None`` starts a local Ray,
    unless this process already runs one, which is then used as it is. :meth:`shutdown` stops only a Ray
    that this executor started itself.
    """

    name = "ray"

    def __init__(self, catalog, *, address: str | None = None, **kwargs):
        super().__init__(catalog, **kwargs)
        self.address = address
        self._ray = None
        self._started_ray = False

    def _init_ray(self):
        if self._ray is None:
            ray = require("ray", "ray", feature="the Ray executor")
            if not ray.is_initialized():
                kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
                if self.address:
                    kwargs["address"] = self.address
                else:
                    kwargs.update(
                        num_cpus=self.workers if self.workers > 1 else None, include_dashboard=False
                    )
                ray.init(**{k: v for k, v in kwargs.items() if v is not None})
                self._started_ray = True
            self._ray = ray
        return self._ray

    def _stream(self, stage: Stage, items: list[Record]):
        """Run ``stage`` over ``items`` on Ray, yielding each batch of results as Ray returns it."""
        ray = self._init_ray()
        if not items:
            return
        by_type: dict[type[Record], list[Record]] = {}
        for it in items:
            by_type.setdefault(type(it), []).append(it)
        stateful = type(stage).setup is not Stage.setup or stage.resources.gpus > 0
        config = stage.config.model_dump()
        for cls, recs in by_type.items():
            ds = ray.data.from_arrow(cls.to_table(recs))
            common = {
                "batch_size": stage.batch_size,
                "batch_format": "pyarrow",
                "num_cpus": stage.resources.cpus,
                "num_gpus": stage.resources.gpus or None,
            }
            common = {k: v for k, v in common.items() if v is not None}
            if stateful:
                out = ds.map_batches(
                    _StageActor,
                    fn_constructor_args=(type(stage), config, stage.context, cls.table),
                    concurrency=self.workers,
                    **common,
                )
            else:
                out = ds.map_batches(
                    _stage_fn, fn_args=(type(stage), config, stage.context, cls.table), **common
                )
            # Ray Data streams: each output batch is yielded (and persisted by the caller) while later
            # batches are still running, so a crash loses only the batches in flight.
            for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
                results = results_from_rows(batch.to_pylist())
                if results:
                    yield results

    def _map(self, stage: Stage, items: list[Record]) -> list[Result]:
        """Run ``stage`` over ``items`` on Ray; results come back in input order."""
        got = {r.item_id: r for results in self._stream(stage, items) for r in results}
        return [got[stage.item_id(i)] for i in items]

    def _process(self, stage: Stage, items: list[Record]):
        if not items:
            return
        if stage.driver_side:  # catalog stages run in the driver on every executor
            yield from super()._process(stage, items)
            return
        by_id = {stage.item_id(i): i for i in items}
        for results in self._stream(stage, items):
            batch = [by_id[r.item_id] for r in results]
            yield self._with_retries(lambda b: self._map(stage, b), stage, batch, first=results)

    def shutdown(self) -> None:
        if self._ray is not None and self._started_ray and not self.address:
            self._ray.shutdown()
        self._ray, self._started_ray = None, False
