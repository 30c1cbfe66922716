"""``clipfactory run`` on a Ray cluster of two raylets on this machine against the local executor.

Both run the main job on the same owned videos (segments of the Big Buck Bunny film, stream-copied), on a
fresh catalog and store each time, interleaved in one process run:

* **local**: the local executor with ``workers = 2`` (a pool of two processes per stage);
* **ray-2-nodes**: the Ray executor on ``ray.cluster_utils.Cluster`` with two raylets of one CPU each
  (the same two cores, split in two nodes), workers reading a catalog snapshot and results streaming back
  to the one writer.

Throughput is seconds of video per second of wall time. Target: ray / local >= 0.8, with the same build
content hash. Optional: ``--kill-node`` kills the second raylet during the Ray run's analysis and reports
whether the run still finished with the same build (its batches in flight are re-run by Ray); a run that
finishes before ``--kill-after`` kills nothing and says so (``"killed": false`` and why).
``--parts-s3`` adds a third side, **ray-2-nodes-s3-parts**: the same Ray run with ``parts`` on an S3 API
server on 127.0.0.1 (moto's threaded server, started here before the raylets so their workers reach it),
where the workers write their batches' parts to the bucket and the driver loads them; a killed-node run
then uses it too.

The film is ``~/.cache/shared-media/bbb.mp4`` unless ``--video`` names another: ``bash ../shared/data/get-bbb.sh``
downloads it.

    python bench/bench_ray.py [--video PATH] [--segments 8] [--seconds 20] [--repeat 2] [--parts-s3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import av

MB = 2**20
DEFAULT_VIDEO = Path.home() / ".cache" / "shared-media" / "bbb.mp4"


def make_segments(video: str, out: Path, n: int, seconds: float) -> list[str]:
    """``n`` segments of ``seconds`` spread over the film, stream-copied (video only)."""
    paths = []
    with av.open(video) as src:
        vs = src.streams.video[0]
        total = float(vs.duration * vs.time_base) if vs.duration else float(src.duration / 1e6)
        for i in range(n):
            start = (total - seconds) * i / max(1, n - 1) if n > 1 else 0.0
            p = out / f"seg{i:02d}.mp4"
            src.seek(int(start / vs.time_base), stream=vs, backward=True, any_frame=False)
            with av.open(str(p), "w") as dst:
                ov = dst.add_stream_from_template(vs)
                first = None
                for pkt in src.demux(vs):
                    if pkt.dts is None:
                        continue
                    t = float(pkt.pts * vs.time_base) if pkt.pts is not None else 0.0
                    if first is None:
                        first = t
                    if t - first >= seconds and pkt.is_keyframe:
                        break
                    pkt.stream = ov
                    dst.mux(pkt)
            paths.append(str(p))
    return paths


S3_BUCKET = "bench-parts"


def start_s3():
    """moto's S3 server on a free loopback port with one bucket; the AWS settings that point at it go into
    this process's environment, which the raylets started after it inherit."""
    import logging
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    boto3.client("s3").create_bucket(Bucket=S3_BUCKET)
    return srv


def video_seconds(paths: list[str]) -> float:
    total = 0.0
    for p in paths:
        with av.open(p) as c:
            total += c.duration / 1e6
    return total


class StageProgress:
    """The progress protocol, remembering which stage runs now (to say what a killed node interrupted)."""

    def __init__(self) -> None:
        self.current: str | None = None

    def start(self, task, total=None, unit="items"):
        self.current = task

    def advance(self, task, n=1, **info):
        pass

    def finish(self, task):
        pass

    def close(self):
        pass


def run_once(
    executor: str, inputs: list[str], workdir: Path, address: str | None = None, progress: StageProgress | None = None,
    parts: str | None = None,
) -> dict:
    from clipfactory import registry
    from clipfactory.catalog import Catalog
    from clipfactory.config import Settings
    from clipfactory.factory.pipeline import run_pipeline

    registry.load_all()
    data = dict(
        catalog=str(workdir / "cat.duckdb"),
        store=str(workdir / "store"),
        inputs=inputs,
        license="CC-BY-3.0",
        rights_holder="Blender Foundation",
        purpose="commercial",
        executor=executor,
        workers=2,
        build={"name": "bbb", "out": str(workdir / "builds"), "shard_size": 100},
    )
    if address:
        data["ray_address"] = address
    if parts:
        data["parts"] = parts
    s = Settings(**data)
    t = time.perf_counter()
    summary = run_pipeline(s, progress=progress)
    seconds = time.perf_counter() - t
    h = Catalog(s.catalog).query("SELECT config->>'content_hash' AS h FROM builds ORDER BY created_at DESC LIMIT 1")
    return {
        "seconds": seconds,
        "status": summary["status"],
        "clips": summary["clips_exported"],
        "content_hash": h[0]["h"] if h else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--kill-node", action="store_true", help="also kill one raylet during a Ray run")
    ap.add_argument("--kill-after", type=float, default=15.0, help="seconds into that run")
    ap.add_argument("--parts-s3", action="store_true", help="also run Ray with parts on a local S3 API server")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.video).is_file():
        if Path(args.video) == DEFAULT_VIDEO:
            print(f"{DEFAULT_VIDEO}: the default film is missing: run `bash ../shared/data/get-bbb.sh` (it downloads "
                  "it there), or pass --video PATH", file=sys.stderr)
        else:
            print(f"{args.video}: no such file (pass --video PATH of a film)", file=sys.stderr)
        return 2
    moto = start_s3() if args.parts_s3 else None

    import ray
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        (base / "in").mkdir()
        inputs = make_segments(args.video, base / "in", args.segments, args.seconds)
        secs = video_seconds(inputs)
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "object_store_memory": 200 * MB, "include_dashboard": False},
        )
        cluster.add_node(num_cpus=1, object_store_memory=200 * MB)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            runs: dict[str, list[dict]] = {"local": [], "ray-2-nodes": []}
            s3_parts = f"s3://{S3_BUCKET}/parts" if moto else None
            if moto:
                runs["ray-2-nodes-s3-parts"] = []
            for i in range(args.repeat):
                runs["local"].append(run_once("local", inputs, base / f"local{i}"))
                runs["ray-2-nodes"].append(run_once("ray", inputs, base / f"ray{i}", cluster.address))
                if moto:
                    runs["ray-2-nodes-s3-parts"].append(
                        run_once("ray", inputs, base / f"rays3{i}", cluster.address, parts=s3_parts)
                    )
            killed = None
            if args.kill_node:
                victim = list(cluster.worker_nodes)[0]

                progress = StageProgress()
                during: list[str | None] = []
                run_over = threading.Event()  # set when run_once returns: from then on no node is killed
                lock = threading.Lock()  # the check and the kill happen together, never after the run ended

                def kill_later():
                    if run_over.wait(args.kill_after):
                        return
                    with lock:
                        if run_over.is_set():
                            return
                        during.append(progress.current)
                        cluster.remove_node(victim, allow_graceful=False)

                th = threading.Thread(target=kill_later, daemon=True)
                th.start()
                try:
                    killed = run_once("ray", inputs, base / "killed", cluster.address, progress, parts=s3_parts)
                except Exception as exc:  # reported, not hidden
                    killed = {"error": f"{type(exc).__name__}: {exc}"}
                finally:
                    with lock:
                        run_over.set()
                th.join()
                killed["killed_after_s"] = args.kill_after
                killed["killed"] = bool(during)
                if during:
                    killed["stage_running_at_kill"] = during[0]
                else:
                    killed["why"] = "the run finished before --kill-after"
        finally:
            ray.shutdown()
            cluster.shutdown()
            if moto:
                moto.stop()

    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    hashes = {k: sorted({r["content_hash"] for r in v}) for k, v in runs.items()}
    result = {
        "video_seconds": round(secs, 1),
        "segments": len(inputs),
        "median_seconds": {k: round(v, 2) for k, v in med.items()},
        "throughput_x_realtime": {k: round(secs / v, 2) for k, v in med.items()},
        "ray_over_local": round(med["local"] / med["ray-2-nodes"], 3),
        "same_build_hash": all(h == hashes["local"] for h in hashes.values()) and len(hashes["local"]) == 1,
        "clips": {k: [r["clips"] for r in v] for k, v in runs.items()},
        "runs": runs,
    }
    if moto:
        result["ray_s3_parts_over_local"] = round(med["local"] / med["ray-2-nodes-s3-parts"], 3)
    if killed is not None:
        result["node_killed"] = {
            **killed,
            "same_build_hash": killed.get("content_hash") == hashes["local"][0] if hashes["local"] else False,
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{secs:.0f} s of video in {len(inputs)} segments, median of {args.repeat}")
        for k in runs:
            print(f"  {k:12s} {med[k]:7.1f} s  {secs / med[k]:5.2f}x real time")
        print(f"  ray / local throughput: {result['ray_over_local']:.2f} (target >= 0.8)")
        if moto:
            print(f"  ray with parts on S3 / local throughput: {result['ray_s3_parts_over_local']:.2f}")
        print(f"  same build hash: {result['same_build_hash']}")
        if killed is not None:
            if killed["killed"]:
                print(f"  node killed mid-run: {result['node_killed']}")
            else:
                print(f"  no node killed ({killed['why']}): {result['node_killed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
