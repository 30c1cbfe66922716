"""The regulatory summaries: the EU AI Act public summary of training content and California AB 2013.

Both are made from the facts of :func:`clipfactory.disclosures.facts.build_facts` only. The EU summary
follows the sections of the AI Office's template (2025): general information, list of data sources,
data processing. AB 2013 asks for twelve items; each is computed where the catalog knows it and says
"operator must state" where only the operator can.
"""

from __future__ import annotations

import json
from typing import Any

from .facts import OPERATOR, UNKNOWN
from .text import fmt_hours, fmt_share, label, md_table, size_band, statement

#: A public dataset is named in the EU summary when its share of the video modality is above this.
EU_DATASET_SHARE = 0.03
#: What the fetcher does, whatever the settings (docs/acquire.md).
CRAWLER_BEHAVIOUR = [
    "obeys robots.txt for its agent token, and its Crawl-delay",
    "checks TDM reservations (tdmrep.json, tdm-reservation headers), X-Robots-Tag noai/noimageai, "
    "content-usage declarations, C2PA training-mining assertions and, where configured, the Spawning registry",
    "never solves captchas",
    "never circumvents paywalls, logins or DRM",
    "no IP or proxy rotation; backs off on 429 and 5xx",
]


def _superseded(f: dict[str, Any]) -> dict[str, Any] | None:
    b = f["build"]
    if b.get("status") != "superseded":
        return None
    return {
        "superseded_by": b.get("superseded_by"),
        "note": "this version was replaced after a takedown; use the newer version's summary",
    }


def _superseded_banner(doc: dict[str, Any]) -> list[str]:
    """The Markdown lines that open a superseded version's summary (none for a current one)."""
    if not doc["superseded"]:
        return []
    return [f"> **Superseded** by {label(doc['superseded']['superseded_by'])}: {doc['superseded']['note']}.", ""]


def eu_summary(f: dict[str, Any]) -> dict[str, Any]:
    """The EU AI Act public summary of training content, as a JSON-ready dict."""
    b, t, st = f["build"], f["totals"], f["statements"]
    public = [d for d in f["datasets"] if d["kind"] == "public dataset"]
    unclassified = [d for d in f["datasets"] if d["kind"] == UNKNOWN]
    own = [d for d in f["datasets"] if d["kind"] == "own media"]
    captioned = t.get("captioned")
    crawl = f["crawl"]
    agent = crawl.get("agent") or {}
    return {
        "document": "EU AI Act: public summary of training content (AI Office template)",
        "build_id": b.get("build_id"),
        "superseded": _superseded(f),
        "1_general_information": {
            "provider": statement(st, "provider"),
            "model": statement(st, "model"),
            "modalities": [
                {
                    "modality": "video",
                    "clips": t["n_clips"],
                    "hours": round(t["hours"], 6),
                    "size_band": size_band(t["hours"]),
                },
                {
                    "modality": "text",
                    "note": "captions from the source manifests",
                    "clips_with_caption": captioned,
                },
            ],
            "latest_acquisition_date": f["period"]["last"] or UNKNOWN,
            "languages": [label(r["language"]) for r in f["languages"]] or [UNKNOWN],
        },
        "2_list_of_data_sources": {
            "2_1_public_datasets": {
                "used": bool(public),
                "named_above_3_percent": [
                    {
                        "dataset": d["name"],
                        "key": d["dataset"],
                        "homepage": d["homepage"],
                        "share": round(d["share"], 6),
                        "hours": round(d["hours"], 6),
                    }
                    for d in public
                    if d["share"] > EU_DATASET_SHARE
                ],
                "all": [{"dataset": d["name"], "share": round(d["share"], 6)} for d in public],
            },
            "2_2_private_datasets": {
                "licensed_acquisitions": f["licensed_acquisition"],
                "own_media": [
                    {"dataset": d["dataset"], "sources": d["sources"], "share": round(d["share"], 6)}
                    for d in own
                ],
                "not_classified": [
                    {"dataset": d["dataset"], "share": round(d["share"], 6), "public": OPERATOR}
                    for d in unclassified
                ],
            },
            "2_3_crawled_data": {
                "used": crawl["sources"] > 0,
                "sources": crawl["sources"],
                "crawler": agent.get("agent_token") or UNKNOWN,
                "user_agent": agent.get("user_agent") or UNKNOWN,
                "purpose": statement(st, "crawler_purpose"),
                "behaviour": CRAWLER_BEHAVIOUR,
                "collection_period": {"first": crawl["first"] or UNKNOWN, "last": crawl["last"] or UNKNOWN},
                "top_10_percent_domains_by_size": [
                    {"domain": d["domain"], "bytes": int(d["bytes"] or 0), "share": round(d["share"], 6)}
                    for d in crawl["top_domains"]
                ],
                "n_domains": sum(1 for d in crawl["domains"] if d["domain"]),
            },
            "2_4_user_data": statement(st, "user_data"),
            "2_5_synthetic_data": statement(st, "synthetic_data"),
            "2_6_other_sources": [
                {"platform": p["platform"], "sources": p["sources"], "share": round(p["share"], 6)}
                for p in f["platforms"]
            ],
        },
        "3_data_processing": {
            "3_1_tdm_opt_out": {
                "signals": [
                    {
                        "signal": x["signal"],
                        "sources_checked": x["sources_checked"],
                        "sources_excluded": x["sources_excluded"],
                    }
                    for x in f["tdm"]
                ],
                "sources_in_build_with_an_opt_out": f["opted_out_in_build"],
                "policy_refused_sources": len(f["refused_sources"]),
            },
            "3_2_illegal_content": {
                "measures": statement(st, "illegal_content"),
                "takedowns_done": f["takedowns"].get("done") or 0,
                "tombstones": f["takedowns"].get("tombstones") or 0,
                "takedown_requests_pending": f["takedowns"].get("queue_pending", 0),
            },
        },
    }


def eu_markdown(doc: dict[str, Any]) -> str:
    g, s, p = doc["1_general_information"], doc["2_list_of_data_sources"], doc["3_data_processing"]
    video = g["modalities"][0]
    lines = [f"# Public summary of training content: {doc['build_id']}", ""]
    lines += _superseded_banner(doc)
    lines += [
        "Following the EU AI Office's template for the summary of training content (2025). Figures are",
        f"computed from the build's lineage; “{OPERATOR}” marks what only the provider can say.",
        "",
        "## 1. General information",
        "",
        f"- Provider: {g['provider']}",
        f"- Model: {g['model']}",
        f"- Video: {video['clips']} clips, {fmt_hours(video['hours'])} hours; size band: {video['size_band']}",
        f"- Text (captions from the source manifests): {label(g['modalities'][1]['clips_with_caption'])} clips with a caption",
        f"- Latest acquisition date: {g['latest_acquisition_date']}",
        f"- Languages: {', '.join(g['languages'])}",
        "",
        "## 2. List of data sources",
        "",
        "### 2.1 Publicly available datasets",
        "",
        f"Used: {'yes' if s['2_1_public_datasets']['used'] else 'no'}. Datasets above 3% of the video modality:",
        "",
        md_table(
            s["2_1_public_datasets"]["named_above_3_percent"],
            [("dataset", "dataset"), ("homepage", "homepage"), ("hours", "hours"), ("share", "share")],
        ),
        "### 2.2 Private datasets",
        "",
        f"- Sources acquired under a recorded written permission: {s['2_2_private_datasets']['licensed_acquisitions']}",
        *[
            f"- Own media, dataset `{d['dataset']}`: {d['sources']} sources, {fmt_share(d['share'])}"
            for d in s["2_2_private_datasets"]["own_media"]
        ],
        *[
            f"- Dataset `{d['dataset']}` ({fmt_share(d['share'])}): whether it is public: {OPERATOR}"
            for d in s["2_2_private_datasets"]["not_classified"]
        ],
        "",
        "### 2.3 Data crawled and scraped from online sources",
        "",
    ]
    c = s["2_3_crawled_data"]
    lines += [
        f"- Crawled sources in this build: {c['sources']}",
        f"- Crawler: {c['crawler']} (User-Agent `{c['user_agent']}`)",
        f"- Purpose: {c['purpose']}",
        f"- Collection period: {c['collection_period']['first']} to {c['collection_period']['last']}",
        "- Behaviour:",
        *[f"  - {x}" for x in c["behaviour"]],
        f"- Top 10% of {c['n_domains']} domains by content size:",
        "",
        md_table(
            c["top_10_percent_domains_by_size"],
            [("domain", "domain"), ("bytes", "bytes"), ("share", "share")],
        ),
        "### 2.4 User data",
        "",
        s["2_4_user_data"],
        "",
        "### 2.5 Synthetic data",
        "",
        s["2_5_synthetic_data"],
        "",
        "### 2.6 Other sources",
        "",
        md_table(
            s["2_6_other_sources"], [("platform", "platform"), ("sources", "sources"), ("share", "share")]
        ),
        "## 3. Data processing aspects",
        "",
        "### 3.1 Respect of reservations of rights (TDM opt-outs)",
        "",
        "Every web source is checked before any request and again on the response; a source whose",
        "owner reserved the right is not fetched. Signals checked, over the whole catalog:",
        "",
        md_table(
            p["3_1_tdm_opt_out"]["signals"],
            [
                ("signal", "signal"),
                ("sources_checked", "sources checked"),
                ("sources_excluded", "sources excluded"),
            ],
        ),
        f"Sources in this build with an opt-out on record: {p['3_1_tdm_opt_out']['sources_in_build_with_an_opt_out']}. "
        f"Sources the licence policy refused for this build: {p['3_1_tdm_opt_out']['policy_refused_sources']}.",
        "",
        "### 3.2 Removal of illegal content",
        "",
        f"- Measures: {p['3_2_illegal_content']['measures']}",
        f"- Takedowns done: {p['3_2_illegal_content']['takedowns_done']}; tombstones that refuse the content if it "
        f"comes back: {p['3_2_illegal_content']['tombstones']}; takedown requests pending: "
        f"{p['3_2_illegal_content']['takedown_requests_pending']}",
        "",
    ]
    return "\n".join(lines)


def ab2013(f: dict[str, Any]) -> dict[str, Any]:
    """California AB 2013's twelve items, each with its answer (computed, or "operator must state")."""
    b, t, st = f["build"], f["totals"], f["statements"]
    ds = ", ".join(f"{d['name']} ({fmt_share(d['share'])})" for d in f["datasets"]) or "none"
    owners = f["n_uploaders"]
    cr = {r["status"]: r for r in f["copyright"]}
    pd = cr.get("public domain", {}).get("sources", 0)
    lic = cr.get("copyrighted, licensed", {}).get("sources", 0)
    nolic = cr.get("no licence recorded", {}).get("sources", 0)
    if t["n_sources"] == 0:
        copyright_answer = "the build holds no works"
    elif pd == t["n_sources"]:
        copyright_answer = f"entirely public domain: {pd} works"
    else:
        copyright_answer = (
            f"yes: {lic} of {t['n_sources']} works are copyrighted and used under a licence; {pd} are in the public "
            f"domain; {nolic} have no licence recorded. Trademarks and patents: {OPERATOR}"
        )
    dropped = ", ".join(f"{r['reason']} ({r['items']})" for r in f["dropped"]) or "nothing dropped"
    items = [
        (
            "1. Sources or owners of the datasets",
            f"datasets: {ds}; {t['n_sources']} source works from {owners} distinct uploaders; see copyrighted_works.csv",
        ),
        ("2. How the datasets further the intended purpose of the system", statement(st, "model_purpose")),
        (
            "3. Number of data points",
            f"{t['n_clips']} video clips ({fmt_hours(t['hours'])} hours) from {t['n_sources']} source videos",
        ),
        (
            "4. Types of data points",
            "video clips (MP4) with a JSON provenance record and a JPEG thumbnail each; captions where the manifests gave them",
        ),
        ("5. Copyrighted, trademarked or patented data, or entirely public domain", copyright_answer),
        (
            "6. Purchased or licensed",
            f"{t['n_sources']} works used under the licences listed in copyrighted_works.csv; {f['licensed_acquisition']} acquired under a recorded written permission; purchases: {OPERATOR}",
        ),
        ("7. Personal information", statement(st, "personal_information")),
        ("8. Aggregate consumer information", statement(st, "aggregate_consumer_information")),
        (
            "9. Cleaning, processing or other modification",
            f"cut at shot boundaries, re-encoded where a stream copy was not possible, quality-filtered, near-duplicate-checked and licence-checked for the purpose {label(b.get('purpose'))}; dropped: {dropped}",
        ),
        (
            "10. Time period of collection",
            f"{f['period']['first'] or UNKNOWN} to {f['period']['last'] or UNKNOWN}; ongoing: {statement(st, 'collection_ongoing')}",
        ),
        (
            "11. Dates the datasets were first used",
            f"first build of {label(b.get('name'))}: {label(f['first_used'])}",
        ),
        ("12. Synthetic data", statement(st, "synthetic_data")),
    ]
    return {
        "document": "California AB 2013 training data documentation",
        "build_id": b.get("build_id"),
        "superseded": _superseded(f),
        "items": [{"item": k, "answer": v} for k, v in items],
    }


def ab2013_markdown(doc: dict[str, Any]) -> str:
    lines = [f"# AB 2013 training data documentation: {doc['build_id']}", ""]
    lines += _superseded_banner(doc)
    lines += [
        "California Civil Code § 3111 (AB 2013). Each item is computed from the build's lineage, or marked",
        f"“{OPERATOR}” where the catalog cannot know it.",
        "",
    ]
    for it in doc["items"]:
        lines += [f"## {it['item']}", "", it["answer"], ""]
    return "\n".join(lines)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
