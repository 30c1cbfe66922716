"""PDQ of an 8-bit luma image, bit for bit what ``pdqhash.compute`` gives, at about half its cost.

``pdqhash.compute`` takes an RGB image and turns it into float luma with NumPy in float64
(``r * 0.299 + g * 0.587 + b * 0.114``) before its C++ hashing runs; for the grey images we hash (the
luma plane repeated into three channels) that conversion, and the repeat, cost more than the hashing
itself (about 0.35 of 0.45 ms of a 320x240 picture over the hash's own 0.4 ms). For such an image the
float64 sum is the luma value to within 1e-13, which rounds to that value in float32, so the float luma
is simply ``y.astype(float32)``. This module hands that to the same C++ function of the installed
``pdqhash`` extension (``pdqHash256FromFloatLuma`` and its dihedral sibling, exported by the
extension) through :mod:`ctypes`, which also releases the GIL while it runs.

The fast path is used only for a ``pdqhash`` version it was checked against (:data:`CHECKED_VERSIONS`),
when the extension exports both functions, and after a first-use self-check that compares it with
``pdqhash.compute`` and ``compute_dihedral`` on a few images; otherwise the package's own functions
run, with the same results. ``CLIPFACTORY_PDQ_NATIVE=0`` turns the fast path off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: ``pdqhash`` releases whose extension this module's signatures were checked against.
CHECKED_VERSIONS = ("0.2.8",)
#: Position of the left-right mirror among the eight hashes of ``pdqhash.compute_dihedral``.
DIHEDRAL_MIRROR = 5

_HASH = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
_DIHEDRAL = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_"
    "PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)

# bit k of the 16 little-endian words, in the order of pdqhash's ``hash_to_vector`` (k = 255 first)
_K = 255 - np.arange(256)
_WORD, _SHIFT = _K >> 4, (_K & 15).astype(np.uint16)

_lock = threading.Lock()
_native: tuple[Any, Any] | None | bool = None  # None: not tried yet; False: not available


def _pack(words: np.ndarray) -> bytes:
    return np.packbits((words[_WORD] >> _SHIFT) & 1).tobytes()


def _load() -> tuple[Any, Any] | None:
    if os.environ.get("CLIPFACTORY_PDQ_NATIVE", "1") == "0":
        return None
    try:
        import pdqhash
        import pdqhash.bindings as bindings
    except ImportError:
        return None
    if getattr(pdqhash, "__version__", None) not in CHECKED_VERSIONS:
        log.info("pdqhash %s not checked for the fast PDQ path; using pdqhash.compute", pdqhash.__version__)
        return None
    try:
        lib = ctypes.CDLL(bindings.__file__)
        one, dih = getattr(lib, _HASH), getattr(lib, _DIHEDRAL)
    except (OSError, AttributeError):
        return None
    vp, i = ctypes.c_void_p, ctypes.c_int
    one.argtypes = [vp, vp, i, i, vp, vp, vp, vp, vp]
    one.restype = None
    dih.argtypes = [vp, vp, i, i, vp, vp, vp, vp, *([vp] * 8), vp]
    dih.restype = None
    return one, dih


def _buffers(y8: np.ndarray):
    luma = np.ascontiguousarray(y8, dtype=np.float32)  # a copy: the C++ side filters it in place
    if luma is y8:
        luma = luma.copy()
    return luma, np.empty_like(luma), np.empty((64, 64), np.float32), np.empty((16, 64), np.float32)


def _native_hash(fn, y8: np.ndarray) -> tuple[bytes, int]:
    luma, other, b64, b16x64 = _buffers(y8)
    b16 = np.empty((16, 16), np.float32)
    words = np.zeros(16, np.uint16)
    quality = ctypes.c_int(0)
    rows, cols = luma.shape
    fn(luma.ctypes.data, other.ctypes.data, rows, cols, b64.ctypes.data, b16x64.ctypes.data, b16.ctypes.data,
       words.ctypes.data, ctypes.addressof(quality))  # fmt: skip
    return _pack(words), quality.value


def _native_dihedral(fn, y8: np.ndarray) -> tuple[bytes, bytes, int]:
    luma, other, b64, b16x64 = _buffers(y8)
    b16, aux = np.empty((16, 16), np.float32), np.empty((16, 16), np.float32)
    words = np.zeros((8, 16), np.uint16)
    quality = ctypes.c_int(0)
    rows, cols = luma.shape
    fn(luma.ctypes.data, other.ctypes.data, rows, cols, b64.ctypes.data, b16x64.ctypes.data, b16.ctypes.data,
       aux.ctypes.data, *(words[k].ctypes.data for k in range(8)), ctypes.addressof(quality))  # fmt: skip
    return _pack(words[0]), _pack(words[DIHEDRAL_MIRROR]), quality.value


def _package_hash(y8: np.ndarray) -> tuple[bytes, int]:
    import pdqhash

    bits, quality = pdqhash.compute(np.repeat(np.ascontiguousarray(y8)[:, :, None], 3, axis=2))
    return np.packbits(bits).tobytes(), int(quality)


def _package_dihedral(y8: np.ndarray) -> tuple[bytes, bytes, int]:
    import pdqhash

    hashes, quality = pdqhash.compute_dihedral(np.repeat(np.ascontiguousarray(y8)[:, :, None], 3, axis=2))
    return np.packbits(hashes[0]).tobytes(), np.packbits(hashes[DIHEDRAL_MIRROR]).tobytes(), int(quality)


def _self_check(one, dih) -> bool:
    rng = np.random.default_rng(20261207)
    images = [(rng.random((h, w)) * 256).astype(np.uint8) for h, w in ((97, 161), (240, 320), (64, 64))]
    images.append(np.full((40, 90), 200, np.uint8))
    for y in images:
        if _native_hash(one, y) != _package_hash(y) or _native_dihedral(dih, y) != _package_dihedral(y):
            return False
    return True


def _fast() -> tuple[Any, Any] | None:
    global _native
    if _native is None:
        with _lock:
            if _native is None:
                fns = _load()
                if fns is not None and not _self_check(*fns):
                    log.warning("the fast PDQ path disagrees with pdqhash.compute; using pdqhash.compute")
                    fns = None
                _native = fns if fns is not None else False
    return _native or None


def native_in_use() -> bool:
    """Whether hashes come from the fast path (they are the same either way)."""
    return _fast() is not None


def pdq_of_luma(y8: np.ndarray) -> tuple[bytes, int]:
    """PDQ of an 8-bit luma image: ``(32 bytes, quality)``, as ``pdqhash.compute`` of it in three channels."""
    fns = _fast()
    return _native_hash(fns[0], y8) if fns else _package_hash(y8)


def pdq_and_mirror_of_luma(y8: np.ndarray) -> tuple[bytes, bytes, int]:
    """PDQ of an 8-bit luma image and its left-right mirror hash: ``(hash, mirrored, quality)``, as
    ``pdqhash.compute_dihedral`` gives them."""
    fns = _fast()
    return _native_dihedral(fns[1], y8) if fns else _package_dihedral(y8)
