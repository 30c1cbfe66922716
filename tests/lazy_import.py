"""Optional packages that a test file needs, imported when its first test uses them, not at collection.

``pytest.importorskip`` at the top of a file imports the package while the suite is collected, in every
pytest-xdist worker, so torch, transformers, Ray, ONNX and moto sat in both workers' memory from the start
(about 370 MB each) whichever files the worker went on to run. ``module(name, reason)`` skips the file the
same way when the package is missing, and otherwise returns a stand-in that imports it on first use.

    lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
    torch = lazy.module("torch", reason="the ml extra is not installed")
"""

from __future__ import annotations

import importlib
import importlib.util
import types

import pytest


class LazyModule(types.ModuleType):
    """Imports the named module at the first attribute read and hands the attribute over."""

    def __getattr__(self, attr: str):
        if attr.startswith("_") or attr == "pytestmark":  # pytest's collector probes names like these
            raise AttributeError(attr)
        return getattr(importlib.import_module(self.__name__), attr)


def available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def module(name: str, *, reason: str | None = None) -> types.ModuleType:
    """The module ``name``, imported at first use; skips the calling test file when it is not installed."""
    if not available(name.partition(".")[0]):
        pytest.skip(reason or f"could not import {name!r}", allow_module_level=True)
    return LazyModule(name)
