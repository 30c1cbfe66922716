"""Lookup through the web page against the CLI lookup of the same file.

The catalog is the one of ``bench_fingerprints.py``'s scale part: the real media of ``../shared/data/media``
and the full Big Buck Bunny film through the real analysis pass, plus ``--synthetic`` synthetic clip
fingerprints. Queries: a re-encoded half-size excerpt of the film (``--query-s`` seconds from minute 2,
found) and a held-out real video (no match).

Timed, interleaved, ``--repeat`` times each (medians):

* **page**: ``clipfactory serve`` runs in a subprocess on 127.0.0.1; the file is uploaded to the lookup page
  (multipart, streamed) and the whole answer page read. A warm-up upload comes first (a server is
  long-running: its index is loaded once).
* **CLI**: ``clipfactory lookup FILE --json`` in a new process (what a user runs: start-up, imports and
  the index load included).
* **CLI, warm**: the same command through Typer's runner inside this process after a warm-up, so that
  only the lookup and its rendering are timed: the strict baseline.

Target: page <= 1.5 x CLI.

    python bench/bench_web.py [--synthetic N] [--query-s S] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_fingerprints import HELD_OUT, MEDIA, build_catalog  # noqa: E402

#: The ``clipfactory`` command of this interpreter.
CLI = [sys.executable, "-c", "from clipfactory.cli.app import main; main()"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        CLI + ["serve", "--port", str(port), "--public-only"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start: " + proc.stderr.read().decode()[-2000:])


def page_lookup(client, base: str, path: Path) -> tuple[float, str]:
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(base + "/").text).group(1)
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        r = client.post(base + "/lookup", data={"csrf": csrf}, files={"file": (path.name, f, "video/mp4")})
    dt = time.perf_counter() - t0
    r.raise_for_status()
    verdict = re.search(r'id="verdict">\s*([A-Za-z ]+)', r.text)
    return dt, verdict.group(1).strip() if verdict else "?"


def cli_lookup(env: dict, path: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(
        CLI + ["lookup", str(path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return time.perf_counter() - t0, json.loads(out)["status"]


def cli_warm(runner, app, args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = runner.invoke(app, args)
    dt = time.perf_counter() - t0
    if res.exit_code != 0:
        raise RuntimeError(res.output)
    return dt, json.loads(res.output)["status"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--synthetic", type=int, default=20_000, help="synthetic clip fingerprints in the catalog"
    )
    ap.add_argument("--query-s", type=float, default=60.0, help="length of the film excerpt looked up")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import httpx
    from media_synth import transform
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    info = build_catalog(work, args.synthetic, with_bbb=True)
    queries = {}
    if info["bbb"]:
        queries["film excerpt (match)"] = transform(
            info["bbb"],
            work / "excerpt.mp4",
            start_s=120.0,
            end_s=120.0 + args.query_s,
            scale=0.5,
            codec="mpeg4",
            bit_rate=800_000,
        )
    held = [MEDIA / n for n in HELD_OUT if (MEDIA / n).exists()]
    if held:
        queries[f"{held[0].name} (no match)"] = held[0]
    env = {
        **os.environ,
        "CLIPFACTORY_CATALOG": str(work / "cat.duckdb"),
        "CLIPFACTORY_STORE": str(work / "store"),
    }
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    port = _port()
    server = _serve(env, port)
    base = f"http://127.0.0.1:{port}"
    runner = CliRunner()
    rows = []
    try:
        with httpx.Client(timeout=600) as client:
            for name, q in queries.items():
                cli_args = [
                    "lookup",
                    str(q),
                    "--catalog",
                    env["CLIPFACTORY_CATALOG"],
                    "--store",
                    env["CLIPFACTORY_STORE"],
                    "--json",
                ]
                page_lookup(client, base, q)  # warm-up: the server loads its index once
                cli_warm(runner, app, cli_args)
                t_page, t_cli, t_warm = [], [], []
                answers = set()
                for _ in range(args.repeat):
                    dt, verdict = page_lookup(client, base, q)
                    t_page.append(dt)
                    dt, st = cli_lookup(env, q)
                    t_cli.append(dt)
                    dt, st2 = cli_warm(runner, app, cli_args)
                    t_warm.append(dt)
                    answers.add((verdict, st, st2))
                m = {
                    k: statistics.median(v)
                    for k, v in (("page", t_page), ("cli", t_cli), ("cli_warm", t_warm))
                }
                rows.append(
                    {
                        "query": name,
                        "bytes": q.stat().st_size,
                        "answers": sorted(answers),
                        "page_s": round(m["page"], 3),
                        "cli_s": round(m["cli"], 3),
                        "cli_warm_s": round(m["cli_warm"], 3),
                        "page_over_cli": round(m["page"] / m["cli"], 3),
                        "page_over_cli_warm": round(m["page"] / m["cli_warm"], 3),
                    }
                )
    finally:
        server.terminate()
        server.wait(10)
    out = {"catalog": info, "repeat": args.repeat, "rows": rows, "target": "page <= 1.5 x CLI"}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"catalog: {info['index_frames']} index frames ({info['synthetic_clips']} synthetic clips), medians of {args.repeat}"
    )
    print(
        f"{'query':32} {'page s':>8} {'CLI s':>8} {'CLI warm s':>11} {'page/CLI':>9} {'page/warm':>10}  answers"
    )
    for r in rows:
        print(
            f"{r['query']:32} {r['page_s']:8.3f} {r['cli_s']:8.3f} {r['cli_warm_s']:11.3f} "
            f"{r['page_over_cli']:9.2f} {r['page_over_cli_warm']:10.2f}  {r['answers']}"
        )


if __name__ == "__main__":
    main()
