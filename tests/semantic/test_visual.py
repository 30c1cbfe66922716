"""Visual vectors (semantic.visual) with a tiny image–text model the test builds: an ONNX image tower that
averages the normalised pixels and projects them, and a text tower over a three-word vocabulary."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
onnx = lazy.module("onnx")
lazy.module("onnxruntime")
lazy.module("tokenizers")

from PIL import Image  # noqa: E402

from clipfactory.catalog import Catalog  # noqa: E402
from clipfactory.catalog.db import upsert_records  # noqa: E402
from clipfactory.config import load_settings  # noqa: E402
from clipfactory.policy.gate import evaluate  # noqa: E402
from clipfactory.records import ClipRecord, SourceRecord  # noqa: E402
from clipfactory.semantic.indexing import index_catalog  # noqa: E402
from clipfactory.semantic.search import search  # noqa: E402
from clipfactory.semantic.visual_model import VisualEncoder  # noqa: E402
from clipfactory.storage import BlobStore  # noqa: E402

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
# image tower: mean of each normalised channel, times W (3 -> 4)
W = np.array([[1, 0, 0, 0.5], [0, 1, 0, 0.5], [0, 0, 1, 0.5]], np.float32)
# text tower: one row per token (pad, red, green, blue), averaged over the 2 positions
E = np.array([[0, 0, 0, 0], [2, -2, -2, 0], [-2, 2, -2, 0], [-2, -2, 2, 0]], np.float32)
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _model(folder: Path, *, text: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    img = onnx.helper.make_graph(
        [
            onnx.helper.make_node("ReduceMean", ["pixel_values", "axes"], ["m"], keepdims=0),
            onnx.helper.make_node("MatMul", ["m", "W"], ["image_embeds"]),
        ],
        "image",
        [onnx.helper.make_tensor_value_info("pixel_values", onnx.TensorProto.FLOAT, ["N", 3, 16, 16])],
        [onnx.helper.make_tensor_value_info("image_embeds", onnx.TensorProto.FLOAT, ["N", 4])],
        [onnx.helper.make_tensor("axes", onnx.TensorProto.INT64, [2], [2, 3]), onnx.helper.make_tensor("W", onnx.TensorProto.FLOAT, W.shape, W.ravel())],
    )
    onnx.save(onnx.helper.make_model(img, opset_imports=[onnx.helper.make_opsetid("", 18)]), folder / "image_encoder.onnx")
    if text:
        txt = onnx.helper.make_graph(
            [
                onnx.helper.make_node("Gather", ["E", "input_ids"], ["g"]),
                onnx.helper.make_node("ReduceMean", ["g", "ax1"], ["text_embeds"], keepdims=0),
            ],
            "text",
            [onnx.helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["N", 2])],
            [onnx.helper.make_tensor_value_info("text_embeds", onnx.TensorProto.FLOAT, ["N", 4])],
            [onnx.helper.make_tensor("E", onnx.TensorProto.FLOAT, E.shape, E.ravel()), onnx.helper.make_tensor("ax1", onnx.TensorProto.INT64, [1], [1])],
        )
        onnx.save(onnx.helper.make_model(txt, opset_imports=[onnx.helper.make_opsetid("", 18)]), folder / "text_encoder.onnx")
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel({"[PAD]": 0, "red": 1, "green": 2, "blue": 3}, unk_token="[PAD]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.save(str(folder / "tokenizer.json"))
    (folder / "visual_config.json").write_text(
        json.dumps({"name": "tiny-rgb", "image_size": 16, "mean": MEAN, "std": STD, "context_length": 2, "license": "CC0-1.0"})
    )
    return folder


def _jpeg(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), rgb).save(buf, "PNG")  # lossless, so the expected vector is exact
    return buf.getvalue()


def _expected(rgb) -> np.ndarray:
    x = (np.asarray(rgb, np.float32) / 255.0 - np.asarray(MEAN)) / np.asarray(STD)
    v = x @ W
    return v / np.linalg.norm(v)


def test_the_onnx_model_loads_with_its_id_licence_and_towers(tmp_path):
    enc = VisualEncoder(str(_model(tmp_path / "m")))
    assert enc.dim == 4 and enc.has_text and enc.runtime == "onnxruntime"
    assert enc.model_id.startswith("tiny-rgb@sha256:") and len(enc.model_id.split(":")[1]) == 16
    assert enc.describe()["license"] == "CC0-1.0"
    got = enc.encode_images([Image.new("RGB", (40, 24), (255, 0, 0))])[0]
    # red: normalised channels (2, -2, -2) -> W -> (2, -2, -2, -1), unit length
    assert np.allclose(got, np.array([2, -2, -2, -1]) / np.sqrt(13), atol=1e-5)
    assert np.allclose(enc.encode_text(["red"])[0], np.array([1, -1, -1, 0]) / np.sqrt(3), atol=1e-5)
    other = VisualEncoder(str(_model(tmp_path / "m2", text=False)))
    assert not other.has_text and other.model_id != enc.model_id  # other files, another id
    same = VisualEncoder(str(_model(tmp_path / "m3")))  # the same bytes in another folder: the same id
    assert same.model_id == enc.model_id
    with pytest.raises(Exception, match="no text tower"):
        other.encode_text(["red"])


def _catalog(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    cat = Catalog(tmp_path / "cat.duckdb", create=True)
    blobs = BlobStore(tmp_path / "store")
    clips, sources, ids = [], [], {}
    for i, (name, rgb) in enumerate(COLOURS.items()):
        sid = f"sha256:{i:064x}"
        sources.append(SourceRecord(sid, "owned", title=f"video {i}"))
        cid = f"clip{i}"
        clips.append(ClipRecord(cid, sid, 0, 4000, thumb_uri=blobs.put_bytes(_jpeg(rgb))))
        ids[name] = cid
    with cat.write() as con:
        upsert_records(con, sources)
        upsert_records(con, clips)
    return tmp_path / "cat.duckdb", ids


def test_visual_vectors_from_thumbnails_and_search_through_the_text_tower(tmp_path):
    path, ids = _catalog(tmp_path)
    # No model configured: the visual vectors are skipped, with the reason, and the sources keep their fields.
    bare = load_settings(None, overrides={"catalog": str(path), "store": str(tmp_path / "store")})
    assert index_catalog(bare)["visual"]["skipped"].startswith("no visual model configured: set semantic.visual.model")
    with Catalog(path).read() as con:
        assert con.execute("SELECT count(*) FROM embeddings WHERE modality = 'visual'").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM sources WHERE title IS NULL").fetchall()[0][0] == 0
    model = _model(tmp_path / "model")
    toml = tmp_path / "clipfactory.toml"
    toml.write_text(f'catalog = "{path}"\nstore = "{tmp_path / "store"}"\n\n[semantic.visual]\nmodel = "{model}"\n')
    s = load_settings(toml)
    r = index_catalog(s)
    v = r["visual"]
    assert v["model"]["license"] == "CC0-1.0" and v["encoded"] == 3
    assert v["vectors"] == 6 and v["index"]["vectors"] == 6  # a clip and a source each
    with Catalog(path).read() as con:
        rows = con.execute(
            "SELECT item_id, kind, vector FROM embeddings WHERE modality = 'visual' ORDER BY item_id"
        ).fetchall()
    got = {item: np.asarray(vec) for item, kind, vec in rows if kind == "clip"}
    for name, rgb in COLOURS.items():
        assert np.allclose(got[ids[name]], _expected(rgb), atol=1e-5), name
    assert index_catalog(s)["visual"]["encoded"] == 0  # nothing is computed twice
    evaluate(Catalog(path), "research", settings=s)
    for name in COLOURS:
        res = search(Catalog(path), name, k=1, kind="clip", modality="visual", visual_model=str(model))
        assert res["results"][0]["clip_id"] == ids[name], (name, res["results"])
    with pytest.raises(Exception, match="needs their model"):
        search(Catalog(path), "red", modality="visual")


def test_a_transformers_clip_folder_loads_and_gives_the_models_own_image_features(tmp_path):
    """A random-weight CLIP of tiny size, saved with save_pretrained like any CLIP or SigLIP folder."""
    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg = tr.CLIPConfig(
        text_config=dict(small, vocab_size=50, max_position_embeddings=8),
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=8,
    )
    model = tr.CLIPModel(cfg).eval()
    model.save_pretrained(tmp_path / "clip")
    proc = tr.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(tmp_path / "clip")
    enc = VisualEncoder(str(tmp_path / "clip"), license="MIT")
    assert enc.dim == 8 and enc.runtime == "transformers CLIPModel" and enc.describe()["license"] == "MIT"
    assert enc.model_id.startswith("clip@sha256:")
    im = Image.new("RGB", (40, 30), (200, 30, 60))
    got = enc.encode_images([im])[0]
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=proc(images=[im], return_tensors="pt")["pixel_values"])
    ref = getattr(ref, "pooler_output", ref).numpy()[0]
    assert np.allclose(got, ref / np.linalg.norm(ref), atol=1e-5)
    with pytest.raises(Exception, match="cannot load a visual model"):
        VisualEncoder(str(tmp_path / "no-such-model"))


def test_a_hub_name_not_in_the_local_cache_is_refused_without_asking_the_hub(monkeypatch):
    """A visual model named like a hub model whose files are not on this machine: one ConfigError naming
    the setting, and no host name looked up (clipfactory downloads no model)."""
    import socket

    pytest.importorskip("transformers")
    from clipfactory.errors import ConfigError

    tried = []

    def no_network(*args, **kwargs):
        tried.append(args[:1])
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(ConfigError, match="neither a folder nor a model in the local Hugging Face cache") as err:
        VisualEncoder("openai/clip-vit-base-patch32-not-cached")
    assert "semantic.visual.model" in str(err.value)
    assert tried == [], f"the hub was asked: {tried}"
