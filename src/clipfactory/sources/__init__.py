"""Manifest adapters, vectorised ingest, cross-dataset dedup and overlap, missing media.

The public API:

* :func:`ingest_manifest` / :func:`ingest_manifests`: read manifests (Kinetics, HD-VILA-100M, Panda-70M,
  InternVid-10M, HD-VG-130M, WebVid-10M, ACAV100M, HowTo100M, YouTube-8M, Ego4D, OpenVid-1M, MSR-VTT, or
  any table through a column mapping) and owned media folders into the catalog, one transaction each.
* :func:`scan_owned`: source records for owned media files (content-addressed ids, declared licences).
* :func:`overlap_matrix`: shared sources between datasets. :func:`missing_sources`: sources without media.
* :func:`list_datasets`, :func:`list_sources`, :func:`list_errors`: what ingest recorded.

The dataset registry lives in :mod:`clipfactory.sources.registry`.
"""

from __future__ import annotations

from .adapters import FORMAT_NAMES, parse_mapping
from .ingest import IngestSummary, ingest_manifest, ingest_manifests
from .listing import list_datasets, list_errors, list_sources
from .missing import MissingReport, missing_sources
from .overlap import OverlapMatrix, overlap_matrix
from .owned import OwnedScan, ingest_owned, scan_owned, scan_owned_files
from .readers import RowError

__all__ = [
    "FORMAT_NAMES",
    "IngestSummary",
    "MissingReport",
    "OverlapMatrix",
    "OwnedScan",
    "RowError",
    "ingest_manifest",
    "ingest_manifests",
    "ingest_owned",
    "list_datasets",
    "list_errors",
    "list_sources",
    "missing_sources",
    "overlap_matrix",
    "parse_mapping",
    "scan_owned",
    "scan_owned_files",
]
