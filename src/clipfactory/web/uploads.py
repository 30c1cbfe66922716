"""Uploads: a multipart body streamed to one temporary file, with a size limit checked while it streams,
content sniffing of the first bytes, and the file deleted on every path (:func:`received_upload`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

#: Largest form field (text) accepted beside the file.
MAX_FIELD_BYTES = 64 * 1024
#: Multipart framing allowed on top of the file's own bytes.
OVERHEAD_BYTES = 1024 * 1024


class UploadError(Exception):
    """An upload refused: ``status`` is the HTTP status, the message says why in words."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    path: Path | None = None
    filename: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def sniff_video(head: bytes) -> str | None:
    """The container a file's first bytes show, or None when they are not a video container we read:
    MP4/MOV/3GP (``ftyp``), Matroska/WebM (EBML), AVI (``RIFF....AVI``), MPEG-TS (sync bytes every 188),
    MPEG-PS, FLV and Ogg."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpegts"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpegps"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] == b"OggS":
        return "ogg"
    return None


@contextlib.asynccontextmanager
async def received_upload(
    content_type: str,
    content_length: str | None,
    body: AsyncIterator[bytes],
    *,
    limit: int,
    file_field: str = "file",
    tmp_dir: str | os.PathLike | None = None,
) -> AsyncIterator[Upload]:
    """Stream a ``multipart/form-data`` body: the part ``file_field`` goes to a temporary file (refused past
    ``limit`` bytes, as soon as they arrive), text fields to ``Upload.fields``. The file is sniffed
    (:func:`sniff_video`) and deleted when the block ends, however it ends."""
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the file as a multipart/form-data form")
    if content_length and content_length.isdigit() and int(content_length) > limit + OVERHEAD_BYTES:
        raise UploadError(413, f"the file is larger than the limit of {limit // (1 << 20)} MB")
    up = Upload()
    state: dict = {"hname": b"", "hval": b"", "headers": {}, "name": None, "fh": None, "buf": bytearray()}
    fd, tmp = tempfile.mkstemp(prefix="cf-upload-", suffix=".bin", dir=tmp_dir)
    fh = os.fdopen(fd, "wb")
    try:

        def on_part_begin():
            state.update(hname=b"", hval=b"", headers={}, name=None, fh=None, buf=bytearray())

        def on_header_field(data, start, end):
            state["hname"] += data[start:end]

        def on_header_value(data, start, end):
            state["hval"] += data[start:end]

        def on_header_end():
            state["headers"][state["hname"].decode("latin-1").lower()] = state["hval"]
            state["hname"], state["hval"] = b"", b""

        def on_headers_finished():
            _, disp = parse_options_header(state["headers"].get("content-disposition", b""))
            name = (disp.get(b"name") or b"").decode("utf-8", "replace")
            state["name"] = name
            if name == file_field and b"filename" in disp:
                if up.path is not None:
                    raise UploadError(400, "send one file")
                up.filename = Path(disp[b"filename"].decode("utf-8", "replace")).name[:200]
                up.path = Path(tmp)
                state["fh"] = fh

        def on_part_data(data, start, end):
            chunk = data[start:end]
            if state["fh"] is not None:
                up.size += len(chunk)
                if up.size > limit:
                    raise UploadError(413, f"the file is larger than the limit of {limit // (1 << 20)} MB")
                state["fh"].write(chunk)
            else:
                state["buf"] += chunk
                if len(state["buf"]) > MAX_FIELD_BYTES:
                    raise UploadError(413, "a form field is too long")

        def on_part_end():
            if state["fh"] is None and state["name"]:
                up.fields[state["name"]] = state["buf"].decode("utf-8", "replace")

        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
            },
        )
        total = 0
        async for chunk in body:
            total += len(chunk)
            if total > limit + OVERHEAD_BYTES:
                raise UploadError(413, f"the file is larger than the limit of {limit // (1 << 20)} MB")
            try:
                parser.write(chunk)
            except UploadError:
                raise
            except Exception as exc:  # a malformed body
                raise UploadError(400, "the form could not be read") from exc
        parser.finalize()
        fh.close()
        if up.path is None or up.size == 0:
            raise UploadError(400, "choose a video file to look up")
        with open(tmp, "rb") as f:
            head = f.read(4096)
        if sniff_video(head) is None:
            raise UploadError(415, "the file is not a video (MP4, MOV, WebM, MKV, AVI, MPEG-TS, FLV or Ogg)")
        yield up
    finally:
        with contextlib.suppress(Exception):
            fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
