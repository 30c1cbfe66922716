from __future__ import annotations

import pytest
from policy_helpers import add

from clipfactory.catalog import Catalog
from clipfactory.config import Settings


@pytest.fixture
def cat(tmp_path) -> Catalog:
    c = Catalog(tmp_path / "catalog.duckdb")
    add(c, [])
    return c


@pytest.fixture
def permission_file(tmp_path):
    """Write a permissions TOML (with its document) and return a Settings using it."""

    def make(
        body: str = "", *, document: bytes = b"signed permission letter", platform: str = "youtube", **fields
    ):
        doc = tmp_path / "perm.pdf"
        doc.write_bytes(document)
        lines = [
            "[[permission]]",
            f'platform = "{platform}"',
            'granted_by = "Platform Inc., partnerships"',
            "granted_at = 2026-01-15",
            'document = "perm.pdf"',
        ]
        for k, v in fields.items():
            if isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            elif isinstance(v, list):
                lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in v) + "]")
            else:
                lines.append(f"{k} = {v}")
        path = tmp_path / "permissions.toml"
        path.write_text("\n".join(lines) + "\n" + body)
        return Settings(permissions_file=str(path))

    return make
