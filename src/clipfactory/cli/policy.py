"""``clipfactory policy check|profiles|datasets`` and ``clipfactory explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import app, policy_app
from .common import (
    CatalogOpt,
    ConfigOpt,
    JsonOpt,
    SetOpt,
    console,
    emit,
    existing_catalog,
    open_catalog,
    settings,
    table,
)

PolicyFileOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy TOML with custom profiles and licence classes.")
]
RegistryOpt = Annotated[
    Path | None, typer.Option("--registry", help="Registry TOML that adds or overrides dataset entries.")
]
PermissionsOpt = Annotated[
    Path | None, typer.Option("--permissions", help="TOML of recorded written acquisition permissions.")
]


def settings_with_policy(
    config, sets, catalog=None, policy=None, registry=None, permissions=None, purpose=None, **flags
):
    """Settings of a command that takes --policy, --registry and --permissions (the settings
    ``policy_file``, ``registry_file`` and ``permissions_file``); ``flags`` are its other options."""
    return settings(
        config,
        sets,
        catalog=catalog,
        policy_file=policy,
        registry_file=registry,
        permissions_file=permissions,
        purpose=purpose,
        **flags,
    )


@policy_app.command("check")
def check_cmd(
    purpose: Annotated[
        str | None,
        typer.Option("--purpose", "-p", help="Purpose profile: commercial, research or a custom one."),
    ] = None,
    eval_: Annotated[
        list[str] | None,
        typer.Option(
            "--eval", help="Evaluation dataset to decontaminate, DATASET or DATASET:SPLIT (repeatable)."
        ),
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    policy: PolicyFileOpt = None,
    registry: RegistryOpt = None,
    permissions: PermissionsOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Decide every source for a purpose, store the decisions, and print counts by decision and reason."""
    from ..policy.gate import evaluate

    s = settings_with_policy(config, sets, catalog, policy, registry, permissions, purpose)
    evaluation = list(s.build.evaluation_manifests) + [
        e for e in eval_ or [] if e not in s.build.evaluation_manifests
    ]
    summary = evaluate(existing_catalog(s), s.purpose, settings=s, evaluation_datasets=evaluation)

    def render(r: dict[str, Any]) -> None:
        d = r["decisions"]
        console.print(
            f"[bold]{r['purpose']}[/]: {r['n_sources']} sources: "
            f"[green]{d['allow']} allow[/], [red]{d['deny']} deny[/], [yellow]{d['review']} review[/]"
            f"  (policy {r['policy_hash']})"
        )
        if r["evaluation_datasets"]:
            console.print("evaluation sets excluded: " + ", ".join(r["evaluation_datasets"]))
        if r["reasons"]:
            table([{"reason": k, "sources": v} for k, v in r["reasons"].items()], "reasons")
        if r["effective_classes"]:
            table(
                [{"class": k, "sources": v} for k, v in r["effective_classes"].items()], "effective use class"
            )

    emit(summary, json_, render)


@policy_app.command("profiles")
def profiles_cmd(
    config: ConfigOpt = None,
    policy: PolicyFileOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List the purpose profiles (built-in and from the policy file)."""
    from ..policy.profiles import list_profiles

    s = settings_with_policy(config, sets, policy=policy)
    rows = list_profiles(s)

    def render(rs: list[dict[str, Any]]) -> None:
        table(
            [
                {
                    "profile": r["name"],
                    "accepts": ", ".join(r["accept"]),
                    "denies datasets": ", ".join(r["deny_datasets"]),
                    "no-redistribution": "deny" if r["deny_no_redistribution"] else "accept",
                    "reviewed": ", ".join(r["reviewed"]),
                }
                for r in rs
            ],
            "purpose profiles",
        )

    emit(rows, json_, render)


@policy_app.command("datasets")
def datasets_cmd(
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
    policy: PolicyFileOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List the dataset registry: licences, content source, lineage and flags."""
    from ..policy.lineage import describe_datasets

    s = settings_with_policy(config, sets, registry=registry, policy=policy)
    rows = describe_datasets(s)

    def render(rs: list[dict[str, Any]]) -> None:
        out = []
        for r in rs:
            flags = [
                f
                for f, on in (
                    (f"withdrawn {r['withdrawn']}", r.get("withdrawn")),
                    ("no redistribution", r.get("no_redistribution")),
                    ("needs review", r.get("needs_review")),
                    ("eval: " + ",".join(r.get("evaluation_splits") or []), r.get("evaluation_splits")),
                    ("(check)", r.get("needs_check")),
                )
                if on
            ]
            out.append(
                {
                    "dataset": r["key"],
                    "licence": r.get("annotation_license") or "",
                    "class": (r.get("license_terms") or {}).get("use_class", ""),
                    "along lineage": r.get("effective_class") or "",
                    "content": r.get("content_source") or "",
                    "lineage": " <- ".join(r["lineage"]),
                    "flags": "; ".join(flags),
                }
            )
        table(out, "dataset registry")

    emit(rows, json_, render)


@app.command("explain")
def explain_cmd(
    source: Annotated[str, typer.Argument(help="A source id (youtube:<id>, sha256:<hex>, ...) or any URL.")],
    purpose: Annotated[
        str | None,
        typer.Option("--purpose", "-p", help="Explain for this purpose only (default: every profile)."),
    ] = None,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
    policy: PolicyFileOpt = None,
    registry: RegistryOpt = None,
    permissions: PermissionsOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Explain a source: its lineage, every licence on it, its memberships, and each purpose's decision."""
    from ..explain import explain_source

    s = settings_with_policy(config, sets, catalog, policy, registry, permissions)
    data = explain_source(open_catalog(s), source, purpose=purpose, settings=s)
    emit(data, json_, _render_explain)


def _render_explain(r: dict[str, Any]) -> None:
    src = r["source"]
    console.print(f"[bold]{r['source_id']}[/]  platform={src.get('platform')}  url={src.get('url') or '-'}")
    _render_owned(src)
    if r["memberships"]:
        table(r["memberships"], "memberships", ["dataset", "split", "label", "n_spans", "manifest_id"])
    else:
        console.print("memberships: none")
    lic = r["licenses"]
    table(
        [
            {
                "kind": t["kind"],
                "of": t["subject"],
                "licence": t.get("license") or "(none)",
                "class": t["use_class"],
                "attribution": t["attribution"],
                "share-alike": t["share_alike"],
                "note": t.get("origin") or ("unknown" if t["unknown"] else ""),
            }
            for t in lic["content"]
        ],
        "content terms (the pixels)",
    )
    rows = []
    for a in lic["annotations"]:
        for t in a["terms"] or [
            {"subject": a["dataset"], "use_class": "-", "attribution": "", "share_alike": ""}
        ]:
            rows.append(
                {
                    "membership": a["dataset"],
                    "dataset": t["subject"],
                    "via": " <- ".join(t.get("via", [])) or "",
                    "licence": t.get("license") or "(none)",
                    "class": t["use_class"],
                    "attribution": t["attribution"],
                    "share-alike": t["share_alike"],
                }
            )
    if rows:
        table(rows, "annotation terms (the datasets, along their lineage)")
    acq = r.get("acquisition") or {}
    for c in acq.get("checks", []):
        perm = c.get("permission")
        extra = (
            f"permission granted by {perm['granted_by']} on {perm['granted_at']}"
            if perm
            else c.get("reason") or ""
        )
        console.print(
            f"acquisition via {c.get('platform')}: {c.get('download')} -> {c.get('status')} {extra}"
        )
    for purpose, d in r["decisions"].items():
        colour = {"allow": "green", "deny": "red", "review": "yellow"}[d["decision"]]
        console.print(
            f"[bold]{purpose}[/]: [{colour}]{d['decision']}[/] (class {d['effective_class']}, "
            f"use {'ok' if d['use_ok'] else 'no'}, acquire {'ok' if d['acquire_ok'] else 'no'})"
        )
        for reason, why in zip(d["reasons"], d["why"], strict=True):
            console.print(f"  - {reason}: {why}", highlight=False)
    for purpose, d in r["stored_decisions"].items():
        stale = "" if d["current_policy"] is not False else " [yellow](made under another policy)[/]"
        console.print(f"stored {purpose}: {d['decision']} at {d['decided_at']}{stale}")
    for name, section in r["sections"].items():
        render = _SECTION_RENDERERS.get(name, _render_generic)
        if not isinstance(section, dict) or "error" in section:
            render = _render_generic
        render(name, section)


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _render_owned(src: dict[str, Any]) -> None:
    """Where an owned file came from: the file it was added from, its hash and what it states."""
    if src.get("platform") != "owned":
        return
    bits = [f"owned media added from {src.get('origin_uri') or '(unknown file)'}"]
    if src.get("acquired_at"):
        bits.append(f"at {src['acquired_at']}")
    _say(" ".join(bits))
    facts = [
        f"content sha256 {src['content_sha256']}" if src.get("content_sha256") else None,
        f"licence {src['content_license']}" if src.get("content_license") else "no licence stated",
        f"rights holder {src['rights_holder']}" if src.get("rights_holder") else None,
        f"title {src['title']!r}" if src.get("title") else None,
    ]
    _say("  " + ", ".join(f for f in facts if f))


def _render_builds(name: str, sec: dict[str, Any]) -> None:
    rows = [
        {
            "build": b["build_id"],
            "purpose": b["purpose"],
            "status": b["status"],
            "clips": len(b["clips"]),
            "shards": ", ".join(sorted({c["shard"] for c in b["clips"] if c.get("shard")})),
            "out_dir": b["out_dir"],
        }
        for b in sec.get("builds", [])
    ]
    held = sum(r["clips"] for r in rows)
    title = f"builds holding this source ({held} clips in builds; {sec.get('n_clips', 0)} clips cut from it)"
    table(rows, title, empty="builds: none")


def _render_evidence(name: str, sec: dict[str, Any]) -> None:
    link = sec.get("link_status")
    if link:
        why = f", {link['reason']}" if link.get("reason") else ""
        _say(f"link status: {link.get('status')}{why} (checked {link.get('checked_at')})")
    cols = ["started_at", "url", "status_code", "outcome", "reason", "content_sha256"]
    table(sec.get("attempts") or [], "fetch attempts", cols)
    table(
        sec.get("consent_checks") or [],
        "consent checks (opt-out signals, with their evidence in --json)",
        ["checked_at", "phase", "signal", "value", "verdict", "reason"],
    )
    if sec.get("host_documents"):
        table(sec["host_documents"], "host documents kept", ["host", "kind", "url", "fetched_at", "status_code", "state"])
    if sec.get("takedown_queue"):
        table(sec["takedown_queue"], "takedown queue", ["queued_at", "reason", "status"])
    if sec.get("pending_load"):
        _say("(some of this evidence is from outcome rows not loaded into the tables yet)")


def _render_takedown(name: str, sec: dict[str, Any]) -> None:
    _say("tombstoned: yes" if sec.get("tombstoned") else "tombstoned: no")
    if sec.get("tombstones"):
        table(sec["tombstones"], "tombstones", ["tombstone_id", "reason", "takedown_id", "created_at", "n_pdq"])
    if sec.get("takedowns"):
        table(sec["takedowns"], "takedowns", ["takedown_id", "status", "step", "reason", "finished_at", "receipt_path"])
    if sec.get("queue"):
        table(sec["queue"], "takedown queue", ["queued_at", "reason", "status"])


def _render_dedup(name: str, sec: dict[str, Any]) -> None:
    rows = [
        {"clip_id": e["clip_id"], "stage": e.get("stage") or "dedup.near", "reason": e["reason"],
         "why": e.get("why") or "", "run": e.get("run_id")}
        for e in sec.get("dropped_clips", [])
    ]
    table(rows, f"clips dropped as copies ({sec.get('restricted_copies', 0)} restricted copies)")


def _render_generic(name: str, sec: Any) -> None:
    if isinstance(sec, dict):
        _say(f"{name}:")
        for k, v in sec.items():
            shown = json.dumps(v, default=str) if isinstance(v, dict | list) else v
            _say(f"  {k}: {shown}")
    else:
        _say(f"{name}: {sec}")


def _render_categories(name: str, sec: dict[str, Any]) -> None:
    _say(f"content category: {sec['category']} (confidence {sec['confidence']}) {sec['why']}")
    if sec.get("scores"):
        table([{"category": c, "score": v} for c, v in sec["scores"].items()], "category scores")


_SECTION_RENDERERS = {
    "semantic.categories": _render_categories,
    "factory.export": _render_builds,
    "acquire.evidence": _render_evidence,
    "fingerprints.takedown": _render_takedown,
    "fingerprints.dedup": _render_dedup,
}
