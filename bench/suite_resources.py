"""The test suite's wall time and peak memory, as docs/development.md records them.

    python bench/suite_resources.py [PYTEST ARGS...]

Runs ``python -m pytest -q -p no:cacheprovider [ARGS]`` in a child process and samples, four times a
second, the memory of the child and every process below it (pytest-xdist workers, Ray's raylet and
workers, ffmpeg children) as their proportional set size, so pages two processes share (libraries, Ray's
object store) count once. Prints the wall time, the peak of the whole tree's memory, and the peak of its
largest single process, and the biggest processes at the peak. Exits with pytest's exit status.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil


def _tree_rss(proc: psutil.Process) -> tuple[int, int, list[tuple[int, str]]]:
    """(sum, largest) memory of ``proc`` and its descendants: the proportional set size (PSS, shared pages
    split between the processes that share them) where the system reports it, else the resident size."""
    total = largest = 0
    rows: list[tuple[int, str]] = []
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, rows
    for p in procs:
        try:
            info = p.memory_full_info()
            rss = getattr(info, "pss", None) or info.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            continue
        total += rss
        largest = max(largest, rss)
        with contextlib.suppress(psutil.Error):
            rows.append((rss, " ".join(p.cmdline())[:100]))
    return total, largest, rows


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv]
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    proc = psutil.Process(child.pid)
    peak_total = peak_one = 0
    at_peak: list[tuple[int, str]] = []
    while child.poll() is None:
        total, one, rows = _tree_rss(proc)
        if total > peak_total:
            peak_total, at_peak = total, rows
        peak_one = max(peak_one, one)
        time.sleep(0.25)
    wall = time.monotonic() - t0
    minutes, seconds = divmod(round(wall), 60)
    print(
        f"suite: exit {child.returncode}, wall {minutes} min {seconds} s, peak memory {peak_total / 2**30:.2f} GB "
        f"(all processes together), largest single process {peak_one / 2**30:.2f} GB"
    )
    print("processes at the peak:")
    for rss, cmd in sorted(at_peak, reverse=True)[: int(os.environ.get("SUITE_RESOURCES_TOP", "8"))]:
        print(f"  {rss / 2**20:7.0f} MB  {cmd}")
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
