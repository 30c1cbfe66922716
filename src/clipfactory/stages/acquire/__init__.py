"""Acquisition stages: bring media into the content-addressed blob store with its provenance."""
