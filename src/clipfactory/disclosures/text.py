"""Wording shared by every document: unknown values, operator statements, hours and shares."""

from __future__ import annotations

from typing import Any

from .facts import OPERATOR, UNKNOWN

#: What the operator may state in a statements file (``clipfactory report BUILD --statements FILE``): facts
#: about the model and the organisation that no catalog row holds. Each one missing is written
#: "operator must state". A build records the statements its reports were made with.
STATEMENTS = {
    "provider": "the provider of the model (name and contact)",
    "model": "the model(s) trained on the build (name, version)",
    "model_purpose": "what the model is for, and how the data serves that purpose",
    "funding": "who funded the dataset",
    "personal_information": "whether the data holds personal information, and which",
    "aggregate_consumer_information": "whether the data holds aggregate consumer information",
    "synthetic_data": "whether synthetic data was used, and the models that generated it",
    "user_data": "whether data from users of the provider's services was used",
    "collection_ongoing": "whether collection goes on",
    "crawler_purpose": "the purpose of the crawler",
    "illegal_content": "the measures taken to remove illegal content before training",
    "uses_to_avoid": "uses the dataset should not be put to",
    "distribution": "to whom the dataset is distributed",
    "contact": "who maintains the dataset and how to reach them",
    "dataset_url": "the public URL of the dataset",
}


def label(v: Any, empty: str = UNKNOWN) -> str:
    """A value as text; a missing one as ``empty``."""
    if v is None or v == "":
        return empty
    return str(v)


def statement(st: dict[str, Any], key: str) -> str:
    v = st.get(key)
    return str(v) if v not in (None, "") else OPERATOR


def fmt_hours(h: Any) -> str:
    if h is None:
        return UNKNOWN
    return f"{float(h):.3f}"


def fmt_share(s: Any) -> str:
    if s is None:
        return UNKNOWN
    return f"{100 * float(s):.1f}%"


def fmt_hhi(v: Any) -> str:
    """A concentration (HHI, 0 to 1) to four decimals."""
    return UNKNOWN if v is None else f"{float(v):.4f}"


def size_band(hours: float) -> str:
    """The EU template's size band of the video modality."""
    if hours < 10_000:
        return "less than 10,000 hours"
    if hours <= 1_000_000:
        return "10,000 to 1,000,000 hours"
    return "more than 1,000,000 hours"


def cell(row: dict[str, Any], key: str) -> str:
    """The text of a table cell: ``share`` and ``hours`` columns formatted, a missing value labelled."""
    v = row.get(key)
    if key == "share":
        v = fmt_share(v)
    elif key == "hours":
        v = fmt_hours(v)
    return label(v)


def md_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "none\n"
    out = ["| " + " | ".join(t for _, t in cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        cells = [cell(r, k).replace("|", "\\|").replace("\n", " ") for k, _ in cols]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
