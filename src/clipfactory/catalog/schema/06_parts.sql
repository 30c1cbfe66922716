-- Parquet part files an executor has loaded, by their path under the parts folder (``<run_id>/<name>``).
-- A part is recorded in the same transaction that loads it, so a writer that dies after the commit and
-- before deleting the file does not load it a second time when it starts again.
CREATE TABLE IF NOT EXISTS loaded_parts (
    part VARCHAR PRIMARY KEY,
    run_id VARCHAR,
    loaded_at TIMESTAMP
);
