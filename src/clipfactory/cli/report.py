"""``clipfactory report`` and ``clipfactory audit``: disclosure documents and the composition of a build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import CatalogOpt, ConfigOpt, JsonOpt, SetOpt, console, emit, existing_catalog, settings, table

StatementsOpt = Annotated[
    Path | None,
    typer.Option(
        "--statements",
        help="TOML file of what only the operator knows (provider, model, model_purpose, ...; see "
        "docs/disclosures.md); recorded in build.json. Default: what the build recorded.",
    ),
]


def _statements(path: Path | None):
    from ..disclosures import load_statements

    return load_statements(path) if path is not None else None


def _pct(v) -> str:
    return "unknown" if v is None else f"{100 * float(v):.1f}%"


@app.command("report")
def report_cmd(
    build: Annotated[str, typer.Argument(help="Build id (see `clipfactory builds list`), build name (its latest version) or a build folder.")],
    other: Annotated[
        str | None, typer.Argument(help="With --diff: the later build to compare BUILD with.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the documents here instead of into the build's folder."),
    ] = None,
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Show what entered and left between BUILD and the later build, and why."),
    ] = False,
    statements: StatementsOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write a build's datasheet, Croissant, EU training summary, AB 2013 and copyrighted-works documents.

    Without --out they go into the build's folder and are listed in its build.json. Facts only the operator
    knows (provider, model, purpose of the model...) come from --statements FILE (then recorded in the
    build), else from what the build recorded; where none is given the documents say "operator must state".
    """
    s = settings(config, sets, catalog=catalog)
    cat = existing_catalog(s)
    if diff:
        if other is None:
            raise typer.BadParameter("--diff needs two builds: clipfactory report --diff BUILD_A BUILD_B")
        from ..disclosures.audit import diff as diff_builds

        d = diff_builds(cat, build, other)

        def render_diff(d):
            console.print(
                f"{d['from']} → {d['to']}: {d['clips_before']} → {d['clips_after']} clips "
                f"({d['clips_entered']} entered, {d['clips_left']} left)",
                highlight=False,
                soft_wrap=True,
            )
            table(d["entered"], "entered", ["source_id", "clips", "seconds", "why"], empty="entered: none")
            table(d["left"], "left", ["source_id", "clips", "seconds", "why"], empty="left: none")

        emit(d, json_, render_diff)
        return
    if other is not None:
        raise typer.BadParameter("a second build is only taken with --diff")
    from ..disclosures import report

    r = report(cat, s, build, out=out, statements=_statements(statements))

    def render(r):
        t = r["totals"]
        console.print(
            f"reports of {r['build_id']} ({r['status']}): {t['n_clips']} clips, {t['hours']:.3f} hours, "
            f"{t['n_sources']} works, in {r['out_dir']}",
            highlight=False,
            soft_wrap=True,
        )
        table([{"file": f["name"], "bytes": f["bytes"]} for f in r["files"]], "documents")

    emit(r, json_, render)


@app.command("audit")
def audit_cmd(
    build: Annotated[str, typer.Argument(help="Build id (see `clipfactory builds list`), build name (its latest version) or a build folder.")],
    max_share: Annotated[
        float | None,
        typer.Option(
            "--max-share",
            help="Warn where one uploader or domain holds more than this share of the hours (default: "
            "max_share of the statements, else 0.2).",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    statements: StatementsOpt = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The composition of a build: shares by dataset, domain, uploader, language, region, category and year."""
    from ..disclosures.audit import audit

    s = settings(config, sets, catalog=catalog)
    a = audit(existing_catalog(s), s, build, max_share=max_share, statements=_statements(statements))

    def render(a):
        console.print(
            f"{a['build_id']}: {a['n_clips']} clips, {a['hours']:.3f} hours; {a['n_uploaders']} uploaders "
            f"(concentration {_hhi(a['uploader_hhi'])}), {a['n_domains']} domains (concentration {_hhi(a['domain_hhi'])})",
            highlight=False,
            soft_wrap=True,
        )
        for name, rows in a["dimensions"].items():
            table(
                [
                    {
                        name: r["value"],
                        "clips": r["clips"],
                        "hours": f"{r['hours']:.3f}",
                        "share": _pct(r["share"]),
                    }
                    for r in rows
                ],
                f"by {name}",
            )
        for w in a["warnings"]:
            console.print(f"[bold yellow]warning:[/] {w['message']}", highlight=False, soft_wrap=True)

    emit(a, json_, render)


def _hhi(v) -> str:
    return "unknown" if v is None else f"HHI {float(v):.3f}"
