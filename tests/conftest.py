from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# glibc gives each thread that allocates its own heap arena (up to eight per core) and keeps what is freed
# there; two arenas hold a worker of this suite 120-170 MB lower (docs/development.md). Set here, before
# pytest-xdist starts its workers, it reaches them and the CLI runs they start.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_DATA = ROOT / "tests" / "data"

# optional packages imported at a test's first use (tests/lazy_import.py), as sys.modules["cf_lazy"]
_spec = importlib.util.spec_from_file_location("cf_lazy", ROOT / "tests" / "lazy_import.py")
_lazy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lazy)
sys.modules.setdefault("cf_lazy", _lazy)


def _build_each_cli_once() -> None:
    """``typer.testing.CliRunner.invoke`` turns the Typer app into a Click command at every call (about
    30 ms of signature inspection for the ~100 commands); the tests invoke the CLI hundreds of times, so
    each process builds the command once per app object. Every command module is imported when
    ``clipfactory.cli.app`` is, so the app does not change after its first build."""
    import typer.testing

    build = typer.testing._get_command
    made: dict[int, tuple[object, object]] = {}

    def get_command(app):
        hit = made.get(id(app))
        if hit is None or hit[0] is not app:
            hit = made[id(app)] = (app, build(app))
        return hit[1]

    typer.testing._get_command = get_command


_build_each_cli_once()


def pytest_configure(config):
    """The run's folder of inputs made once (tests/run_cache.py), created by the first process before
    pytest-xdist starts its workers, so that they and their children share it; that process removes it
    at exit. A folder that the environment already names is another run's (set in a shell, or by a parent
    process): its analyses and clips were made by that run's code, and a test reading them would not see a
    change since, so this run makes its own."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        from run_cache import ENV, folder

        os.environ.pop(ENV, None)
        folder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real media and manifests beside the project; skips when absent."""
    if not (SHARED_DATA / "media").is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the shared/ folder beside the project)")
    return SHARED_DATA


@pytest.fixture
def own_settings(tmp_path, monkeypatch):
    """The test runs in ``tmp_path`` with no ``CLIPFACTORY_*`` variable: no clipfactory.toml or setting
    from elsewhere reaches the commands it runs."""
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("CLIPFACTORY_")]:
        monkeypatch.delenv(k)
    return tmp_path


@pytest.fixture
def catalog(tmp_path):
    from clipfactory.catalog import Catalog

    return Catalog(tmp_path / "catalog.duckdb")



@pytest.fixture(scope="module", autouse=True)
def _release_models_after_each_file():
    """A worker drops the models a test file loaded (OCR, NSFW, text and visual encoders, TransNetV2)
    when the file is done, so that it does not carry every model of every file it ran (docs/development.md)."""
    yield
    from clipfactory.model_cache import release_models

    release_models()


# -- test files that run in a process of their own --------------------------------------------------------
# A file marked ``pytestmark = pytest.mark.own_process`` runs in a child forked from its worker: the
# libraries and models it loads (torch, transformers, CTranslate2's Whisper, ONNX sessions, Ray's client)
# leave with the child instead of staying in the worker for the rest of the suite (docs/development.md).
# The child runs the file's tests with the usual setup and teardown and sends their reports back; the
# worker hands each report on when pytest reaches that test, so pytest-xdist sees the tests in order.
_OWN_PROCESS_REPORTS: dict[str, list] = {}


def _run_module_in_child(item) -> dict[str, list]:
    import pickle
    import tempfile

    from _pytest.runner import runtestprotocol

    session = item.session
    module = item.module
    mine = [it for it in session.items if getattr(it, "module", None) is module]
    others = [it for it in session.items if getattr(it, "module", None) is not module]
    # after the file's last test, the child tears down the file's fixtures but not the session's, which
    # belong to the worker too: any test of another file as "next" says so
    after = others[0] if others else None
    with tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:  # the child: one pickled (nodeid, reports) record per test, as each one ends
            code = 0
            try:
                for i, it in enumerate(mine):
                    nxt = mine[i + 1] if i + 1 < len(mine) else after
                    reps = runtestprotocol(it, log=False, nextitem=nxt)
                    ser = [item.config.hook.pytest_report_to_serializable(config=item.config, report=r) for r in reps]
                    pickle.dump((it.nodeid, ser), out)
                    out.flush()
            except BaseException:  # noqa: BLE001 - the worker reports the tests that sent nothing
                code = 3
            finally:
                try:  # what a normal exit runs: Ray's shutdown hooks remove its processes and session files
                    import atexit

                    atexit._run_exitfuncs()
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        got: dict[str, list] = {}
        while True:
            try:
                nodeid, ser = pickle.load(out)
            except (EOFError, pickle.UnpicklingError):
                break
            got[nodeid] = [item.config.hook.pytest_report_from_serializable(config=item.config, data=d) for d in ser]
    missing = [it for it in mine if it.nodeid not in got]
    if missing:
        from _pytest.reports import TestReport

        why = f"the process of {item.module.__name__} ended (status {status}) during or before this test"
        for it in missing:
            got[it.nodeid] = [TestReport(it.nodeid, it.location, {}, "failed", why, "call")]
    return got


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("own_process") is None or not hasattr(os, "fork"):
        return None
    if item.nodeid not in _OWN_PROCESS_REPORTS:
        _OWN_PROCESS_REPORTS.update(_run_module_in_child(item))
    reports = _OWN_PROCESS_REPORTS.pop(item.nodeid, [])
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for rep in reports:
        item.ihook.pytest_runtest_logreport(report=rep)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _rank(item) -> int:
    """0: a Ray test; 1: a long one (marked ``own_process`` or ``slow``); 2: a short one."""
    if item.get_closest_marker("ray"):
        return 0
    return 1 if item.get_closest_marker("own_process") or item.get_closest_marker("slow") else 2


#: each test file's rank: that of its first-ranked test (set at collection, in each worker)
_FILE_RANK: dict = {}


def pytest_collection_modifyitems(config, items):
    """The Ray file goes first: pytest-xdist hands files to its workers in this order, so the Ray file
    starts while the other worker is still small (see ``_ray_runs_alone``). The files that run in their own
    process (the long ones) follow, so the short files fill in at the end and no worker is left with one
    long file while the other has nothing to do. A file is ranked by its first-ranked test, so that its
    tests stay together, in their own order (the sort is stable)."""
    for item in items:
        _FILE_RANK[item.path] = min(_rank(item), _FILE_RANK.get(item.path, 2))
    items.sort(key=lambda item: _FILE_RANK[item.path])


@pytest.fixture(scope="module", autouse=True)
def _ray_runs_alone(request, tmp_path_factory):
    """Under pytest-xdist, a file of Ray tests runs while no other worker is inside a test file: Ray's own
    processes (two raylets, their workers and the file's own worker come to 1.65 GB at their peak) never
    add to a second busy worker, and the suite's peak stays under 2 GB (docs/development.md). Other files share a lock that a Ray file takes alone; a turnstile lock
    first lets a waiting Ray file in before the next other file starts."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    rank = _FILE_RANK.get(request.node.path, 2)
    import fcntl

    base = tmp_path_factory.getbasetemp().parent  # shared by the workers of one run
    ray_file = rank == 0
    with open(base / "ray-turnstile.lock", "a+") as gate, open(base / "ray-alone.lock", "a+") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if ray_file:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the other files in progress to finish
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)
