"""Which files a folder input takes: video containers and raw video streams; not audio or other files."""

from __future__ import annotations

from pathlib import Path

from clipfactory.sources.owned import _iter_files


def test_a_folder_takes_raw_video_streams_and_leaves_audio_and_other_files(tmp_path):
    for name in ("a.mp4", "b.h264", "c.hevc", "d.ivf", "e.m4a", "f.wav", "notes.txt", ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"x")
    got = sorted(Path(p).name for p, _fs in _iter_files([tmp_path]))
    assert got == ["a.mp4", "b.h264", "c.hevc", "d.ivf"]
    # a file named on its own is taken whatever its name
    assert [Path(p).name for p, _ in _iter_files([tmp_path / "e.m4a"])] == ["e.m4a"]
