"""Process-wide caches of loaded models, and one call that lets them all go.

Stages share one loaded model per process (the OCR engine, the NSFW scorer, the BlazeFace face
detector, the text and visual encoders, TransNetV2, the aesthetic head, the language identifier), held
in a dictionary in the module that loads it, so a batch of clips never pays for a second load. A
long-lived process that moves on to other work (a notebook, the web UI between jobs, a test runner
between test files) calls :func:`release_models` to drop them; the next use loads the model again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

#: (module, name of its cache dictionary) of every process-wide model cache.
MODEL_CACHES: tuple[tuple[str, str], ...] = (
    ("clipfactory.media.analyse", "_OCR"),
    ("clipfactory.media.transnet", "_MODELS"),
    ("clipfactory.signals.nsfw", "_SCORERS"),
    ("clipfactory.signals.blazeface", "_SESSIONS"),
    ("clipfactory.signals.aesthetic", "_MODELS"),
    ("clipfactory.semantic.text_model", "_SHARED"),
    ("clipfactory.semantic.visual_model", "_SHARED"),
    ("clipfactory.disclosures.languages", "_MODELS"),
)


def release_models() -> int:
    """Drop every cached model of this process and hand the freed memory back to the system.

    Returns how many models were dropped. Only modules already imported are touched, so calling this
    never loads anything."""
    dropped = 0
    for module, name in MODEL_CACHES:
        cache = getattr(sys.modules.get(module), name, None)
        if isinstance(cache, dict) and cache:
            dropped += len(cache)
            cache.clear()
    if dropped:
        gc.collect()
        _trim_heap()
    return dropped


def _trim_heap() -> None:
    """glibc keeps freed memory in its arenas; ``malloc_trim`` returns what it can to the system."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # another C library (musl) without malloc_trim
        pass


def local_model_folder(name: str) -> str | None:
    """The folder of a model named ``name`` on this machine: ``name`` itself when it is a folder, else the
    snapshot of the hub name ``name`` in the local Hugging Face cache (found on disk, without asking the
    hub: even ``from_pretrained(..., local_files_only=True)`` looks a host up for its request headers).
    ``None`` when it is neither: clipfactory never downloads model files at run time."""
    from pathlib import Path

    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name.count("/") > 1 or path.is_absolute() or name.startswith("."):
        return None  # a path, and no folder there
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # a name the hub's rules refuse (huggingface_hub's validation errors)
        return None
    return str(Path(found).parent) if isinstance(found, str) else None
