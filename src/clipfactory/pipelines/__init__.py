"""The run driver: the only code that creates runs and calls an executor.

Every command that processes items (``run``, ``add``, ``fetch``, ``dedup``) is a pipeline of registered
stages driven by one :class:`Run`::

    with Run(settings, command="fetch") as run:
        out = run.stage(stage, sources)      # outputs of the items kept, in input order

A :class:`Run` picks the executor that the settings name, loads Parquet parts a crash left behind, marks runs
whose process is gone ``interrupted``, records the catalog's blob store, starts one ``runs`` row and ends it
``finished``, ``failed`` or ``interrupted``. A pipeline nested inside another (``add`` inside ``run``) joins
the outer run instead of starting its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..catalog import Catalog
from ..catalog.outcomes import mark_interrupted
from ..executors import StageSummary, executor_from_settings
from ..progress import NullProgress, Progress
from ..records import Record
from ..stage import Stage, StageContext

log = logging.getLogger(__name__)


@dataclass
class StageRun:
    outputs: list[Record]
    summary: StageSummary


class Run:
    """One ``runs`` row and the executor that does its work (see the module docstring)."""

    def __init__(
        self,
        settings: Any,
        *,
        command: str,
        catalog: Catalog | None = None,
        progress: Progress | None = None,
        config: dict[str, Any] | None = None,
        parent: Run | None = None,
        **executor_kwargs: Any,
    ):
        self.settings = settings
        self.command = command
        self.catalog = catalog or (parent.catalog if parent else Catalog(settings.catalog))
        self.progress = progress or (parent.progress if parent else NullProgress())
        self.config = config if config is not None else _resolved(settings)
        self.parent = parent
        self.executor_kwargs = executor_kwargs
        self.run_id: str | None = parent.run_id if parent else None
        self.executor = parent.executor if parent else None
        self.recovered = 0
        self.interrupted: list[str] = []
        self.status = "running"
        self.stages: list[StageSummary] = []

    # -- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self.parent is not None:
            return self
        self.executor = executor_from_settings(
            self.settings, self.catalog, progress=self.progress, **self.executor_kwargs
        )
        self.recovered = self.executor.recover_parts()
        self.interrupted = mark_interrupted(self.catalog)
        store = getattr(self.settings, "store", None)
        if store:
            _record_store(self.catalog, store)
        self.run_id = self.executor.start_run(self.command, self.config)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.parent is not None:
            return
        if exc_type is None:
            self.status = "finished"
        elif issubclass(exc_type, KeyboardInterrupt):
            self.status = "interrupted"
        else:
            self.status = "failed"
        try:
            self.executor.finish_run(self.run_id, self.status)
        finally:
            if hasattr(self.executor, "shutdown"):
                self.executor.shutdown()

    # -- work -----------------------------------------------------------------------------------------
    def context(self, **extras: Any) -> StageContext:
        return StageContext(
            store_root=getattr(self.settings, "store", None),
            catalog_path=str(self.catalog.path),
            run_id=self.run_id,
            extras=extras,
        )

    def make(self, name: str, **extras: Any) -> Stage:
        """The registered stage ``name`` with its config section of the settings."""
        from .. import registry

        return registry.get(name)(self.settings.stage_config(name), self.context(**extras))

    def stage(self, stage: Stage, items: Iterable[Record], *, retries: int | None = None) -> StageRun:
        """Run one stage over ``items``; returns the outputs of the kept items (finished ones included)."""
        if self.executor is None or self.run_id is None:
            raise RuntimeError("Run.stage is called inside `with Run(...)`")
        ex = self.executor
        saved = ex.retries
        if retries is not None:
            ex.retries = max(1, int(retries))
        try:
            summary = ex.run([stage], list(items), run_id=self.run_id)
        finally:
            ex.retries = saved
        st = summary.stages[0] if summary.stages else StageSummary(stage.name)
        self.stages.append(st)
        root = self
        while root.parent is not None:
            root = root.parent
            root.stages.append(st)
        return StageRun(summary.outputs, st)


def _resolved(settings: Any) -> dict[str, Any]:
    fn = getattr(settings, "resolved", None)
    return fn() if callable(fn) else {}


def _record_store(catalog: Catalog, store: str) -> None:
    try:
        from ..catalog.meta import record_store
    except ImportError:  # pragma: no cover - the module ships with the package
        return
    record_store(catalog, store)


__all__ = ["Run", "StageRun"]
