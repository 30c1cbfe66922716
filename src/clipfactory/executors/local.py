"""The local executor: runs a pipeline of stages in this process (or a pool of worker processes).

Workers never open the catalog. Each batch's outcome rows and output records go to Parquet part files
(written atomically), and this process, the single writer, loads the parts into DuckDB with
``INSERT … SELECT FROM read_parquet(...)`` and deletes them. Parts left behind by a crash are loaded on the
next start, so no finished work is lost. Each part is recorded in ``loaded_parts`` in the transaction that
loads it, so a writer that dies between that commit and deleting the files loads none of them twice.

Resume is keyed by content: an item is skipped when the catalog already has a kept or dropped outcome for
``(item_id, stage, stage_version, config_hash)``; its outputs are read back from the catalog.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing as mp
import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, load_records, outcomes
from ..catalog.db import replace_records
from ..errors import ErrorBudgetExceeded
from ..progress import NullProgress, Progress
from ..records import Record, Result
from ..stage import Stage
from .parts import PartStore, write_batch_parts

log = logging.getLogger(__name__)

@dataclass
class StageSummary:
    stage: str
    kept: int = 0
    dropped: int = 0
    failed: int = 0
    skipped: int = 0
    outputs: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: str
    stages: list[StageSummary]
    outputs: list[Record]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stages": [vars(s) for s in self.stages],
            "n_outputs": len(self.outputs),
        }


# -- worker-process side -----------------------------------------------------------------------------
_WORKER_STAGE: Stage | None = None


def _quiet_interrupt(signum, frame) -> None:
    # Ctrl-C reaches every process of the terminal's group: a worker leaves as SystemExit, which unwinds its
    # stack as KeyboardInterrupt would (temporary files are removed) but which multiprocessing does not
    # print as a traceback; the driver says "interrupted" once.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process for the block (the main thread only: signals are its business)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _worker_init(stage_cls: type[Stage], config: dict, context) -> None:
    global _WORKER_STAGE
    import signal

    signal.signal(signal.SIGINT, _quiet_interrupt)
    _WORKER_STAGE = stage_cls(config, context)
    _WORKER_STAGE.setup()


def _worker_run(items: list[Record]) -> list[Result]:
    assert _WORKER_STAGE is not None
    return _WORKER_STAGE.process_batch(items)


class LocalExecutor:
    """Runs stages one after another; items flow between them as records."""

    name = "local"

    def __init__(
        self,
        catalog: Catalog,
        *,
        workers: int = 1,
        retries: int = 3,
        error_budget: float = 0.05,
        progress: Progress | None = None,
        backoff_s: float = 0.5,
        parts: str | None = None,
    ):
        self.catalog = catalog
        self.workers = max(1, int(workers))
        self.retries = max(1, int(retries))
        self.error_budget = error_budget
        self.progress = progress or NullProgress()
        self.backoff_s = backoff_s
        #: Where the batches' Parquet parts wait to be loaded: by default ``<catalog>.parts`` beside the
        #: catalog; with ``parts`` (a folder or an fsspec URL such as ``s3://bucket/prefix``), the catalog's
        #: own folder under it (``<parts>/<catalog id>``), so catalogs may share one location.
        if parts:
            from ..catalog.meta import catalog_id

            root = f"{str(parts).rstrip('/')}/{catalog_id(catalog)}"
        else:
            root = os.path.abspath(catalog.path.with_name(catalog.path.name + ".parts"))
        self.parts = PartStore(root, setting=str(parts) if parts else None)
        self.parts_root = self.parts.root  # the local folder of the parts (None on an object store)
        #: Batches' part files are loaded into the catalog at most this often (and at the end of each
        #: stage): a catalog transaction costs tens of milliseconds, a part file a fraction of one. A crash
        #: loses nothing: parts on disk are loaded by the next run (:meth:`recover_parts`).
        self.flush_s = 5.0
        self._tag = _stage_run_tag()
        self._run_id: str | None = None
        #: DuckDB threads while a load reads its parts (0: the catalog's own setting). A part is small (a
        #: batch's results), and DuckDB's parallel scan of many small files costs more than it gains: one
        #: thread reads them in about 60% of the CPU and 75% of the wall time of two (bench_parts_load.py).
        self.load_threads = 1

    # -- parts -------------------------------------------------------------------------------------
    def recover_parts(self) -> int:
        """Load part files left by an interrupted run, before any new work. Returns how many were loaded.

        The catalog records every location its parts went to (``catalog_meta``), so parts left under an
        earlier ``parts`` setting are loaded too, in the order they were written, whatever this run's
        setting: loaded later, after newer work, their older rows would replace newer ones. A location that
        cannot be reached stops the run (one error naming it) rather than leaving its parts behind."""
        from ..catalog import meta

        current = (self.parts.url, self.parts.setting)
        known = meta.parts_locations(self.catalog)
        stores = [PartStore(root, setting) for root, setting in known if root != self.parts.url]
        pending = []
        for store in [*stores, self.parts]:
            store.clean_temporaries()
            names = store.names()
            if names:
                pending.append((names[0], store, names))
        for _, store, names in sorted(pending, key=lambda p: p[0]):
            if store is not self.parts:
                log.info("loading %d parts left under %s", len(names), store.setting)
            self._load_parts(names, store)
        if known != [current]:  # the others are empty now
            meta.set_parts_locations(self.catalog, [current])
        return sum(len(names) for _, _, names in pending)

    def _nothing_pending(self) -> None:
        """Every part this executor wrote is loaded: the catalog stops naming its object-store location, so a
        later run with another setting, and without that store's credentials, does not have to list it."""
        from ..catalog import meta

        if meta.parts_locations(self.catalog):
            meta.set_parts_locations(self.catalog, [])

    def _write_parts(
        self, run_id: str, stage: Stage, seq: int, results: list[Result], attempt: dict[str, int]
    ) -> list[str]:
        # Names start with a token of the stage run, in time order, then the batch: unique when one run
        # runs a stage twice (loaded_parts is keyed by name), and sorted in the order they were written.
        prefix = f"{run_id}/{self._tag}-{seq:06d}-{stage.name}"
        return write_batch_parts(self.parts, prefix, run_id, stage, results, attempt)

    def _load_parts(self, names: list[str], store: PartStore | None = None) -> None:
        """Load the parts ``names`` (relative to the root of ``store``, by default this executor's) into the
        catalog, then delete them."""
        from ..catalog.db import RECORD_TYPES

        store = store or self.parts
        tables = {cls.table: cls for cls in RECORD_TYPES}
        # One statement per table for all the parts (in the order they were written: the last row of an
        # id wins), records before outcomes, all in one transaction with the record of the parts loaded.
        with self.catalog.write() as con:
            done = {
                r[0]
                for r in con.execute(
                    "SELECT part FROM loaded_parts WHERE part IN (SELECT unnest(?))", [list(names)]
                ).fetchall()
            }
            todo = [n for n in names if n not in done]
            with store.local_files(todo) as local, _threads(con, self.load_threads):
                outcome_parts: list[str] = []
                record_parts: dict[str, list[str]] = {}
                for n in todo:
                    if n.endswith("-outcomes.parquet"):
                        outcome_parts.append(local[n])
                    else:
                        table = n[: -len(".parquet")].rsplit("-records-", 1)[1]
                        if table not in tables:
                            raise ValueError(f"unknown record table in part {n}")
                        record_parts.setdefault(table, []).append(local[n])
                # Local names sort as the part names do (the same relative path under another folder).
                for table, files in record_parts.items():
                    replace_records(
                        con,
                        tables[table],
                        "SELECT * FROM read_parquet(?, filename = true, file_row_number = true, union_by_name = true)",
                        [sorted(files)],
                        order_by=("filename", "file_row_number"),
                    )
                if outcome_parts:
                    outcomes.load_outcome_parts(con, outcome_parts)
            if todo:
                outcomes.record_loaded_parts(con, [(n, n.split("/", 1)[0]) for n in todo])
        self._unlink_parts(list(names), store)

    def _unlink_parts(self, names: list[str], store: PartStore | None = None) -> None:
        (store or self.parts).delete(names)

    # -- resume ------------------------------------------------------------------------------------
    def _finished(self, stage: Stage, ids: list[str]) -> dict[str, tuple[str, list[str]]]:
        if not ids or not stage.resume:
            return {}
        with self.catalog.read() as con:
            con.register("_cf_ids", pa.table({"id": pa.array(ids, pa.string())}))
            try:
                rows = con.execute(
                    """SELECT o.item_id, o.status, o.output_ids FROM latest_outcomes o JOIN _cf_ids i ON o.item_id = i.id
                       WHERE o.stage = ? AND o.stage_version = ? AND o.config_hash = ? AND o.status IN ('kept', 'dropped')""",
                    [stage.name, stage.version, stage.config_hash],
                ).fetchall()
            finally:
                con.unregister("_cf_ids")
        return {r[0]: (r[1], list(r[2] or [])) for r in rows}

    def _changed(self, stage: Stage, results: list[Result]) -> list[Result]:
        """Results of a stage that is not resumed, less those that repeat the item's latest outcome."""
        ids = [r.item_id for r in results]
        with self.catalog.read() as con:
            con.register("_cf_ids", pa.table({"id": pa.array(ids, pa.string())}))
            try:
                rows = con.execute(
                    """SELECT o.item_id, o.status, o.reason, o.detail FROM latest_outcomes o
                       JOIN _cf_ids i ON o.item_id = i.id
                       WHERE o.stage = ? AND o.stage_version = ? AND o.config_hash = ?""",
                    [stage.name, stage.version, stage.config_hash],
                ).fetchall()
            finally:
                con.unregister("_cf_ids")
        before = {r[0]: (r[1], r[2], r[3]) for r in rows}
        return [r for r in results if before.get(r.item_id) != (r.status, r.reason, r.detail)]

    # -- running -----------------------------------------------------------------------------------
    def start_run(self, command: str, config: dict[str, Any] | None = None) -> str:
        outcomes.mark_interrupted(self.catalog)
        with self.catalog.write() as con:
            return outcomes.start_run(con, command, self.name, config)

    def finish_run(self, run_id: str, status: str) -> None:
        with self.catalog.write() as con:
            outcomes.finish_run(con, run_id, status)

    def run(
        self,
        stages: Sequence[Stage],
        items: Iterable[Record],
        *,
        run_id: str | None = None,
        command: str = "pipeline",
        config: dict[str, Any] | None = None,
    ) -> RunSummary:
        self.recover_parts()
        own_run = run_id is None
        run_id = run_id or self.start_run(command, config)
        current = list(items)
        summaries = []
        status = "failed"
        try:
            for stage in stages:
                current, summary = self._run_stage(run_id, stage, current)
                summaries.append(summary)
            status = "finished"
            if self.parts.remote:
                self._nothing_pending()
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if own_run:
                self.finish_run(run_id, status)
        return RunSummary(run_id, summaries, current)

    def _run_stage(self, run_id: str, stage: Stage, items: list[Record]) -> tuple[list[Record], StageSummary]:
        summary = StageSummary(stage.name)
        self._tag = _stage_run_tag()
        self._run_id = run_id
        ids = [stage.item_id(i) for i in items]
        done = self._finished(stage, ids)
        todo = [i for i, iid in zip(items, ids, strict=True) if iid not in done]
        summary.skipped = len(items) - len(todo)
        out_by_item: dict[str, list[Record]] = {}
        # Outputs of items finished earlier are read back from the catalog.
        kept_ids = [oid for st, oids in done.values() if st == "kept" for oid in oids]
        if kept_ids:
            from ..catalog.db import RECORD_TYPES

            # A fan-out may emit several record types (e.g. the updated source and its clips): look in each table.
            first = stage.output_type or type(items[0])
            types = [first] + [t for t in RECORD_TYPES if t is not first]
            loaded: dict[str, Record] = {}
            with self.catalog.read() as con:
                for cls in types:
                    missing = [o for o in kept_ids if o not in loaded]
                    if not missing:
                        break
                    loaded.update({r.id: r for r in load_records(con, cls, missing)})
            for iid, (st, oids) in done.items():
                if st == "kept":
                    out_by_item[iid] = [loaded[o] for o in oids if o in loaded]
        self.progress.start(stage.name, total=len(items), unit="items")
        if summary.skipped:
            self.progress.advance(stage.name, summary.skipped)
        bugs = 0
        seq = 0
        pending: list[str] = []
        flushed = time.monotonic()
        try:
            for results, attempts in self._process(stage, todo):
                fresh = results if stage.resume else self._changed(stage, results)
                pending += self._write_parts(run_id, stage, seq, fresh, attempts)
                seq += 1
                if time.monotonic() - flushed >= self.flush_s:
                    self._load_parts(pending)
                    pending, flushed = [], time.monotonic()
                bugs = self._count(summary, out_by_item, results, bugs)
                self.progress.advance(stage.name, len(results), **stage.progress_info(results))
                if bugs > max(2, self.error_budget * len(items)):
                    raise ErrorBudgetExceeded(
                        f"{bugs} items failed with bugs in stage {stage.name}; stopping the run",
                        item=stage.name,
                        fix="see the failed outcome rows with `clipfactory runs show`",
                    )
        finally:
            if pending:
                self._load_parts(pending)
        self.progress.finish(stage.name)
        outputs = [rec for iid in ids for rec in out_by_item.get(iid, [])]
        summary.outputs = len(outputs)
        return outputs, summary

    @staticmethod
    def _count(summary: StageSummary, out_by_item: dict, results: list[Result], bugs: int) -> int:
        for r in results:
            if r.status == Result.KEPT:
                summary.kept += 1
                out_by_item[r.item_id] = list(r.records)
            elif r.status == Result.DROPPED:
                summary.dropped += 1
                summary.reasons[r.reason or "?"] = summary.reasons.get(r.reason or "?", 0) + 1
            else:
                summary.failed += 1
                key = f"failed.{r.error_kind}"
                summary.reasons[key] = summary.reasons.get(key, 0) + 1
                bugs += r.error_kind == "bug"
        return bugs

    def _process(self, stage: Stage, items: list[Record]):
        """Yield ``(results, attempts)`` per batch, retrying transient failures with backoff and jitter.
        ``fn(batch, attempt)`` runs a batch (``attempt`` counts from 1)."""
        if not items:
            return
        size = len(items) if stage.driver_side else stage.batch_size
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        if self.workers == 1 or stage.driver_side:
            stage.setup()
            try:
                if len(batches) > 1:
                    stage.prefetch(items)
                for batch in batches:
                    yield self._with_retries(lambda b, _attempt: stage.process_batch(b), stage, batch)
            finally:
                stage.teardown()
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(type(stage), stage.config.model_dump(), stage.context),
        ) as pool:
            # The workers start (spawn) inside submit: with Ctrl-C ignored there, they import clipfactory
            # with it ignored too, until _worker_init makes it a quiet exit; an interrupt while they
            # import would print a traceback per worker.
            with _sigint_ignored():
                futures = [pool.submit(_worker_run, b) for b in batches]
            for batch, fut in zip(batches, futures, strict=True):
                yield self._with_retries(
                    lambda b, _attempt: pool.submit(_worker_run, b).result(), stage, batch, first=fut.result()
                )

    def _with_retries(
        self, fn, stage: Stage, batch: list[Record], first: list[Result] | None = None
    ) -> tuple[list[Result], dict[str, int]]:
        results = first if first is not None else fn(batch, 1)
        _check_results(stage, batch, results)
        attempts = {stage.item_id(i): 1 for i in batch}
        for attempt in range(2, self.retries + 1):
            retry = [
                i
                for i, r in zip(batch, results, strict=True)
                if r.status == Result.FAILED and r.error_kind == "transient"
            ]
            if not retry:
                break
            time.sleep(self.backoff_s * (2 ** (attempt - 2)) * (0.5 + random.random()))
            again = fn(retry, attempt)
            _check_results(stage, retry, again)
            by_id = {r.item_id: r for r in again}
            for i in retry:
                attempts[stage.item_id(i)] = attempt
            results = [by_id.get(r.item_id, r) for r in results]
        return results, attempts


@contextlib.contextmanager
def _threads(con, n: int):
    """DuckDB's ``threads`` set to ``n`` (when not 0) for the block, then set back (the setting is the
    database's, not the connection's)."""
    if not n:
        yield
        return
    before = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.execute(f"SET threads = {int(n)}")
    try:
        yield
    finally:
        # On a connection of its own: after a failed statement this transaction refuses even a SET.
        other = con.cursor()
        try:
            other.execute(f"SET threads = {before}")
        finally:
            other.close()


def _stage_run_tag() -> str:
    """A token of one stage run: the time (so names sort in the order written), then a random part."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:4]}"


def _check_results(stage: Stage, batch: list[Record], results: list[Result]) -> None:
    if len(results) != len(batch):
        raise RuntimeError(f"stage {stage.name} returned {len(results)} results for {len(batch)} items")
    want = [stage.item_id(i) for i in batch]
    got = [r.item_id for r in results]
    if want != got:
        raise RuntimeError(f"stage {stage.name} returned results out of order or for other items")
