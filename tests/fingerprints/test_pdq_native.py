"""The fast PDQ path gives pdqhash's own hashes, bit for bit, on real frames and on edge-case pictures."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pdqhash

from clipfactory.fingerprints import pdq


def _package(y8: np.ndarray):
    """What ``pdqhash`` itself gives for the grey picture in three channels (the reference)."""
    rgb = np.repeat(y8[:, :, None], 3, axis=2)
    bits, q = pdqhash.compute(rgb)
    dih, q2 = pdqhash.compute_dihedral(rgb)
    return np.packbits(bits).tobytes(), int(q), np.packbits(dih[5]).tobytes(), int(q2)


def _frames(shared_data) -> list[np.ndarray]:
    out = []
    for name in ("bikes.mp4", "trailer_bbb.mp4", "Megamind_bugy.avi", "vtest.avi"):
        with av.open(str(shared_data / "media" / name)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 11 == 0:
                    g = f.to_ndarray(format="gray")
                    out.append(np.ascontiguousarray(g[:: max(1, g.shape[1] // 320), :: max(1, g.shape[1] // 320)]))
                if i > 120:
                    break
    return out


def test_the_fast_path_is_in_use_for_the_installed_pdqhash():
    assert pdqhash.__version__ in pdq.CHECKED_VERSIONS, (
        f"pdqhash {pdqhash.__version__} is installed: check the fast path against it and add it"
    )
    assert pdq.native_in_use()


def _native_functions():
    """The fast path's two C++ functions, loaded as ``pdq`` loads them but without its first-use self-check:
    a fast path that disagreed with the package would fall back to the package silently, and comparing the
    package with itself would prove nothing."""
    fns = pdq._load()
    assert fns is not None, f"the fast path does not load for pdqhash {pdqhash.__version__}"
    return fns


def test_hashes_and_qualities_equal_pdqhash_on_real_and_edge_pictures(shared_data):
    one, dih = _native_functions()
    assert pdq.native_in_use()  # the public functions below are the fast path, not the package
    rng = np.random.default_rng(7)
    pictures = _frames(shared_data) + [
        (rng.random((h, w)) * 256).astype(np.uint8) for h, w in ((97, 161), (180, 320), (33, 47), (720, 1280))
    ]
    pictures += [np.zeros((60, 80), np.uint8), np.full((60, 80), 255, np.uint8)]
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    pictures += [ramp, ramp[:, ::-1].copy(), np.asfortranarray(ramp), ramp[::2, ::3]]  # not C-contiguous too
    assert len(pictures) > 40
    for k, y in enumerate(pictures):
        h, q = pdq.pdq_of_luma(y)
        h2, m, q2 = pdq.pdq_and_mirror_of_luma(y)
        ref_h, ref_q, ref_m, ref_q2 = _package(np.ascontiguousarray(y))
        assert (h, q) == (ref_h, ref_q), k
        assert (h2, m, q2) == (ref_h, ref_m, ref_q2), k
        assert pdq._native_hash(one, y) == (ref_h, ref_q), k
        assert pdq._native_dihedral(dih, y) == (ref_h, ref_m, ref_q2), k
    # the mirrored hash is a different hash of the same picture (not a copy of the plain one)
    assert sum(pdq.pdq_and_mirror_of_luma(p)[0] != pdq.pdq_and_mirror_of_luma(p)[1] for p in pictures) > 30


def test_the_picture_is_left_as_it_was():
    y = (np.random.default_rng(3).random((90, 120)) * 256).astype(np.uint8)
    before = y.copy()
    one, dih = _native_functions()  # the C++ side filters its buffer in place: it must be a copy
    pdq._native_hash(one, y)
    pdq._native_dihedral(dih, y)
    pdq.pdq_of_luma(y)
    pdq.pdq_and_mirror_of_luma(y)
    assert np.array_equal(y, before)


def test_turning_the_fast_path_off_gives_the_same_hashes():
    code = (
        "import numpy as np; from clipfactory.fingerprints import pdq;"
        "y = (np.random.default_rng(5).random((120, 160)) * 256).astype(np.uint8);"
        "print(pdq.native_in_use(), pdq.pdq_of_luma(y)[0].hex(), pdq.pdq_and_mirror_of_luma(y)[1].hex())"
    )
    off = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "CLIPFACTORY_PDQ_NATIVE": "0"},
    ).stdout.split()  # fmt: skip
    y = (np.random.default_rng(5).random((120, 160)) * 256).astype(np.uint8)
    ref_h, _, ref_m, _ = _package(y)
    assert off == ["False", ref_h.hex(), ref_m.hex()]
