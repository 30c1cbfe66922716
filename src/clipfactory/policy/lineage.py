"""Lineage: every set of terms a source's pixels and annotations carry.

A source carries two kinds of terms, kept apart in every output:

* **content terms** (the pixels): the licence the source states (``sources.content_license``), or, when
  it states none, the default licence of its platform (the Standard YouTube Licence for YouTube); plus a
  licence that the platform's terms put on every use of its content, where the registry names one.
* **annotation terms** (the released artefacts): for each dataset the source is a member of, the
  dataset's licence and the licence of every dataset along its ``derived_from`` chain. OpenVid-1M is
  labelled CC BY 4.0 but is drawn from Panda-70M, itself drawn from HD-VILA-100M; all three licences
  apply, so the most restrictive wins and relabelling launders nothing.

Dataset flags travel down the chain too: a dataset drawn from a withdrawn one is as withdrawn, and a
chain member that needs legal review puts the whole chain under review.

Acquisition is a separate question (the gate asks it): a CC BY upload on YouTube is licensed for use,
yet YouTube's terms still forbid downloading it without YouTube's written permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..sources.registry import Registry
from .taxonomy import LicenseTable, LicenseTerms


@dataclass(frozen=True)
class Term:
    """One set of terms on a source: its kind, what it belongs to, and the licence triple."""

    kind: str  # platform | content | dataset
    subject: str  # the platform, the source's content, or the dataset
    terms: LicenseTerms
    via: tuple[str, ...] = ()  # for datasets: the chain from the membership to this dataset
    origin: str | None = None  # content: stated | platform-default | none

    @property
    def use_class(self) -> str:
        return self.terms.use_class

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "subject": self.subject}
        d.update(self.terms.to_dict())
        d.setdefault("attribution", False)
        d.setdefault("share_alike", False)
        d.setdefault("unknown", False)
        if self.via:
            d["via"] = list(self.via)
        if self.origin:
            d["origin"] = self.origin
        return d


def content_terms(
    registry: Registry, licenses: LicenseTable, platform: str | None, content_license: str | None
) -> list[Term]:
    """Terms on the pixels of a source on ``platform`` that states ``content_license`` (maybe none)."""
    p = registry.platform(platform)
    subject = p.key if p else (platform or "unknown")
    out: list[Term] = []
    if p is not None and p.terms_license:
        out.append(Term("platform", p.key, licenses.classify(p.terms_license)))
    stated = (content_license or "").strip() or None
    if stated:
        out.append(Term("content", subject, licenses.classify(stated), origin="stated"))
    elif p is not None and p.default_content_license:
        out.append(
            Term("content", subject, licenses.classify(p.default_content_license), origin="platform-default")
        )
    else:
        out.append(Term("content", subject, licenses.classify(None), origin="none"))
    return out


def dataset_terms(registry: Registry, licenses: LicenseTable, dataset: str) -> list[Term]:
    """Annotation terms of ``dataset`` and of every dataset it derives from."""
    if registry.dataset(dataset) is None:
        return []
    out: list[Term] = []
    path: dict[str, tuple[str, ...]] = {dataset: (dataset,)}
    for key in registry.chain(dataset):
        entry = registry.datasets[key]
        for parent in entry.derived_from:
            path.setdefault(parent, (*path[key], parent))
        if entry.annotation_license is None:
            continue
        out.append(Term("dataset", key, licenses.classify(entry.annotation_license), via=path[key]))
    return out


def dataset_lineage(registry: Registry, licenses: LicenseTable, dataset: str) -> dict[str, Any]:
    """The evidence for one membership: the chain, each licence on it, and the flags along it."""
    entry = registry.dataset(dataset)
    if entry is None:
        return {"dataset": dataset, "registered": False, "chain": [dataset], "terms": []}
    chain = registry.chain(dataset)
    flags: dict[str, list[str]] = {}
    for key in chain:
        e = registry.datasets[key]
        if e.withdrawn:
            flags.setdefault("withdrawn", []).append(key)
        if e.no_redistribution:
            flags.setdefault("no_redistribution", []).append(key)
        if e.needs_review:
            flags.setdefault("needs_review", []).append(key)
        if e.delete_on_request:
            flags.setdefault("delete_on_request", []).append(key)
    out: dict[str, Any] = {
        "dataset": dataset,
        "registered": True,
        "chain": chain,
        "terms": [t.to_dict() for t in dataset_terms(registry, licenses, dataset)],
    }
    if flags:
        out["flags"] = flags
    return out


def describe_datasets(settings: Any = None) -> list[dict[str, Any]]:
    """Registry entries with their licence classified: the dataset's own licence triple, and the
    effective class along its lineage (what ``clipfactory policy datasets`` prints)."""
    from ..sources.registry import list_datasets
    from .profiles import load_policy
    from .taxonomy import USE_CLASSES

    policy = load_policy(settings)
    out = []
    for row in list_datasets(settings):
        terms = dataset_terms(policy.registry, policy.licenses, row["key"])
        own = [t for t in terms if t.subject == row["key"]]
        row["license_terms"] = own[0].terms.to_dict() if own else None
        row["effective_class"] = USE_CLASSES[max((t.terms.rank for t in terms), default=0)] if terms else None
        row["lineage_terms"] = [t.to_dict() for t in terms]
        out.append(row)
    return out


__all__ = ["Term", "content_terms", "dataset_terms", "dataset_lineage", "describe_datasets"]
