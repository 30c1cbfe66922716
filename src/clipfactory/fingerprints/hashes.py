"""PDQ hash arithmetic on numpy arrays.

A PDQ hash is 256 bits. Inside clipfactory it travels as 64 hex characters (the per-frame blob, JSON),
as 32 bytes (catalog ``BLOB`` columns) and, for arithmetic, as rows of a ``uint8[n, 32]`` array. The
hex text is ``np.packbits(bits).tobytes().hex()`` of the 256 bits ``pdqhash.compute`` returns, the
convention of the analysis pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

HASH_BYTES = 32
HASH_BITS = 256
#: DOMAIN §5: two PDQ hashes match when their Hamming distance is at most 31.
MATCH_DISTANCE = 31
#: DOMAIN §5: frames whose PDQ quality is below 50 carry too little structure to compare.
MIN_QUALITY = 50


def hex_to_array(hexes: Iterable[str]) -> np.ndarray:
    """64-hex-character strings to a ``uint8[n, 32]`` array."""
    hexes = list(hexes)
    if not hexes:
        return np.zeros((0, HASH_BYTES), np.uint8)
    try:
        raw = bytes.fromhex("".join(hexes))
    except ValueError as exc:
        raise ValueError(f"not a PDQ hex hash: {exc}") from None
    if len(raw) != HASH_BYTES * len(hexes):
        raise ValueError("every PDQ hash must be 64 hex characters")
    return np.frombuffer(raw, np.uint8).reshape(len(hexes), HASH_BYTES).copy()


def array_to_hex(arr: np.ndarray) -> list[str]:
    arr = np.ascontiguousarray(arr, np.uint8).reshape(-1, HASH_BYTES)
    return [row.tobytes().hex() for row in arr]


def blobs_to_array(blobs: Iterable[bytes]) -> np.ndarray:
    """Catalog ``BLOB`` values (32 bytes each) to ``uint8[n, 32]``."""
    raw = b"".join(bytes(b) for b in blobs)
    if len(raw) % HASH_BYTES:
        raise ValueError("PDQ blobs must be 32 bytes each")
    return np.frombuffer(raw, np.uint8).reshape(-1, HASH_BYTES).copy()


def pack_many(arr: np.ndarray) -> bytes:
    """Concatenate hashes into one blob (the tombstone format)."""
    return np.ascontiguousarray(arr, np.uint8).reshape(-1, HASH_BYTES).tobytes()


def unpack_many(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros((0, HASH_BYTES), np.uint8)
    return blobs_to_array([blob])


_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of every element of a ``uint64`` array (numpy >= 2 has it built in)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    w = np.ascontiguousarray(words, np.uint64)  # pragma: no cover - numpy 1.x
    return _POP8[w.view(np.uint8)].reshape(*w.shape, 8).sum(axis=-1, dtype=np.uint8)


def as_words(arr: np.ndarray) -> np.ndarray:
    """``uint8[n, 32]`` to ``uint64[n, 4]`` (a view when possible) for fast popcounts."""
    arr = np.ascontiguousarray(arr, np.uint8).reshape(-1, HASH_BYTES)
    return arr.view(np.uint64)


def hamming_pairs(a_words: np.ndarray, b_words: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances of two equally long ``uint64[n, 4]`` arrays."""
    return popcount(a_words ^ b_words).sum(axis=1, dtype=np.int32)


def hamming_matrix(a: np.ndarray, b: np.ndarray, block_bytes: int = 1 << 25) -> np.ndarray:
    """All-pairs Hamming distances ``int32[len(a), len(b)]``, computed in blocks of bounded memory.

    One 64-bit word at a time: four 2-D XOR-and-popcount passes, summed in place (no reduction over a
    short last axis, about 3x faster than XOR-ing whole hashes).
    """
    aw, bw = as_words(a), as_words(b)
    out = np.zeros((len(aw), len(bw)), np.int32)
    if not len(aw) or not len(bw):
        return out
    rows = max(1, block_bytes // (len(bw) * 8))
    b_cols = [np.ascontiguousarray(bw[:, w]) for w in range(HASH_BYTES // 8)]
    for i in range(0, len(aw), rows):
        block, acc = aw[i : i + rows], out[i : i + rows]
        for w, col in enumerate(b_cols):
            acc += popcount(block[:, w, None] ^ col[None, :])
    return out


def majority_descriptor(arr: np.ndarray) -> bytes:
    """The bitwise majority vote of a set of hashes: one fixed-length 256-bit summary of a clip.

    Near-identical copies of a clip (re-encodes, resizes) have descriptors within a few bits of each
    other; it is a cheap pre-filter, never the evidence for a match.
    """
    arr = np.ascontiguousarray(arr, np.uint8).reshape(-1, HASH_BYTES)
    if not len(arr):
        return bytes(HASH_BYTES)
    bits = np.unpackbits(arr, axis=1)
    return np.packbits(bits.sum(axis=0) * 2 > len(arr)).tobytes()


def chunks16(arr: np.ndarray) -> np.ndarray:
    """Split each 256-bit hash into 16 big-endian 16-bit chunks: ``uint16[n, 16]``."""
    arr = np.ascontiguousarray(arr, np.uint8).reshape(-1, HASH_BYTES)
    return arr.view(">u2").astype(np.uint16)
