"""Progress reporting behind one small protocol.

* :class:`RichProgress` draws bars on a terminal.
* :class:`LogProgress` writes a line every few seconds (CI, Ray, files).
* :class:`HeartbeatProgress` keeps a JSON file up to date for the web UI to poll.
* :class:`NullProgress` does nothing.

Counters shown here are for humans; reports always derive counts from outcome rows.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, task: str, total: int | None = None, unit: str = "items") -> None: ...
    def advance(self, task: str, n: int = 1, **info: float) -> None: ...
    def finish(self, task: str) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        pass

    def advance(self, task: str, n: int = 1, **info: float) -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def close(self) -> None:
        pass


class LogProgress:
    def __init__(self, every_s: float = 5.0):
        self.every_s = every_s
        self._state: dict[str, dict] = {}

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self._state[task] = {"done": 0, "total": total, "unit": unit, "t0": time.monotonic(), "last": 0.0}
        log.info("%s: started (%s %s)", task, total if total is not None else "?", unit)

    def advance(self, task: str, n: int = 1, **info: float) -> None:
        st = self._state.setdefault(
            task, {"done": 0, "total": None, "unit": "items", "t0": time.monotonic(), "last": 0.0}
        )
        st["done"] += n
        now = time.monotonic()
        if now - st["last"] >= self.every_s:
            st["last"] = now
            extra = " ".join(f"{k}={v:.1f}" for k, v in info.items())
            log.info("%s: %s/%s %s %s", task, st["done"], st["total"] or "?", st["unit"], extra)

    def finish(self, task: str) -> None:
        st = self._state.get(task)
        if st:
            log.info("%s: done %s %s in %.1fs", task, st["done"], st["unit"], time.monotonic() - st["t0"])

    def close(self) -> None:
        pass


class RichProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._ids: dict[str, int] = {}
        self._p.start()

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self._ids[task] = self._p.add_task(task, total=total, info="")

    def advance(self, task: str, n: int = 1, **info: float) -> None:
        if task not in self._ids:
            self.start(task)
        text = " ".join(f"{k} {v:,.1f}" for k, v in info.items())
        self._p.update(self._ids[task], advance=n, info=text)

    def finish(self, task: str) -> None:
        if task in self._ids:
            t = self._p.tasks[self._ids[task]]
            if t.total is None:
                self._p.update(self._ids[task], total=t.completed)

    def close(self) -> None:
        self._p.stop()


class HeartbeatProgress:
    """Writes ``{task: {done, total, unit, updated}}`` to a JSON file at most every ``every_s`` seconds."""

    def __init__(self, path: str | os.PathLike, every_s: float = 1.0):
        self.path = Path(path)
        self.every_s = every_s
        self._state: dict[str, dict] = {}
        self._last = 0.0

    def _flush(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        from .storage import atomic_write

        with atomic_write(self.path, "w") as fh:
            json.dump({"updated": now, "tasks": self._state}, fh)

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        self._state[task] = {"done": 0, "total": total, "unit": unit}
        self._flush(True)

    def advance(self, task: str, n: int = 1, **info: float) -> None:
        st = self._state.setdefault(task, {"done": 0, "total": None, "unit": "items"})
        st["done"] += n
        st.update(info)
        self._flush()

    def finish(self, task: str) -> None:
        self._flush(True)

    def close(self) -> None:
        self._flush(True)


class MultiProgress:
    def __init__(self, *children: Progress):
        self.children = children

    def start(self, task: str, total: int | None = None, unit: str = "items") -> None:
        for c in self.children:
            c.start(task, total, unit)

    def advance(self, task: str, n: int = 1, **info: float) -> None:
        for c in self.children:
            c.advance(task, n, **info)

    def finish(self, task: str) -> None:
        for c in self.children:
            c.finish(task)

    def close(self) -> None:
        for c in self.children:
            c.close()


def default_progress(quiet: bool = False) -> Progress:
    if quiet:
        return NullProgress()
    if sys.stderr.isatty() and not os.environ.get("CI"):
        return RichProgress()
    return LogProgress()
