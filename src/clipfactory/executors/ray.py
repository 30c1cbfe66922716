"""The Ray executor: each stage becomes one Ray Data ``map_batches`` call.

A stage that needs a GPU runs as an actor class, one instance per worker; any other stage runs as
function tasks, one block (one batch) each, and a worker process keeps the instance of a stage with its own
``setup`` for the rest of that stage run (worker processes are reused from stage to stage, where an actor
pool would start new ones for every stage). Input records travel as Arrow tables of their own record type; results come back as Arrow rows (status, reason, error, and the output records as JSON rows with
their type), and this driver writes them through exactly the same Parquet-part path as the local executor.
The same pipeline therefore gives the same catalog rows on both executors; a test proves it.

On a cluster of several machines:

- **Workers never open the catalog.** Before each stage the driver copies the catalog file (under the
  catalog's shared lock, so no writer is half way) into Ray's object store; each worker process writes
  that snapshot to a local temporary file once and its stage reads it (``context.catalog_path``). The
  workers' environment names the live catalog in ``CLIPFACTORY_WORKER_OF_CATALOG``, so a stage that
  still tried to open it would fail instead of reading a file the writer holds (or that another machine
  cannot see).
- **Limits shared by all workers.** One :class:`~clipfactory.limits.SharedLimits` actor per executor
  counts per-origin connections and requests per second over every worker
  (``context.extras["shared_limits"]``), so eight fetch workers still send at most
  ``per_host_connections`` requests at once to an origin.
- **Workers write the parts when every machine reaches them.** With ``parts`` on object storage
  (``s3://…``), the worker that ran a batch of a resumed stage writes the batch's Parquet parts to the bucket
  and returns their names with the results; the driver loads them. Otherwise (parts beside the catalog, a
  stage that keeps only changed results, or a batch with transient failures, which the driver retries and
  then stores with each item's last attempt only) the driver writes the parts of each batch.
- **A lost node loses only its batches in flight.** Ray Data re-runs the tasks of a node that died (the
  parts a re-run task had already written are deleted at the end of the stage: no result names them); a
  driver that dies leaves the parts to the next run, which loads each part once (``loaded_parts``) and skips
  the items they finished.

Ray stays inside this module. Stages never know which executor runs them.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
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
        # The parts a worker wrote for its batch (on the batch's first row), when workers write them, or
        # why it could not write them.
        ("parts", pa.list_(pa.string())),
        ("parts_error", pa.string()),
    ]
)


def _record_types() -> dict[str, type[Record]]:
    from ..catalog.db import RECORD_TYPES

    return {cls.table: cls for cls in RECORD_TYPES}


def results_to_table(
    results: list[Result], parts: list[str] | None = None, parts_error: str | None = None
) -> pa.Table:
    rows = []
    for i, r in enumerate(results):
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
                "parts": list(parts or []) if i == 0 else [],
                "parts_error": parts_error if i == 0 else None,
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


# -- worker side ---------------------------------------------------------------------------------------
#: Snapshots this worker process has written to local files: token → path.
_SNAPSHOTS: dict[str, str] = {}
_SNAPSHOT_DIR: list[str] = []


def _snapshot_path(snapshot) -> str | None:
    """The local file of the catalog snapshot ``(token, [ref])``, written on first use in this process."""
    if snapshot is None:
        return None
    token, refs = snapshot
    path = _SNAPSHOTS.get(token)
    if path is None:
        import ray

        data, wal = ray.get(refs[0])
        if not _SNAPSHOT_DIR:
            d = tempfile.mkdtemp(prefix="clipfactory-snapshot-")
            _SNAPSHOT_DIR.append(d)
            atexit.register(shutil.rmtree, d, True)
        path = os.path.join(_SNAPSHOT_DIR[0], f"{token}.duckdb")
        tmp = path + ".part"
        with open(tmp, "wb") as fh:
            fh.write(data)
        if wal is not None:
            with open(tmp + ".wal", "wb") as fh:
                fh.write(wal)
            os.replace(tmp + ".wal", path + ".wal")
        os.replace(tmp, path)
        for old in list(_SNAPSHOTS):  # a worker needs only the snapshot of the stage it runs now
            stale = _SNAPSHOTS.pop(old)
            for f in (stale, stale + ".wal", stale + ".lock"):
                with contextlib.suppress(OSError):
                    os.unlink(f)
        _SNAPSHOTS[token] = path
    return path


def _worker_context(context, snapshot, shared_limits, guard: str | None = None):
    """The stage context of a worker: the catalog snapshot for the catalog, the shared limits in the
    extras; and the live catalog named in this process's environment, so that opening it fails."""
    if guard:
        os.environ[_catalog_env()] = guard
    extras = dict(context.extras)
    if shared_limits is not None:
        extras["shared_limits"] = shared_limits
    path = _snapshot_path(snapshot)
    return dataclasses.replace(context, catalog_path=path if snapshot else context.catalog_path, extras=extras)


#: Part stores of this worker process, by URL.
_PART_STORES: dict[str, Any] = {}


def _run_batch(stage: Stage, cls: type[Record], batch: pa.Table, parts_spec) -> pa.Table:
    """Process one batch; with ``parts_spec`` (parts URL, the ``parts`` setting, run id, stage run token,
    attempt) also write the batch's parts from here and name them in the result."""
    items = cls.from_table(batch)
    results = stage.process_batch(items)
    if parts_spec is None:
        return results_to_table(results)
    from .local import _check_results
    from .parts import PartsStorageError, PartStore, write_batch_parts

    _check_results(stage, items, results)  # a stage's bug fails here, before anything is written
    if any(r.status == Result.FAILED and r.error_kind == "transient" for r in results):
        # The driver retries these items and writes the batch's final results itself, as the local executor
        # does: an attempt that a retry supersedes is not stored.
        return results_to_table(results)
    url, setting, run_id, tag, attempt = parts_spec
    store = _PART_STORES.get(url)
    if store is None:
        store = _PART_STORES[url] = PartStore(url, setting)
    # The stage run's token first, then the attempt: a retry's parts load after the attempt before it.
    prefix = f"{run_id}/{tag}-a{attempt:02d}-{time.time_ns():016x}{uuid.uuid4().hex[:6]}-{stage.name}"
    try:
        names = write_batch_parts(store, prefix, run_id, stage, results, {r.item_id: attempt for r in results})
    except PartsStorageError as exc:  # the driver stops the run with it; the batch is done again next time
        return results_to_table(results, parts_error=str(exc))
    return results_to_table(results, names)


class _StageActor:
    """Holds one stage instance per Ray worker; ``setup`` runs once."""

    def __init__(
        self, stage_cls: type[Stage], config: dict, context, record_table: str, snapshot=None, limits=None,
        guard=None, parts_spec=None,
    ):
        self.stage = stage_cls(config, _worker_context(context, snapshot, limits, guard))
        self.stage.setup()
        self.cls = _record_types()[record_table]
        self.parts_spec = parts_spec

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _run_batch(self.stage, self.cls, batch, self.parts_spec)


#: The stage instances of this worker process, by stage run: a task of a stage with ``setup`` (a model to
#: load, a connection pool) reuses the instance an earlier task of the same stage run set up.
_STAGES: dict[tuple, Stage] = {}


def _stage_fn(
    batch: pa.Table, stage_cls: type[Stage], config: dict, context, record_table: str, snapshot=None, limits=None,
    run_key: str = "", guard: str | None = None, parts_spec=None,
) -> pa.Table:
    key = (stage_cls.__module__, stage_cls.__qualname__, run_key)
    stage = _STAGES.get(key)
    if stage is None:
        for old in [k for k in _STAGES if k[:2] == key[:2]]:  # an earlier run of the same stage is over
            with contextlib.suppress(Exception):
                _STAGES.pop(old).teardown()
        stage = stage_cls(config, _worker_context(context, snapshot, limits, guard))
        stage.setup()
        _STAGES[key] = stage
    return _run_batch(stage, _record_types()[record_table], batch, parts_spec)


class _RemoteLimits:
    """A worker's client of the executor's :class:`~clipfactory.limits.SharedLimits` actor: the same
    coroutines, each awaiting the actor's answer."""

    def __init__(self, handle):
        self.handle = handle

    async def reserve(self, key: str, rate: float, burst: int) -> float:
        return await self.handle.reserve.remote(key, rate, burst)

    async def acquire(self, key: str, connections: int) -> None:
        await self.handle.acquire.remote(key, connections)

    async def release(self, key: str) -> None:
        await self.handle.release.remote(key)

    async def pause(self, key: str, seconds: float) -> None:
        await self.handle.pause.remote(key, seconds)

    async def stats(self) -> dict[str, int]:
        return await self.handle.stats.remote()


class RayExecutor(LocalExecutor):
    """Runs each stage as a Ray Data ``map_batches``; persistence, resume and retries are the local executor's.

    ``address`` is a Ray cluster address (``auto``, or ``host:port`` of the head node; the driver runs on a node
    of the cluster: Ray Client's ``ray://`` is refused); ``None`` starts a Ray of its own on this machine,
    unless this process already runs one, which is then used as it is. :meth:`shutdown` stops only a Ray
    that this executor started itself.
    """

    name = "ray"

    def __init__(self, catalog, *, address: str | None = None, **kwargs):
        if address and address.strip().lower().startswith("ray://"):
            from ..errors import ConfigError

            raise ConfigError(
                "the Ray executor does not run through Ray Client (ray://): Ray Data's streaming execution "
                "needs a driver that is part of the cluster",
                item=f"ray_address = {address}",
                fix='run `clipfactory run` on a node of the cluster (the head node) with ray_address = "auto"',
            )
        super().__init__(catalog, **kwargs)
        self.address = address
        self._ray = None
        self._started_ray = False
        self._limits = None
        self._snapshot: tuple[tuple[int, int, int], Any] | None = None
        self._from_workers: list[str] | None = None

    def _init_ray(self):
        if self._ray is None:
            ray = require("ray", "ray", feature="the Ray executor")
            if not ray.is_initialized():
                kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
                if self.address:
                    _check_reachable(self.address)
                    kwargs["address"] = self.address
                else:
                    # A Ray of its own on this machine, also when another Ray (a cluster, another job's)
                    # runs here: without "local", ray.init joins that one.
                    kwargs.update(
                        address="local",
                        num_cpus=self.workers if self.workers > 1 else None,
                        include_dashboard=False,
                    )
                try:
                    ray.init(**{k: v for k, v in kwargs.items() if v is not None})
                except ConnectionError as exc:  # "auto" with no Ray running here, a GCS that went away
                    raise _unreachable(self.address, str(exc).splitlines()[0] if str(exc) else "") from None
                self._started_ray = True
            _quiet_ray_data()
            self._ray = ray
        return self._ray

    def shared_limits(self) -> _RemoteLimits:
        """The client of this executor's shared limits actor (started on first use)."""
        ray = self._init_ray()
        if self._limits is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            from ..limits import SharedLimits

            # On the driver's node: a worker node that dies takes its batches in flight, not the limits.
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            actor = ray.remote(num_cpus=0, max_concurrency=10_000, scheduling_strategy=here)(SharedLimits)
            self._limits = _RemoteLimits(actor.remote())
        return self._limits

    def catalog_snapshot(self):
        """``(token, [ref])``: a copy of the catalog file in Ray's object store, taken under the catalog's
        shared lock; a new copy only when the file changed. ``None`` without a catalog file."""
        ray = self._init_ray()
        path = self.catalog.path
        wal = path.with_name(path.name + ".wal")
        with self.catalog.read():  # no writer between the reads of the file and its write-ahead log
            st = path.stat()
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._snapshot is not None and self._snapshot[0] == key and not wal.exists():
                return self._snapshot[1]
            data = path.read_bytes()
            wal_data = wal.read_bytes() if wal.exists() else None
        snap = (uuid.uuid4().hex, [ray.put((data, wal_data))])
        self._snapshot = (key, snap)
        return snap

    def _workers_write_parts(self, stage: Stage) -> bool:
        """Workers write their batches' parts themselves when every machine reaches the parts (an object
        store) and each result is stored as it comes (a resumed stage; the others keep only what changed,
        which the driver decides)."""
        return self.parts.remote and stage.resume and not stage.driver_side and self._run_id is not None

    def _stream(self, stage: Stage, items: list[Record], attempt: int = 1, written: list[str] | None = None):
        """Run ``stage`` over ``items`` on Ray, yielding each batch of results as Ray returns it. With
        ``written`` (a list), the workers write the parts of their batches, whose names are added to it
        before each batch is yielded."""
        ray = self._init_ray()
        if not items:
            return
        parts_spec = (
            (self.parts.url, self.parts.setting, self._run_id, self._tag, attempt) if written is not None else None
        )
        snapshot = self.catalog_snapshot() if self.catalog.path.is_file() else None
        limits = self.shared_limits() if stage.shared_limits else None
        # Workers may not open the live catalog; they read the snapshot. (The guard is set by the worker's
        # own code, not as a Ray runtime environment: one of those would start new worker processes.)
        guard = self.catalog.where
        by_type: dict[type[Record], list[Record]] = {}
        for it in items:
            by_type.setdefault(type(it), []).append(it)
        # A GPU stage runs as an actor pool (one model per GPU worker, for the dataset's lifetime). Any other
        # stage runs as tasks, which reuse worker processes from stage to stage; a stage with ``setup``
        # sets up once per process and stage run (_stage_fn), instead of starting an actor pool per stage.
        stateful = stage.resources.gpus > 0
        run_key = uuid.uuid4().hex
        config = stage.config.model_dump()
        for cls, recs in by_type.items():
            # One block per batch, so that the batches spread over the workers (one block goes to one).
            table = cls.to_table(recs)
            size = max(1, stage.batch_size)
            ds = ray.data.from_arrow([table.slice(i, size) for i in range(0, len(recs), size)])
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
                    fn_constructor_args=(
                        type(stage), config, stage.context, cls.table, snapshot, limits, guard, parts_spec
                    ),
                    # As many actors as can be busy (``workers``, or fewer when there are fewer batches),
                    # each given one batch at a time: batches are heavy, so none waits behind a busy actor
                    # while another is idle.
                    compute=ray.data.ActorPoolStrategy(
                        size=max(1, min(self.workers, -(-len(recs) // size))),
                        max_tasks_in_flight_per_actor=1,
                    ),
                    **common,
                )
            else:
                out = ds.map_batches(
                    _stage_fn,
                    fn_args=(
                        type(stage), config, stage.context, cls.table, snapshot, limits, run_key, guard, parts_spec
                    ),
                    **common,
                )
            # Ray Data streams: each output batch is yielded (and persisted by the caller) while later
            # batches are still running, so a crash loses only the batches in flight.
            for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
                rows = batch.to_pylist()
                if written is not None:
                    failed = next((row["parts_error"] for row in rows if row.get("parts_error")), None)
                    if failed:
                        from .parts import PartsStorageError

                        # already one line naming the setting and the fix, written by the worker
                        raise PartsStorageError(failed)
                    written.extend(n for row in rows for n in row.get("parts") or [])
                results = results_from_rows(rows)
                if results:
                    yield results

    def _map(
        self, stage: Stage, items: list[Record], attempt: int = 1, written: list[str] | None = None
    ) -> list[Result]:
        """Run ``stage`` over ``items`` on Ray; results come back in input order."""
        got = {r.item_id: r for results in self._stream(stage, items, attempt, written) for r in results}
        return [got[stage.item_id(i)] for i in items]

    def _process(self, stage: Stage, items: list[Record]):
        if not items:
            return
        if stage.driver_side:  # catalog stages run in the driver on every executor
            yield from super()._process(stage, items)
            return
        by_id = {stage.item_id(i): i for i in items}
        if not self._workers_write_parts(stage):
            for results in self._stream(stage, items):
                batch = [by_id[r.item_id] for r in results]
                yield self._with_retries(lambda b, _attempt: self._map(stage, b), stage, batch, first=results)
            return
        # Workers write the parts: this batch's names arrive with it, a retry's with the retry, and
        # _write_parts hands them to the caller instead of writing the results again.
        arrived: list[str] = []
        for results in self._stream(stage, items, 1, arrived):
            batch = [by_id[r.item_id] for r in results]
            written, arrived[:] = list(arrived), []
            if not written:  # a batch with failures to retry: the worker left its parts to the driver
                yield self._with_retries(lambda b, _attempt: self._map(stage, b), stage, batch, first=results)
                continue
            out = self._with_retries(
                lambda b, attempt, w=written: self._map(stage, b, attempt, w), stage, batch, first=results
            )
            self._from_workers = written
            yield out

    def _write_parts(self, run_id: str, stage: Stage, seq: int, results: list[Result], attempt: dict[str, int]):
        written, self._from_workers = self._from_workers, None
        if written is not None:  # the workers wrote this batch's parts
            return written
        return super()._write_parts(run_id, stage, seq, results, attempt)

    def _run_stage(self, run_id: str, stage: Stage, items: list[Record]):
        out = super()._run_stage(run_id, stage, items)
        if self._workers_write_parts(stage):
            # A task that Ray ran again (its node died after the worker wrote the parts, before they came
            # back) left parts that no result named; the run's results of those items came from the re-run.
            prefix = f"{run_id}/{self._tag}-"
            stale = [n for n in self.parts.names() if n.startswith(prefix)]
            if stale:
                self._unlink_parts(stale)
        return out

    def shutdown(self) -> None:
        if self._limits is not None and self._ray is not None and self._ray.is_initialized():
            with contextlib.suppress(Exception):
                self._ray.kill(self._limits.handle)
        self._limits, self._snapshot = None, None
        if self._ray is not None and self._started_ray and not self.address:
            self._ray.shutdown()
        self._ray, self._started_ray = None, False


def _quiet_ray_data() -> None:
    """Ray Data reports every dataset it runs (a dozen lines of progress and plans on stderr for each stage);
    the run's own progress says what runs. Its messages stay in Ray's log files, and on stderr with ``-v``
    (``clipfactory``'s logging at INFO or below)."""
    import logging

    import ray.data

    ctx = ray.data.DataContext.get_current()
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    if logging.getLogger("clipfactory").getEffectiveLevel() > logging.INFO:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def _unreachable(address: str | None, why: str):
    from ..errors import ConfigError

    return ConfigError(
        f"no Ray cluster answers at {address}" + (f" ({why})" if why else ""),
        item=f"ray_address = {address}",
        fix="start the cluster first (`ray start --head` on its head node, then run there with "
        'ray_address = "auto"), or leave ray_address out to run a Ray of this machine\'s own',
    )


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse at once an address ``host:port`` whose port takes no connection: ``ray.init`` would retry
    the cluster's GCS for minutes, printing only its own retries. ``auto`` and ``local`` are Ray's to
    resolve (``ray.init`` fails at once when nothing runs)."""
    from ..net import connect_error, why

    if address.strip().lower() in ("auto", "local") or ":" not in address:
        return
    host, _, port = address.strip().rpartition(":")
    try:
        port_no = int(port)
    except ValueError:
        return  # not host:port; Ray says what it makes of it
    err = connect_error(host.strip("[]") or "127.0.0.1", port_no, timeout_s)
    if err is not None:  # a timeout too: ray.init would wait on it for minutes
        raise _unreachable(address, why(err))


def _catalog_env() -> str:
    from ..catalog.db import WORKER_ENV

    return WORKER_ENV
