"""Helpers of the scale tests: generated media and the loopback HTTP server of the fetch tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


synth = _load("cf_synth", TESTS / "stages" / "synth.py")
server = _load("cf_acquire_server", TESTS / "acquire" / "server.py")

counting = _load("cf_scale_counting", Path(__file__).with_name("counting.py"))
