"""Owned media to versioned builds: acquisition (:mod:`.add`), export (:mod:`.export`), the main job
(:mod:`.pipeline`)."""
