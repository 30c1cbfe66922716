"""The test suite's wall time and peak memory, as docs/development.md records them.

    python bench/suite_resources.py [PYTEST ARGS...]

Runs ``python -m pytest -q -p no:cacheprovider [ARGS]`` in a child process and samples, four times a
second, the resident memory of the child and every process below it (pytest-xdist workers, Ray's raylet
and workers, ffmpeg children). Prints the wall time, the peak of the summed resident memory of the whole
tree, and the peak of its largest single process. Exits with pytest's exit status.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum, largest) resident bytes of ``proc`` and its descendants."""
    total = largest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv]
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    proc = psutil.Process(child.pid)
    peak_total = peak_one = 0
    while child.poll() is None:
        total, one = _tree_rss(proc)
        peak_total, peak_one = max(peak_total, total), max(peak_one, one)
        time.sleep(0.25)
    wall = time.monotonic() - t0
    minutes, seconds = divmod(round(wall), 60)
    print(
        f"suite: exit {child.returncode}, wall {minutes} min {seconds} s, peak memory {peak_total / 2**30:.2f} GB "
        f"(all processes together), largest single process {peak_one / 2**30:.2f} GB"
    )
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
