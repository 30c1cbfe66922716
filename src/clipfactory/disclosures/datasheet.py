"""``datasheet.html``: one self-contained page after "Datasheets for Datasets" (Gebru et al.).

Sections: motivation, composition, collection, preprocessing, uses, distribution, maintenance. Charts
are Vega-Lite specifications rendered by the vendored vega, vega-lite and vega-embed bundles, which are
inlined, so the page needs no network when it is viewed. Each chart's data are the rows of one
figure of :func:`clipfactory.disclosures.facts.build_facts`.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from .facts import OPERATOR, UNKNOWN
from .text import cell, fmt_hhi, fmt_hours, fmt_share, label, statement

#: The vendored bundles, in load order (see vendor/README.md).
VENDORED = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
_BUNDLES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")


def _bundle(name: str) -> str:
    return resources.files(__package__).joinpath("vendor", name).read_text(encoding="utf-8")


def _empty(title: str, text: str) -> dict[str, Any]:
    """A chart with no rows: its title and one line saying so (an empty scale would have no extent)."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": 360,
        "height": 30,
        "data": {"values": [{"text": text}]},
        "mark": {"type": "text", "align": "left", "x": 0, "y": 15},
        "encoding": {"text": {"field": "text", "type": "nominal"}},
    }


def _bar(title: str, rows: list[dict[str, Any]], key: str, *, empty: str = UNKNOWN) -> dict[str, Any]:
    """A horizontal bar chart of hours and clips by ``key`` (one bar per row, unknown values labelled)."""
    values = [
        {
            "group": label(r.get(key), empty),
            "hours": round(float(r.get("hours") or 0), 6),
            "clips": int(r.get("clips") or 0),
            "share": round(float(r.get("share") or 0), 6),
        }
        for r in rows
    ]
    if not values:
        return _empty(title, "no clips")
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "data": {"values": values},
        "hconcat": [
            {
                "mark": "bar",
                "width": 260,
                "encoding": {
                    "y": {"field": "group", "type": "nominal", "sort": "-x", "title": None},
                    "x": {"field": "hours", "type": "quantitative", "title": "hours"},
                    "tooltip": [
                        {"field": "group"},
                        {"field": "hours", "format": ".3f"},
                        {"field": "share", "format": ".1%"},
                    ],
                },
            },
            {
                "mark": {"type": "bar", "color": "#e45756"},
                "width": 200,
                "encoding": {
                    "y": {"field": "group", "type": "nominal", "sort": "-x", "title": None, "axis": None},
                    "x": {"field": "clips", "type": "quantitative", "title": "clips"},
                    "tooltip": [{"field": "group"}, {"field": "clips"}],
                },
            },
        ],
    }


def _hist(name: str, h: dict[str, Any]) -> dict[str, Any]:
    values = [{"start": b["start"], "end": b["end"], "clips": b["clips"]} for b in h.get("bins", [])]
    if not values:
        return _empty(f"{name} (no clip has a value)", "no data")
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"{name} ({h.get('n') or 0} clips with a value)",
        "width": 220,
        "height": 120,
        "data": {"values": values},
        "mark": "bar",
        "encoding": {
            "x": {"field": "start", "bin": {"binned": True}, "type": "quantitative", "title": name},
            "x2": {"field": "end"},
            "y": {"field": "clips", "type": "quantitative", "title": "clips"},
        },
    }


def _dropped(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [{"reason": r["reason"] or UNKNOWN, "stage": r["stage"], "items": int(r["items"])} for r in rows]
    if not values:
        return _empty("Dropped in the run that made the build, by reason", "nothing was dropped")
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Dropped in the run that made the build, by reason",
        "width": 360,
        "data": {"values": values},
        "mark": "bar",
        "encoding": {
            "y": {"field": "reason", "type": "nominal", "sort": "-x", "title": None},
            "x": {"field": "items", "type": "quantitative", "title": "items dropped"},
            "color": {"field": "stage", "type": "nominal"},
        },
    }


def charts(f: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The page's charts as ``(id, Vega-Lite spec)``, in page order."""
    out = [
        ("chart-datasets", _bar("Hours and clips by dataset", f["datasets"], "name")),
        (
            "chart-licences",
            _bar("Hours and clips by licence", f["licences"], "name", empty="no licence recorded"),
        ),
        (
            "chart-classes",
            _bar("Hours and clips by licence class (policy decision)", f["license_classes"], "class"),
        ),
        (
            "chart-categories",
            _bar("Hours and clips by category", f["categories"], "category", empty="uncategorised"),
        ),
        (
            "chart-domains",
            _bar(
                "Hours and clips by source domain", f["domains"][:30], "domain", empty="no URL (owned media)"
            ),
        ),
        ("chart-languages", _bar("Hours and clips by language", f["languages"], "language")),
        ("chart-years", _bar("Hours and clips by year acquired", f["years"], "year")),
    ]
    for name, h in f["quality"].items():
        out.append((f"chart-quality-{name}", _hist(name, h)))
    out.append(("chart-dropped", _dropped(f["dropped"])))
    return out


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f"<td>{html.escape(cell(r, k))}</td>" for k, _ in cols) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _balance_table(rows: list[dict[str, Any]] | None) -> str:
    """Target against achieved share of the build's clips for each category capped by ``[build] balance``."""
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(str(r['category']))}</td><td>{fmt_share(r['target'])}</td>"
        f"<td>{fmt_share(r['achieved'])}</td><td>{r['clips']}</td></tr>"
        for r in rows
    )
    return (
        "<h3>Balance: target and achieved shares of clips</h3>"
        f"<p>{rows[0]['dropped_for_caps']} clips were left out to keep capped categories at most at their target.</p>"
        "<table><thead><tr><th>category</th><th>target (cap)</th><th>achieved</th><th>clips</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _dl(items: list[tuple[str, Any]]) -> str:
    return (
        "<dl>"
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(label(v))}</dd>" for k, v in items)
        + "</dl>"
    )


def _script_json(obj: Any) -> str:
    # JSON inside <script>: "</" would end the element, so it is written "<\/".
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")


def render(f: dict[str, Any]) -> str:
    """The datasheet of one build's facts, as one HTML document."""
    b, t, st = f["build"], f["totals"], f["statements"]
    superseded = ""
    if b.get("status") == "superseded":
        by = b.get("superseded_by")
        superseded = (
            f'<p class="superseded" id="superseded"><strong>Superseded.</strong> This version was replaced by '
            f"{html.escape(by or 'a later version')}; content was removed from it (a takedown). "
            "Use the newer version's datasheet.</p>"
        )
    chart_list = charts(f)
    specs = {cid: spec for cid, spec in chart_list}
    chart_divs = {cid: f'<div class="chart" id="{cid}"></div>' for cid, _ in chart_list}
    ds_cols = [
        ("name", "dataset"),
        ("kind", "kind"),
        ("sources", "sources"),
        ("clips", "clips"),
        ("hours", "hours"),
        ("share", "share"),
    ]
    sections = [
        "<h2>Motivation</h2>",
        _dl(
            [
                ("Build", b.get("build_id")),
                ("Purpose profile the policy checked every source against", b.get("purpose")),
                ("Purpose description", (f.get("profile") or {}).get("description") or UNKNOWN),
                ("Who created the dataset, and for what", statement(st, "provider")),
                ("Model(s) trained on it", statement(st, "model")),
                ("Intended purpose of the model", statement(st, "model_purpose")),
                ("Funding", statement(st, "funding")),
            ]
        ),
        "<h2>Composition</h2>",
        _dl(
            [
                ("Instances", f"{t['n_clips']} video clips (MP4, with a JSON record and a thumbnail each)"),
                ("Source works", t["n_sources"]),
                ("Hours of video", fmt_hours(t["hours"])),
                ("Bytes of clip media", t["bytes"]),
                ("Shards", t["n_shards"]),
                ("Languages", "see the chart; unknown where no manifest gave one"),
                ("Personal or sensitive information", statement(st, "personal_information")),
                ("Clips with identifiable faces", _faces(t)),
            ]
        ),
        chart_divs["chart-datasets"],
        _table(f["datasets"], ds_cols),
        chart_divs["chart-licences"],
        _table(
            f["licences"],
            [
                ("name", "licence"),
                ("license", "SPDX"),
                ("family", "family"),
                ("sources", "sources"),
                ("clips", "clips"),
                ("hours", "hours"),
                ("share", "share"),
            ],
        ),
        chart_divs["chart-classes"],
        chart_divs["chart-categories"],
        _balance_table(f.get("balance")),
        chart_divs["chart-domains"],
        chart_divs["chart-languages"],
        chart_divs["chart-years"],
        "<h3>Uploaders (top 20)</h3>",
        _dl(
            [
                ("Distinct uploaders", f["n_uploaders"]),
                ("Concentration (HHI of uploader shares, 0–1)", fmt_hhi(f["uploader_hhi"])),
            ]
        ),
        _table(
            f["uploaders"],
            [
                ("uploader", "uploader"),
                ("sources", "sources"),
                ("clips", "clips"),
                ("hours", "hours"),
                ("share", "share"),
            ],
        ),
        "<h2>Collection process</h2>",
        _dl(
            [
                (
                    "How the data was acquired",
                    ", ".join(f"{label(p['platform'])}: {p['sources']} sources" for p in f["platforms"])
                    or "none",
                ),
                ("First acquisition", f["period"]["first"] or UNKNOWN),
                ("Latest acquisition", f["period"]["last"] or UNKNOWN),
                ("Sources without an acquisition date", f["period"]["undated_sources"]),
                ("Web-crawled sources", f["crawl"]["sources"]),
                ("Crawler", (f["crawl"].get("agent") or {}).get("user_agent") or UNKNOWN),
                (
                    "Consent checks",
                    "; ".join(
                        f"{x['signal']}: {x['sources_checked']} checked, {x['sources_excluded']} excluded"
                        for x in f["tdm"]
                    )
                    or "none recorded",
                ),
                ("Whether collection is ongoing", statement(st, "collection_ongoing")),
            ]
        ),
        "<h2>Preprocessing, cleaning, labelling</h2>",
        "<p>Each source was decoded once for shot boundaries and quality scores, cut into clips at shot "
        "boundaries (stream copy where keyframes allow, else re-encoded), filtered by quality rules, "
        "checked for near-duplicates of restricted footage, and checked by the licence policy for the "
        "build's purpose. What was dropped, and why:</p>",
        chart_divs["chart-dropped"],
        _table(f["dropped"], [("stage", "stage"), ("reason", "reason"), ("items", "items")]),
        "<h3>Quality scores</h3>",
        "".join(chart_divs[f"chart-quality-{n}"] for n in f["quality"]),
        "<h2>Uses</h2>",
        _dl(
            [
                (
                    "Uses the licences allow",
                    f"the purpose profile {label(b.get('purpose'))}: "
                    + ((f.get("profile") or {}).get("description") or UNKNOWN),
                ),
                ("Evaluation sets kept out", ", ".join(f["evaluation_sets"]) or "none"),
                ("Uses to avoid", statement(st, "uses_to_avoid")),
            ]
        ),
        "<h2>Distribution</h2>",
        _dl(
            [
                ("Format", "WebDataset tar shards with a Parquet index (index.parquet) and build.json"),
                (
                    "Attribution",
                    "ATTRIBUTION.md and ATTRIBUTION.json credit every work; each clip's JSON carries its own",
                ),
                (
                    "Licences",
                    ", ".join(label(r["license"], "no licence recorded") for r in f["licences"]) or "none",
                ),
                ("Distributed to", statement(st, "distribution")),
            ]
        ),
        "<h2>Maintenance</h2>",
        _dl(
            [
                ("Version", f"{b.get('build_id')} (supersedes {b.get('supersedes') or 'nothing'})"),
                ("Status", b.get("status")),
                ("Takedowns done in this catalog", f["takedowns"].get("done")),
                ("Tombstones (content that is refused if it comes back)", f["takedowns"].get("tombstones")),
                ("Who maintains it, and how to reach them", statement(st, "contact")),
            ]
        ),
    ]
    bundles = "\n".join(f"<script>{_bundle(n)}</script>" for n in _BUNDLES)
    title = f"Datasheet: {b.get('build_id') or 'build'}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
dt {{ font-weight: 600; margin-top: .4em; }} dd {{ margin-left: 1.5em; }}
.chart {{ margin: 1em 0; }} .superseded {{ background: #fee; border: 1px solid #c33; padding: .6em; }}
</style>
{bundles}
</head><body>
<h1>{html.escape(title)}</h1>
{superseded}
<p>Every figure on this page was computed from the build's index and the catalog's lineage. Where the
catalog cannot know a fact, the page says “{UNKNOWN}”, or “{OPERATOR}” where only the operator can.</p>
{"".join(sections)}
<script>
const specs = {_script_json(specs)};
window.chartsRendered = 0;
window.chartErrors = [];
Promise.all(Object.entries(specs).map(([id, spec]) =>
  vegaEmbed('#' + id, spec, {{actions: false, renderer: 'svg'}})
    .then(() => {{ window.chartsRendered += 1; }})
    .catch((e) => {{ window.chartErrors.push(id + ': ' + e); console.error(e); }})
)).then(() => {{ document.body.dataset.charts = 'done'; }});
</script>
</body></html>
"""


def _faces(t: dict[str, Any]) -> str:
    """The clips whose thumbnail shows a frontal face (signals.visual), and how many were not checked."""
    text = f"{t.get('with_faces', 0)} of {t['n_clips']} (a frontal face on the clip's shot thumbnail)"
    if t.get("faces_unchecked"):
        text += f"; {t['faces_unchecked']} not checked for faces"
    return text
