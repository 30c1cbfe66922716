"""Test inputs made once per test run and shared by every process of it (the pytest-xdist workers and the
children of ``own_process`` files): generated videos, cut clips, analyses of the same file.

Each process of the run used to make its own copy of the same generated footage (a session fixture lives
in one process). ``tests/conftest.py`` creates the run's folder before the workers start and names it in
``CF_TEST_RUN_CACHE``; it is removed when that process exits. Outside pytest (a benchmark importing the
fixtures) the first use makes the folder the same way.

    path = made_once("synth-A.mp4", lambda tmp: synth_video(tmp, 10.0, seed=100))

The maker writes to the temporary path it is given; the result is renamed into place, under a lock, so a
process never sees half a file and two processes never make the same thing twice.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV = "CF_TEST_RUN_CACHE"


def folder() -> Path:
    """The run's shared folder: the one ``CF_TEST_RUN_CACHE`` names, else a new one that this process
    names there for the processes it starts, and removes at exit."""
    d = os.environ.get(ENV)
    if not d:
        d = tempfile.mkdtemp(prefix="cf-test-run-cache-")
        os.environ[ENV] = d
        atexit.register(_remove, d, os.getpid())
    path = Path(d)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remove(d: str, owner: int) -> None:
    """Remove the folder at the exit of the process that made it, not of a child forked from it (the
    children of ``own_process`` files run the exit handlers they inherit)."""
    if os.getpid() == owner:
        shutil.rmtree(d, ignore_errors=True)


def made_once(name: str, make: Callable[[Path], object]) -> Path:
    """``folder() / name``, made by ``make(tmp)`` if no process of the run made it yet. ``tmp`` keeps the
    name's suffix (an encoder picks the container from it); a folder is made the same way."""
    path = folder() / name
    if path.exists():
        return path
    with open(folder() / f".{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
                make(tmp)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path
