"""Disclosure documents computed from a build's lineage (see ``docs/disclosures.md``).

:func:`write_reports` writes, for one build version and next to its shards:

* ``datasheet.html``: a self-contained datasheet with charts;
* ``croissant.json``: Croissant 1.1 with the RAI extension;
* ``eu_training_summary.md`` / ``.json``: the EU AI Act public summary of training content;
* ``ab2013.md``: California AB 2013's twelve items;
* ``copyrighted_works.csv``: one row per work (the H.R. 7913 summary).

Every figure comes from :func:`clipfactory.disclosures.facts.build_facts`. The export writes them for
every new version (and lists them in ``build.json``); a takedown writes them for its new version and
rewrites the old version's to say they are superseded. ``clipfactory report`` writes them again, anywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..buildfolder import MANIFEST, BuildFolder
from ..catalog import Catalog
from ..errors import NotFoundError
from ..ids import sha256_file
from ..storage import atomic_write
from . import croissant as _croissant
from . import datasheet as _datasheet
from . import regulatory as _regulatory
from .facts import build_facts

log = logging.getLogger(__name__)

DATASHEET = "datasheet.html"
CROISSANT = "croissant.json"
EU_MD = "eu_training_summary.md"
EU_JSON = "eu_training_summary.json"
AB2013 = "ab2013.md"
WORKS_CSV = "copyrighted_works.csv"
#: The reports by role, as ``build.json`` lists them under ``reports``.
REPORTS = {
    "datasheet": DATASHEET,
    "croissant": CROISSANT,
    "eu_training_summary": EU_MD,
    "eu_training_summary_json": EU_JSON,
    "ab2013": AB2013,
    "copyrighted_works": WORKS_CSV,
}
REPORT_FILES = tuple(REPORTS.values())
#: Default share of the hours above which one uploader or domain is warned about (``max_share`` in the
#: statements file).
DEFAULT_MAX_SHARE = 0.2


def report_context(settings=None, statements: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the settings and the operator add to the catalog's facts: the operator's ``statements`` (see
    :func:`load_statements`), the crawler's name and User-Agent, the licence table, the dataset registry
    and the share above which the audit warns."""
    cfg = dict(statements or {})
    max_share = float(cfg.pop("max_share", DEFAULT_MAX_SHARE))
    ctx: dict[str, Any] = {"statements": cfg, "max_share": max_share}
    from ..acquire.http import FetchOptions, user_agent
    from ..policy.profiles import load_policy
    from ..sources.registry import load_registry

    opts = FetchOptions(**(settings.stage_config("acquire.http") if settings is not None else {}))
    ctx["agent"] = {"agent_token": opts.agent_token, "user_agent": opts.user_agent or user_agent(opts)}
    ctx["licenses"] = load_policy(settings).licenses
    ctx["registry"] = load_registry(settings)
    return ctx


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / "build.json"
    if not path.exists():
        raise NotFoundError(
            "the build has no build.json", item=str(out_dir), fix="point at a complete build version folder"
        )
    return json.loads(path.read_text())


def load_statements(path: str | os.PathLike) -> dict[str, Any]:
    """The operator's statements from a TOML file: keys of :data:`~clipfactory.disclosures.text.STATEMENTS`
    (``provider = "…"``, ``model_purpose = "…"``) and ``max_share`` (the audit's warning share)."""
    import tomllib

    from ..errors import ConfigError
    from .text import STATEMENTS

    p = Path(path)
    if not p.exists():
        raise ConfigError(
            "statements file not found", item=str(p), fix="check the path given to --statements"
        )
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", item=str(p), fix="fix the file's syntax") from None
    unknown = sorted(set(data) - set(STATEMENTS) - {"max_share"})
    if unknown:
        raise ConfigError(
            f"unknown statement(s): {', '.join(unknown)}",
            item=str(p),
            fix=f"the statements are: {', '.join(sorted(STATEMENTS))}, max_share",
        )
    if "max_share" in data and not (
        isinstance(data["max_share"], int | float) and 0 <= data["max_share"] <= 1
    ):
        raise ConfigError("max_share must be a number from 0 to 1", item=str(p), fix="e.g. max_share = 0.2")
    return data


def source_categories_of(catalog: Catalog, index: Path) -> dict[str, str] | None:
    """The semantic layer's category of each source of the build whose index is ``index``
    (``clipfactory categories``: a dataset label, else zero-shot on the text vectors), or ``None``
    without the semantic extra. A source with no text to classify has no entry: it counts as unknown."""
    if not index.exists():
        return None
    try:
        from ..semantic.categories import categorise
    except ImportError:
        return None
    from .languages import index_source_ids

    ids = index_source_ids(index)
    if not ids:
        return None
    try:
        rows = categorise(catalog, ids)["rows"]
    except Exception as exc:  # noqa: BLE001 - a missing model or extra leaves categories unknown, stated so
        log.info("categories unknown in the reports: %s", exc)
        return None
    return {r["source_id"]: r["category"] for r in rows if r["how"] != "no text"}


def facts_for(
    catalog: Catalog,
    settings,
    manifest: dict[str, Any],
    out_dir: Path,
    *,
    works_csv: Path | None = None,
    statements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts of the build whose ``build.json`` is ``manifest`` and whose files lie in ``out_dir``.
    ``statements`` default to those ``build.json`` recorded (``report_statements``)."""
    if statements is None:
        statements = manifest.get("report_statements")
    ctx = report_context(settings, statements)
    index = Path(out_dir) / (manifest.get("index") or "index.parquet")
    ctx["source_categories"] = source_categories_of(catalog, index)
    from .languages import source_languages_of

    ctx["source_languages"] = source_languages_of(catalog, index)
    with catalog.read() as con:
        return build_facts(con, manifest, index if index.exists() else None, ctx, works_csv=works_csv)


def write_reports(
    catalog: Catalog,
    settings,
    out_dir: str | os.PathLike,
    manifest: dict[str, Any] | None = None,
    *,
    dest: str | os.PathLike | None = None,
    statements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write every report of the build in ``out_dir`` (``manifest``: its ``build.json``, read when not
    given) into ``dest`` (default: ``out_dir``). Returns ``{"reports": {role: name}, "files": [{name,
    sha256, bytes}], "facts": ...}``. Each file is written to a temporary sibling and renamed into place."""
    out_dir = Path(out_dir)
    manifest = manifest if manifest is not None else read_manifest(out_dir)
    dest_dir = Path(dest) if dest is not None else out_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_csv = tempfile.mkstemp(prefix=f".{WORKS_CSV}.", suffix=".part", dir=dest_dir)
    os.close(fd)
    os.unlink(tmp_csv)  # DuckDB's COPY creates it
    try:
        facts = facts_for(
            catalog, settings, manifest, out_dir, works_csv=Path(tmp_csv), statements=statements
        )
        os.replace(tmp_csv, dest_dir / WORKS_CSV)
    finally:
        if os.path.exists(tmp_csv):
            os.unlink(tmp_csv)
    eu = _regulatory.eu_summary(facts)
    ab = _regulatory.ab2013(facts)
    entries = list(manifest.get("shards") or []) + list(manifest.get("files") or [])
    index = out_dir / (manifest.get("index") or "index.parquet")
    if index.exists() and not any(e.get("name") == index.name for e in entries):
        entries.append({"name": index.name, **_file_entry(index)})  # a build.json that does not list it
    docs = {
        DATASHEET: _datasheet.render(facts),
        CROISSANT: json.dumps(_croissant.croissant(facts, entries), indent=2, ensure_ascii=False) + "\n",
        EU_JSON: _regulatory.dumps(eu),
        EU_MD: _regulatory.eu_markdown(eu),
        AB2013: _regulatory.ab2013_markdown(ab),
    }
    for name, text in docs.items():
        with atomic_write(dest_dir / name, "w") as fh:
            fh.write(text)
    files = [{"name": n, **_file_entry(dest_dir / n)} for n in REPORT_FILES]
    statements = dict(facts["statements"])
    if facts["max_share"] != DEFAULT_MAX_SHARE:
        statements["max_share"] = facts["max_share"]
    return {
        "reports": dict(REPORTS),
        "files": files,
        "statements": statements,
        "facts": facts,
        "eu": eu,
        "ab2013": ab,
    }


def rewrite_reports(catalog: Catalog, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write the reports of the build version in ``out_dir`` again from its ``build.json`` and index, and
    list them there. A takedown calls it for the new version it wrote and for the version it superseded
    (whose ``build.json`` then says ``superseded``, and so do its reports)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    res = write_reports(catalog, None, out_dir, manifest)
    _list_in_manifest(out_dir, manifest, res["files"])
    return res


def _file_entry(path: Path) -> dict[str, Any]:
    """``sha256`` and ``bytes`` of a file, as ``build.json`` lists its files."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def locate_build(catalog: Catalog, build: str) -> BuildFolder:
    """The folder of ``build`` (a build id of the catalog, ``example-v1``; a build name, its latest
    version; or a build version folder, local or ``s3://…``), checked to hold a ``build.json``. The
    folder may be local or on object storage."""
    folder = BuildFolder(build)
    if folder.exists(MANIFEST):
        return folder
    rows = catalog.query("SELECT build_id, out_dir FROM builds WHERE build_id = ?", [build])
    if not rows:
        rows = catalog.query(
            "SELECT build_id, out_dir FROM builds WHERE name = ? ORDER BY version DESC LIMIT 1", [build]
        )
    if not rows:
        raise NotFoundError(
            "no such build",
            item=build,
            fix="give a build id (name-vN) or a build name from `clipfactory builds list`, or a build folder",
        )
    folder = BuildFolder(rows[0]["out_dir"] or "", rows[0]["build_id"])
    if not folder.exists(MANIFEST):
        raise NotFoundError(
            f"the build's folder {folder.location} has no build.json",
            item=rows[0]["build_id"],
            fix="the build's files were moved or deleted; check the location (and, on object storage, "
            "this machine's credentials and AWS_ENDPOINT_URL)",
        )
    return folder


def build_dir(catalog: Catalog, build: str) -> Path:
    """The local folder of ``build`` (see :func:`locate_build`); a build on object storage has none: use
    :func:`opened_build`."""
    folder = locate_build(catalog, build)
    if folder.remote:
        raise NotFoundError(
            f"the build is on object storage ({folder.location}), not in a local folder",
            item=folder.build,
            fix="read it with opened_build()",
        )
    return Path(folder.location)


@contextlib.contextmanager
def opened_build(catalog: Catalog, build: str) -> Iterator[tuple[BuildFolder, Path, dict[str, Any]]]:
    """``(folder, local, manifest)`` of ``build``: where it lies (:func:`locate_build`), a local folder
    that holds its ``build.json``, index and credit files (the folder itself, or for a build on object
    storage a temporary folder they are downloaded to, removed afterwards), and its ``build.json``."""
    folder = locate_build(catalog, build)
    manifest = folder.manifest()
    if manifest is None:  # gone since it was located
        raise NotFoundError(
            f"the build's folder {folder.location} has no build.json", item=folder.build,
            fix="the build's files were moved or deleted",
        )
    names = [MANIFEST, manifest.get("index") or "index.parquet"]
    names += [e["name"] for e in manifest.get("files") or [] if isinstance(e, dict) and e.get("name")]
    with folder.local(names) as local:
        yield folder, local, manifest


def report(
    catalog: Catalog,
    settings,
    build: str,
    *,
    out: str | os.PathLike | None = None,
    statements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``clipfactory report BUILD``: write the reports of ``build`` into ``out`` (default: the build's
    folder, where they are listed in ``build.json``, with the ``statements`` used). Without
    ``statements``, those the build recorded are used. Returns what was written, and the EU summary and
    AB 2013 items.

    A build on object storage is read from a download of its ``build.json`` and index; without ``out``
    its reports (and its ``build.json``, last) are uploaded back into its folder."""
    with opened_build(catalog, build) as (folder, out_dir, manifest):
        if statements is not None:
            # a statements file adds to (and overrides) what the build recorded; it does not forget the rest
            statements = {**(manifest.get("report_statements") or {}), **statements}
        before = (out_dir / MANIFEST).read_bytes()
        res = write_reports(catalog, settings, out_dir, manifest, dest=out, statements=statements)
        if out is None:
            _list_in_manifest(out_dir, manifest, res["files"], res["statements"])
            changed = (out_dir / MANIFEST).read_bytes() != before
            folder.publish(out_dir, [f["name"] for f in res["files"]] + ([MANIFEST] if changed else []))
    f = res["facts"]
    return {
        "build_id": manifest.get("build_id"),
        "status": manifest.get("status"),
        "out_dir": str(Path(out)) if out is not None else folder.location,
        "reports": res["reports"],
        "files": res["files"],
        "totals": f["totals"],
        "eu_training_summary": res["eu"],
        "ab2013": res["ab2013"],
    }


def _list_in_manifest(
    out_dir: Path,
    manifest: dict[str, Any],
    files: list[dict[str, Any]],
    statements: dict[str, Any] | None = None,
) -> None:
    """List the reports in ``build.json`` (their entries replace older ones of the same name), with the
    ``statements`` they were made with."""
    names = {f["name"] for f in files}
    statements = manifest.get("report_statements", {}) if statements is None else statements
    if (
        manifest.get("reports") == REPORTS
        and manifest.get("report_statements") == statements
        and all(
            any(
                e.get("name") == f["name"] and e.get("sha256") == f["sha256"]
                for e in manifest.get("files") or []
            )
            for f in files
        )
    ):
        return
    manifest = dict(manifest)
    manifest.pop("out_dir", None)
    manifest["files"] = [e for e in manifest.get("files") or [] if e.get("name") not in names] + files
    manifest["reports"] = dict(REPORTS)
    manifest["report_statements"] = statements
    with atomic_write(out_dir / "build.json", "w") as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False))


__all__ = [
    "REPORTS",
    "REPORT_FILES",
    "build_dir",
    "facts_for",
    "locate_build",
    "opened_build",
    "load_statements",
    "report",
    "report_context",
    "write_reports",
]
