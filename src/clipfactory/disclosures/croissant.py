"""``croissant.json``: the build as Croissant 1.1 metadata with the Responsible AI (RAI 1.0) extension.

The shards are one ``FileSet`` and ``index.parquet`` one ``FileObject``; one ``RecordSet`` (``clips``)
reads its fields from the index. ``prov:wasDerivedFrom`` names every source dataset, ``sc:usageInfo``
carries the licence policy's decisions as an ODRL policy, and the ``rai:*`` fields are filled from the
catalog. ``mlcroissant validate`` accepts it (the tests run it).
"""

from __future__ import annotations

from typing import Any

from .facts import UNKNOWN
from .text import fmt_hhi, fmt_hours, fmt_share, label, statement

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "prov": "http://www.w3.org/ns/prov#",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

#: Fields of the ``clips`` record set: index column, Croissant data type, description.
FIELDS = [
    ("clip_id", "sc:Text", "Deterministic clip id: sha256 prefix of (source_id, start_ms, end_ms)"),
    ("source_id", "sc:Text", "Id of the source work the clip was cut from"),
    ("shard", "sc:Text", "The tar shard holding the clip's files"),
    ("key", "sc:Text", "WebDataset key of the clip's members (<key>.mp4, <key>.json, <key>.jpg)"),
    ("start_ms", "sc:Integer", "Start of the clip in the source, in milliseconds"),
    ("end_ms", "sc:Integer", "End of the clip in the source, in milliseconds"),
    ("duration_ms", "sc:Integer", "Duration of the clip, in milliseconds"),
    ("content_license", "sc:Text", "SPDX licence of the source work's pixels"),
    ("rights_holder", "sc:Text", "Who holds the rights in the source work"),
    ("attribution", "sc:Text", "TASL attribution of the clip"),
    ("motion", "sc:Float", "Mean motion score"),
    ("sharpness", "sc:Float", "Mean sharpness score"),
    ("luma", "sc:Float", "Mean luma"),
    ("caption", "sc:Text", "Caption from the source manifest, where one was given"),
    ("mp4_sha256", "sc:Text", "sha256 of the clip's MP4"),
]


def _policy(f: dict[str, Any]) -> dict[str, Any]:
    """The licence decisions as one ODRL policy: permitted use for the purpose, with the duties the
    licences of the lineage carry (attribution, share-alike)."""
    classes = f["license_classes"]
    duties = []
    if any(int(c.get("attribution_required") or 0) for c in classes):
        duties.append({"@type": "odrl:Duty", "odrl:action": {"@id": "odrl:attribute"}})
    if any(int(c.get("share_alike") or 0) for c in classes):
        duties.append({"@type": "odrl:Duty", "odrl:action": {"@id": "odrl:shareAlike"}})
    purpose = label(f["build"].get("purpose"))
    return {
        "@type": "odrl:Set",
        "name": f"Licence policy of the build for the purpose {purpose}",
        "description": "; ".join(
            f"{label(c['class'])}: {c['sources']} sources, {fmt_share(c['share'])} of the hours"
            for c in classes
        )
        or "no sources",
        "odrl:permission": {
            "@type": "odrl:Permission",
            "odrl:action": {"@id": "odrl:use"},
            "odrl:constraint": {
                "@type": "odrl:Constraint",
                "odrl:leftOperand": {"@id": "odrl:purpose"},
                "odrl:operator": {"@id": "odrl:eq"},
                "odrl:rightOperand": purpose,
            },
            **({"odrl:duty": duties} if duties else {}),
        },
    }


def croissant(f: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """The Croissant document of a build's facts; ``files`` are ``build.json``'s shard and file entries
    (``name``, ``sha256``) so that the index carries its checksum."""
    b, t, st = f["build"], f["totals"], f["statements"]
    index_name = b.get("index") or "index.parquet"
    index_sha = next((x.get("sha256") for x in files if x.get("name") == index_name), None)
    licences = sorted(
        {
            r["url"] or (f"https://spdx.org/licenses/{r['license']}.html" if r["license"] else None)
            for r in f["licences"]
        }
        - {None}
    )
    derived = []
    for d in f["datasets"]:
        node: dict[str, Any] = {"@type": "sc:Dataset", "name": label(d["name"])}
        if d.get("homepage"):
            node["url"] = d["homepage"]
        node["description"] = (
            f"{label(d['kind'])}; {d['sources']} sources, {fmt_share(d['share'])} of the hours"
        )
        derived.append(node)
    superseded = ""
    if b.get("status") == "superseded":
        superseded = (
            f" Superseded by {label(b.get('superseded_by'))} after a takedown: use the newer version."
        )
    dropped = (
        "; ".join(f"{r['stage']} {r['reason']}: {r['items']}" for r in f["dropped"]) or "nothing dropped"
    )
    tdm = (
        "; ".join(f"{x['signal']}: {x['sources_excluded']} sources excluded" for x in f["tdm"])
        or "no web sources checked"
    )
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"],
        "name": label(b.get("build_id"), "build"),
        "description": (
            f"Video clip dataset {label(b.get('build_id'))}: {t['n_clips']} clips, {fmt_hours(t['hours'])} hours, from "
            f"{t['n_sources']} source works, built for the purpose {label(b.get('purpose'))}.{superseded}"
        ),
        "license": licences or [UNKNOWN],
        "url": st.get("dataset_url") or f"urn:clipfactory:build:{label(b.get('build_id'), 'build')}",
        "creator": {"@type": "sc:Organization", "name": statement(st, "provider")},
        "datePublished": label(b.get("created_at")),
        "version": f"{int(b.get('version') or 0)}.0.0",
        "citeAs": f"{label(b.get('build_id'))}, built with clipfactory (content hash {label(b.get('content_hash') or b.get('content_hash_as_built'))})",
        "usageInfo": _policy(f),
        "prov:wasDerivedFrom": derived,
        "prov:wasGeneratedBy": {
            "@type": "prov:Activity",
            "name": f"clipfactory run {label(b.get('run_id'))}",
            "description": "ingest, policy gate, acquire, analyse (one decode), quality filter, near-duplicate check, cut, export",
        },
        "prov:wasAttributedTo": {"@type": "prov:Agent", "name": statement(st, "provider")},
        "rai:dataCollection": (
            "Source videos listed by dataset manifests or added as owned media; web sources fetched with every "
            f"consent check ({tdm}). Platforms: "
            + (", ".join(f"{label(p['platform'])} ({p['sources']})" for p in f["platforms"]) or "none")
        ),
        "rai:dataCollectionType": sorted(
            {
                "Web Scraping" if f["crawl"]["sources"] else None,
                "Manual Human Curation" if any(p["platform"] == "owned" for p in f["platforms"]) else None,
                "Secondary Data Analysis"
                if any(d["kind"] == "public dataset" for d in f["datasets"])
                else None,
            }
            - {None}
        )
        or [UNKNOWN],
        "rai:dataCollectionTimeframe": [f["period"]["first"] or UNKNOWN, f["period"]["last"] or UNKNOWN],
        "rai:dataPreprocessingProtocol": [
            "decoded once for shot boundaries, motion, sharpness, luma and frame fingerprints",
            "cut into clips at shot boundaries (stream copy on keyframes, else re-encoded)",
            f"dropped in the run that made the build: {dropped}",
        ],
        "rai:dataReleaseMaintenancePlan": (
            f"Builds are versioned and immutable; a takedown writes a new version that supersedes the old one. "
            f"This is version {int(b.get('version') or 0)} (supersedes {label(b.get('supersedes'), 'nothing')}). "
            f"Takedowns done: {f['takedowns'].get('done') or 0}. Contact: {statement(st, 'contact')}."
        ),
        "rai:personalSensitiveInformation": statement(st, "personal_information"),
        "rai:dataBiases": (
            f"Concentration (HHI, 0-1) by uploader: {fmt_hhi(f['uploader_hhi'])}, by source domain: {fmt_hhi(f['domain_hhi'])}. "
            f"Largest dataset share: {fmt_share(max((d['share'] for d in f['datasets']), default=None))}. "
            f"Languages: {', '.join(label(r['language']) for r in f['languages']) or UNKNOWN}."
        ),
        "rai:dataLimitations": (
            f"Languages and categories are {UNKNOWN} where no manifest or model gave them; "
            f"{f['period']['undated_sources']} sources have no acquisition date. "
            f"Personal information: {statement(st, 'personal_information')}."
        ),
        "rai:dataUseCases": f"Training under the purpose profile {label(b.get('purpose'))}: {(f.get('profile') or {}).get('description') or UNKNOWN}",
        "rai:machineAnnotationTools": [
            "clipfactory media.analyse (shot detection, quality scores)",
            "PDQ perceptual hashes (near-duplicate and takedown matching)",
        ],
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": index_name,
                "name": index_name,
                "description": "One row per clip: shard, key, span, licence, attribution, scores, member hashes",
                "contentUrl": index_name,
                "encodingFormat": "application/x-parquet",
                "sha256": index_sha or UNKNOWN,
            },
            {
                "@type": "cr:FileSet",
                "@id": "shards",
                "name": "shards",
                "description": f"{t['n_shards']} WebDataset tar shards: <key>.mp4, <key>.json, <key>.jpg per clip",
                "encodingFormat": "application/x-tar",
                "includes": "shard-*.tar",
            },
        ],
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "clips",
                "name": "clips",
                "description": "One record per clip of the build, read from index.parquet",
                "key": {"@id": "clips/clip_id"},
                "field": [
                    {
                        "@type": "cr:Field",
                        "@id": f"clips/{col}",
                        "name": col,
                        "description": desc,
                        "dataType": dtype,
                        "source": {"fileObject": {"@id": index_name}, "extract": {"column": col}},
                    }
                    for col, dtype, desc in FIELDS
                ],
            }
        ],
    }
    return doc
