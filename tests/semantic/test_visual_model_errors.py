"""A bad or incomplete visual model folder, or a missing torch: one ConfigError naming the file and the fix."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("onnxruntime")

from clipfactory.errors import ClipfactoryError, ConfigError  # noqa: E402
from clipfactory.semantic.visual_model import VisualEncoder  # noqa: E402


def _folder(tmp_path, onnx_bytes: bytes | None):
    folder = tmp_path / "fakemodel"
    folder.mkdir()
    (folder / "visual_config.json").write_text(json.dumps({"name": "fake", "image_size": 8}))
    if onnx_bytes is not None:
        (folder / "image_encoder.onnx").write_bytes(onnx_bytes)
    return folder


def test_a_corrupt_onnx_file_is_a_config_error_naming_the_file(tmp_path):
    folder = _folder(tmp_path, b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ConfigError) as err:
        VisualEncoder(str(folder))
    assert str(folder / "image_encoder.onnx") in str(err.value)
    assert err.value.fix and "ONNX" in err.value.fix


def test_an_onnx_folder_without_its_image_encoder_names_the_missing_file(tmp_path):
    folder = _folder(tmp_path, None)
    with pytest.raises(ConfigError) as err:
        VisualEncoder(str(folder))
    assert "image_encoder.onnx" in str(err.value) and "transformers" not in str(err.value)


def test_a_missing_torch_is_named_with_the_cpu_build_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ClipfactoryError) as err:
        VisualEncoder(str(folder))
    assert "'torch'" in str(err.value)
    assert err.value.fix.startswith("pip install torch") and "clipfactory[" not in err.value.fix


def test_semantic_index_records_a_corrupt_model_as_the_visual_skip_reason(tmp_path):
    from clipfactory.catalog import Catalog
    from clipfactory.catalog.db import upsert_records
    from clipfactory.config import load_settings
    from clipfactory.records import SourceRecord
    from clipfactory.semantic.indexing import index_catalog

    folder = _folder(tmp_path, b"garbage" * 20)
    cat = Catalog(tmp_path / "cat.duckdb", create=True)
    with cat.write() as con:
        upsert_records(con, [SourceRecord(f"sha256:{1:064x}", "owned", title="a red ball")])
    toml = tmp_path / "clipfactory.toml"
    toml.write_text(f'catalog = "{tmp_path / "cat.duckdb"}"\nstore = "{tmp_path / "store"}"\n\n'
                    f'[semantic.visual]\nmodel = "{folder}"\n')
    r = index_catalog(load_settings(toml))
    assert "cannot load the ONNX model" in r["visual"]["skipped"]
    assert str(folder / "image_encoder.onnx") in r["visual"]["skipped"]
