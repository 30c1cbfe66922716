"""CLI commands (thin shell over the library)."""

from __future__ import annotations
