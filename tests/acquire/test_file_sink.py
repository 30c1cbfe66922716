"""The fetcher's file writer: O_DIRECT where allowed, ordinary writes elsewhere, the same bytes either way."""

from __future__ import annotations

import errno
import os

import pytest

from clipfactory.acquire import http
from clipfactory.acquire.http import _FileSink

DIRECT = hasattr(os, "O_DIRECT")


def _chunks(total: int, sizes=(1, 4095, 4097, 65536, 262144, 777)) -> list[bytes]:
    out, i, n = [], 0, 0
    while n < total:
        size = min(sizes[i % len(sizes)], total - n)
        out.append(os.urandom(size))
        n += size
        i += 1
    return out


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("total", [0, 1, 4096, 4097, 3_000_001])
def test_the_file_holds_exactly_the_bytes(tmp_path, direct, total):
    chunks = _chunks(total)
    p = tmp_path / "f"
    sink = _FileSink(p, append=False, direct=direct, writeback=True, buffer_bytes=64 * 1024)
    if direct and DIRECT:
        assert sink.direct  # ext4/xfs under tmp_path take O_DIRECT
    for i in range(0, len(chunks), 3):
        sink.write(chunks[i : i + 3])
    sink.finish(fsync=True)
    assert p.read_bytes() == b"".join(chunks)
    assert sink.fd == -1 and sink.buf is None


@pytest.mark.skipif(not DIRECT, reason="no O_DIRECT on this OS")
def test_a_filesystem_that_refuses_o_direct_at_open_gets_ordinary_writes(tmp_path, monkeypatch):
    real = os.open

    def no_direct(path, flags, *a):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *a)

    monkeypatch.setattr(os, "open", no_direct)
    chunks = _chunks(200_000)
    sink = _FileSink(tmp_path / "f", append=False, direct=True, writeback=True, buffer_bytes=65536)
    assert not sink.direct and sink.buf is None
    sink.write(chunks)
    sink.finish(fsync=False)
    assert (tmp_path / "f").read_bytes() == b"".join(chunks)


@pytest.mark.skipif(not DIRECT, reason="no O_DIRECT on this OS")
def test_a_filesystem_that_refuses_o_direct_writes_falls_back(tmp_path, monkeypatch):
    real = os.write
    refused = []

    def refuse_first(fd, data):
        if not refused:
            refused.append(1)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(os, "write", refuse_first)
    chunks = _chunks(300_000)
    sink = _FileSink(tmp_path / "f", append=False, direct=True, writeback=False, buffer_bytes=65536)
    sink.write(chunks)
    assert not sink.direct
    sink.finish(fsync=False)
    assert (tmp_path / "f").read_bytes() == b"".join(chunks)


def test_close_keeps_every_byte_for_a_resume(tmp_path):
    chunks = _chunks(100_003)
    sink = _FileSink(tmp_path / "f", append=False, direct=True, writeback=False, buffer_bytes=65536)
    sink.write(chunks)
    sink.close()  # an interrupted download: the partial must hold all it received
    sink.close()
    assert (tmp_path / "f").read_bytes() == b"".join(chunks)
    more = _chunks(5000)
    again = _FileSink(tmp_path / "f", append=True, direct=True, writeback=False, buffer_bytes=65536)
    assert not again.direct  # appending to a partial of any length: ordinary writes
    again.write(more)
    again.finish(fsync=False)
    assert (tmp_path / "f").read_bytes() == b"".join(chunks + more)


def test_other_errors_are_raised(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    sink = _FileSink(tmp_path / "f", append=False, direct=True, writeback=False, buffer_bytes=8192)
    monkeypatch.setattr(os, "write", full)
    monkeypatch.setattr(http, "writev_all", full)
    with pytest.raises(OSError, match="No space"):
        sink.write([os.urandom(20_000)])
    monkeypatch.undo()
    sink.close()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no tmpfs at /dev/shm")
def test_tmpfs(tmp_path):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        chunks = _chunks(1_000_000)
        sink = _FileSink(d / "f", append=False, direct=True, writeback=True, buffer_bytes=65536)
        sink.write(chunks)
        sink.finish(fsync=True)
        assert (d / "f").read_bytes() == b"".join(chunks)
    finally:
        import shutil

        shutil.rmtree(d)


def test_partials_are_listed_once_and_stray_metadata_removed(tmp_path):
    inc = tmp_path / "incoming"
    inc.mkdir()
    for name in ("a.partial", "a.partial.json", "b.partial.json", "c.partial", "x.tmp"):
        (inc / name).write_bytes(b"{}")
    assert http._scan_partials(inc) == {"a", "c"}
    assert sorted(p.name for p in inc.iterdir()) == ["a.partial", "a.partial.json", "c.partial", "x.tmp"]
    assert http._scan_partials(tmp_path / "missing") == set()
