"""One check shared by the settings that name a server the run depends on (``ray_address``,
``[caption.vlm] endpoint``): whether its port takes a connection, asked once before any work."""

from __future__ import annotations

import socket


def connect_error(host: str, port: int, timeout_s: float) -> OSError | None:
    """The error of one TCP connection to ``host:port`` (``None``: it was accepted and closed at once).
    A name that does not resolve is a ``socket.gaierror``, a closed port ``ConnectionRefusedError``, no
    answer within ``timeout_s`` ``TimeoutError``; the caller decides what each means for its setting."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc


def why(exc: OSError) -> str:
    """A short reason for ``exc`` for a one-line error: the system's text, else the error's kind."""
    return exc.strerror or type(exc).__name__
