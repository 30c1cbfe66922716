"""The local executor, and the contract every registered stage keeps."""

from __future__ import annotations

import re
import sys
from typing import ClassVar

import duckdb
import pytest
from pydantic import Field

from clipfactory import registry
from clipfactory.errors import ErrorBudgetExceeded, TransientError
from clipfactory.executors.local import LocalExecutor
from clipfactory.records import ClipRecord, Record, Result, SourceRecord
from clipfactory.stage import Stage, StageConfig, StageContext, config_docs

# -- the stage contract -------------------------------------------------------------------------------------

STAGES = registry.load_all()

#: Stage names are catalog keys and config sections: renaming one breaks resume and user configs.
KNOWN = {"acquire.local", "media.probe", "media.analyse", "media.cut", "quality.filter"}


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def test_known_stage_names_are_registered():
    assert KNOWN <= set(STAGES)


def _inputs(stage_cls: type[Stage]) -> list[Record]:
    if issubclass(stage_cls.input_type, ClipRecord):
        return [
            ClipRecord("a" * 20, "sha256:" + "0" * 64, 0, 5000, luma=120.0, sharpness=900.0),
            ClipRecord("b" * 20, "sha256:" + "0" * 64, 0, 500),
            ClipRecord("c" * 20, "sha256:" + "1" * 64, 1000, 9000),
        ]
    return [
        SourceRecord("origin:missing", "owned", origin_uri="/nonexistent/file.mp4"),
        SourceRecord("sha256:" + "2" * 64, "owned", blob_uri="blob:sha256:" + "2" * 64),
        SourceRecord("web:unreachable", "web", url="not a url"),
    ]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_contract(name, tmp_path):
    cls = STAGES[name]
    assert cls.name == name
    assert re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*", name), "names are namespaced: family.impl"
    assert isinstance(cls.version, int) and not isinstance(cls.version, bool) and cls.version >= 1
    assert isinstance(cls.batch_size, int) and cls.batch_size >= 1
    assert cls.resources.cpus >= 0 and cls.resources.memory_gb > 0
    doc = cls.__doc__ or sys.modules[cls.__module__].__doc__  # on the class, or its one-stage module
    assert doc and len(doc.strip()) > 40, "a stage documents what it reads and writes"
    assert issubclass(cls.Config, StageConfig), "Config derives from StageConfig (unknown keys are errors)"
    for field, doc in config_docs(cls.Config).items():
        assert doc["description"], f"{name}.{field} has no description"
    ctx = StageContext(store_root=str(tmp_path / "store"), catalog_path=str(tmp_path / "cat.duckdb"))
    stage = cls({}, ctx)
    stage.setup()
    try:
        assert stage.process_batch([]) == []
        items = _inputs(cls)
        results = stage.process_batch(items)
        assert len(results) == len(items)
        assert [r.item_id for r in results] == [stage.item_id(i) for i in items]
        for r in results:
            assert r.status in ("kept", "dropped", "failed")
            if r.status == "dropped":
                assert r.reason and "." in r.reason
            if r.status == "failed":
                assert r.error_kind in ("transient", "terminal", "bug") and r.error_kind != "bug", r.error
    finally:
        stage.teardown()


def test_config_hash_follows_the_config():
    cls = STAGES["quality.filter"]
    assert cls({}).config_hash == cls({}).config_hash
    assert cls({}).config_hash != cls({"min_luma": 1}).config_hash


# -- toy stages ---------------------------------------------------------------------------------------------


class Calls:
    seen: ClassVar[list[str]] = []
    crash_after: ClassVar[int | None] = None


class FanOut(Stage):
    """Reads a SourceRecord; writes it back with a title plus two clips (a mixed-type fan-out)."""

    name = "test.fanout"
    version = 1
    batch_size = 2
    input_type = SourceRecord
    output_type = ClipRecord

    class Config(StageConfig):
        n: int = Field(2, description="clips per source")

    def process(self, item):
        if Calls.crash_after is not None and len(Calls.seen) >= Calls.crash_after:
            raise KeyboardInterrupt
        Calls.seen.append(item.source_id)
        clips = [
            ClipRecord(f"{item.source_id[-4:]}{k:016d}", item.source_id, k * 1000, k * 1000 + 900)
            for k in range(self.config.n)
        ]
        return Result.kept(item.source_id, item.replace(title="seen"), *clips, detail={"frames": 10})

    def progress_info(self, results):
        return {"clips": float(sum(len(r.records) - 1 for r in results))}


class Flaky(Stage):
    """Fails transiently on the first attempt of each item, then keeps it."""

    name = "test.flaky"
    batch_size = 4
    input_type = SourceRecord

    class Config(StageConfig):
        bug: bool = Field(False, description="fail with a bug instead")

    def process(self, item):
        if self.config.bug:
            raise RuntimeError("boom")
        if item.source_id not in Calls.seen:
            Calls.seen.append(item.source_id)
            raise TransientError("busy", item=item.source_id)
        return Result.kept(item.source_id, item)


class RecordingProgress:
    def __init__(self):
        self.events = []

    def start(self, task, total=None, unit="items"):
        self.events.append(("start", task, total))

    def advance(self, task, n=1, **info):
        self.events.append(("advance", task, n, info))

    def finish(self, task):
        self.events.append(("finish", task))

    def close(self):
        pass


@pytest.fixture(autouse=True)
def _reset():
    Calls.seen, Calls.crash_after = [], None


def _sources(n):
    return [SourceRecord(f"owned:{i:04d}", "owned") for i in range(n)]


def test_fan_out_with_two_record_types_resumes_with_both(catalog):
    progress = RecordingProgress()
    ex = LocalExecutor(catalog, progress=progress)
    first = ex.run([FanOut()], _sources(3))
    assert len(first.outputs) == 9 and len(Calls.seen) == 3
    assert {type(r) for r in first.outputs} == {SourceRecord, ClipRecord}
    assert catalog.scalar("SELECT count(*) FROM clips") == 6
    assert catalog.scalar("SELECT count(*) FROM sources WHERE title = 'seen'") == 3
    assert ("advance", "test.fanout", 2, {"clips": 4.0}) in progress.events
    Calls.seen = []
    second = LocalExecutor(catalog).run([FanOut()], _sources(3))
    assert Calls.seen == [], "finished items are not processed again"
    assert second.stages[0].skipped == 3
    assert [r.id for r in second.outputs] == [r.id for r in first.outputs]
    assert [type(r) for r in second.outputs] == [type(r) for r in first.outputs]
    # Another config is another piece of work.
    LocalExecutor(catalog).run([FanOut({"n": 1})], _sources(3))
    assert len(Calls.seen) == 3


def test_an_interrupted_run_keeps_finished_batches_and_resumes(catalog):
    Calls.crash_after = 3  # dies inside the second batch (batch size 2)
    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(catalog).run([FanOut()], _sources(5))
    assert catalog.scalar("SELECT status FROM runs") == "interrupted"
    assert catalog.scalar("SELECT count(*) FROM stage_outcomes WHERE status = 'kept'") == 2  # the first batch
    Calls.seen, Calls.crash_after = [], None
    out = LocalExecutor(catalog).run([FanOut()], _sources(5))
    assert Calls.seen == [s.source_id for s in _sources(5)[2:]], "only unfinished items run again"
    assert out.stages[0].skipped == 2 and len(out.outputs) == 15


def test_parts_left_by_a_crash_are_loaded_on_the_next_start(catalog):
    ex = LocalExecutor(catalog)
    stage = FanOut()
    results = [stage.process(s) for s in _sources(2)]
    ex._write_parts("crashed-run", stage, 0, results, {})  # written, never loaded: the process "died"
    assert catalog.scalar("SELECT count(*) FROM stage_outcomes") == 0
    Calls.seen = []
    out = LocalExecutor(catalog).run([FanOut()], _sources(2))
    assert Calls.seen == [] and len(out.outputs) == 6
    assert not list(ex.parts_root.rglob("*.parquet"))


def test_a_load_reads_its_parts_on_one_thread_and_gives_the_catalog_its_threads_back(catalog):
    ex = LocalExecutor(catalog)
    stage = FanOut()
    seen = []
    names = ex._write_parts("run-a", stage, 0, [stage.process(s) for s in _sources(2)], {})
    import clipfactory.executors.local as local_mod

    real_replace = local_mod.replace_records

    def replace(con, *a, **k):
        seen.append(con.execute("SELECT current_setting('threads')").fetchone()[0])
        return real_replace(con, *a, **k)

    local_mod.replace_records = replace
    with catalog.write() as con:  # 3, not the machine's count: on a 1-core machine it would already be 1
        con.execute("SET threads = 3")
    before = catalog.scalar("SELECT current_setting('threads')")
    assert before == 3
    try:
        ex._load_parts(names)
        assert seen == [1, 1]  # the records of both tables (sources and clips) read on one thread
        assert catalog.scalar("SELECT current_setting('threads')") == before
        assert catalog.scalar("SELECT count(*) FROM clips") == 4
        # A load that fails inside its transaction (a part that is not Parquet) gives the threads back too.
        bad = ex._write_parts("run-b", stage, 1, [stage.process(s) for s in _sources(3)[2:]], {})
        (ex.parts_root / bad[0]).write_bytes(b"not parquet")
        with pytest.raises(duckdb.Error):
            ex._load_parts(bad)
        assert catalog.scalar("SELECT current_setting('threads')") == before
        assert catalog.scalar("SELECT count(*) FROM clips") == 4, "the failed load changed nothing"
    finally:
        local_mod.replace_records = real_replace


def test_transient_failures_are_retried(catalog):
    out = LocalExecutor(catalog, retries=3, backoff_s=0.001).run([Flaky()], _sources(3))
    assert out.stages[0].kept == 3
    attempts = catalog.query("SELECT attempt FROM stage_outcomes WHERE status = 'kept'")
    assert {r["attempt"] for r in attempts} == {2}


def test_bugs_past_the_error_budget_stop_the_run(catalog):
    with pytest.raises(ErrorBudgetExceeded):
        LocalExecutor(catalog, error_budget=0.0).run([Flaky({"bug": True})], _sources(8))
    assert catalog.scalar("SELECT status FROM runs") == "failed"


def test_workers_start_with_ctrl_c_ignored_then_leave_quietly():
    """Ctrl-C reaches every process of the terminal's group. The local executor's workers start (spawn)
    with SIGINT ignored, so one that is still importing prints no traceback, and _worker_init makes it a
    SystemExit, which multiprocessing does not print; the driver's own handler is given back."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal

    from clipfactory.executors import local

    before = signal.getsignal(signal.SIGINT)
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with local._sigint_ignored():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            fut = pool.submit(signal.getsignal, signal.SIGINT)  # the worker is spawned here
        assert fut.result(timeout=60) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is before
    try:
        local._worker_init(STAGES["quality.filter"], {}, None)
        assert signal.getsignal(signal.SIGINT) is local._quiet_interrupt
    finally:
        signal.signal(signal.SIGINT, before)
    with pytest.raises(SystemExit) as left:
        local._quiet_interrupt(signal.SIGINT, None)
    assert left.value.code == 130


def test_the_executor_starts_its_workers_with_ctrl_c_ignored(catalog, monkeypatch):
    """The executor itself submits the batches that spawn its workers with SIGINT ignored (the test above
    checks the helpers; this one, that a run with workers goes through them), and its own handler is back
    once they are submitted."""
    import concurrent.futures as cf
    import signal

    at_submit = []
    real_submit = cf.ProcessPoolExecutor.submit

    def submit(pool, fn, *args, **kwargs):
        at_submit.append(signal.getsignal(signal.SIGINT))
        return real_submit(pool, fn, *args, **kwargs)

    monkeypatch.setattr(cf.ProcessPoolExecutor, "submit", submit)
    before = signal.getsignal(signal.SIGINT)
    out = LocalExecutor(catalog, workers=2).run([FanOut()], _sources(4))
    assert out.stages[0].kept == 4
    assert len(at_submit) == 2 and all(h == signal.SIG_IGN for h in at_submit), at_submit
    assert signal.getsignal(signal.SIGINT) is before
