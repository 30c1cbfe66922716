-- Fingerprints: per-frame PDQ hashes, clip and source descriptors, the index's bookkeeping,
-- tombstones and takedown journals. Owned by clipfactory.fingerprints (see docs/fingerprints.md,
-- docs/takedown.md).

-- Per-frame PDQ hashes loaded from the analysis pass's fingerprint blobs. Times are source times.
-- clip_id is NULL for frames of a source-level blob (a clip's frames are those inside its span) and
-- set for a blob that belongs to one clip only.
CREATE TABLE IF NOT EXISTS frame_hashes (
    source_id VARCHAR NOT NULL,
    clip_id VARCHAR,
    frame_index BIGINT,
    time_ms BIGINT,
    pdq BLOB,                    -- 32 bytes, 256 bits
    quality INTEGER,             -- PDQ quality 0-100; frames below 50 are never matched
    fingerprint_uri VARCHAR      -- lineage: the blob the row came from
);

-- Which fingerprint blobs are loaded (index_catalog is incremental and idempotent on this).
CREATE TABLE IF NOT EXISTS fp_indexed (
    source_id VARCHAR NOT NULL,
    clip_id VARCHAR,
    fingerprint_uri VARCHAR NOT NULL,
    n_frames INTEGER,
    n_usable INTEGER,
    time_shift_ms BIGINT,        -- added to the blob's times (clip-relative blobs)
    indexed_at TIMESTAMP
);

-- One fixed-length descriptor per source and per clip: the bitwise majority of its usable frame
-- hashes, plus the counts that match shares are computed from.
CREATE TABLE IF NOT EXISTS fp_descriptors (
    item_id VARCHAR NOT NULL,    -- source_id or clip_id
    kind VARCHAR NOT NULL,       -- source | clip
    source_id VARCHAR NOT NULL,
    clip_id VARCHAR,
    start_ms BIGINT,
    end_ms BIGINT,
    n_frames INTEGER,
    n_usable INTEGER,
    descriptor BLOB,             -- 32 bytes, NULL when no usable frame
    updated_at TIMESTAMP
);

-- PDQ of crop variants of every shot thumbnail (see fingerprints.crops): candidates for cropped copies.
CREATE TABLE IF NOT EXISTS fp_variants (
    source_id VARCHAR NOT NULL,
    thumb_uri VARCHAR NOT NULL,
    time_ms BIGINT,              -- the thumbnail's source time (middle of its shot)
    variant INTEGER,             -- number in fingerprints.crops.CROP_VARIANTS
    crop_x DOUBLE,               -- share cropped from the left and from the right
    crop_y DOUBLE,               -- share cropped from the top and from the bottom
    pdq BLOB,
    quality INTEGER,
    indexed_at TIMESTAMP
);

-- generation: bumped whenever frame_hashes changes; the persisted index records the generation it
-- reflects and is rebuilt or patched when they differ.
CREATE TABLE IF NOT EXISTS fp_index_meta (key VARCHAR PRIMARY KEY, value VARCHAR);

-- A tombstone makes ingest and acquisition refuse the same or re-encoded content again.
CREATE TABLE IF NOT EXISTS tombstones (
    tombstone_id VARCHAR PRIMARY KEY,
    source_id VARCHAR,
    content_sha256 VARCHAR,      -- of the source media, when known
    pdq BLOB,                    -- n_pdq usable frame hashes, 32 bytes each, concatenated, in time order
    n_pdq INTEGER,
    pdq_time_ms INTEGER[],       -- the source time of each hash
    url VARCHAR,
    uploader VARCHAR,
    reason VARCHAR,
    takedown_id VARCHAR,
    created_at TIMESTAMP
);

-- Every exact content hash a tombstone covers: the source file, its clips, thumbnails, shard members.
CREATE TABLE IF NOT EXISTS tombstone_hashes (
    tombstone_id VARCHAR NOT NULL,
    kind VARCHAR,                -- source | clip | thumb | member_mp4 | member_json | member_jpg | blob
    sha256 VARCHAR NOT NULL
);

-- One row per takedown: its steps are journaled so that an interrupted takedown resumes.
CREATE TABLE IF NOT EXISTS takedowns (
    takedown_id VARCHAR PRIMARY KEY,
    status VARCHAR,              -- running | done | failed
    step VARCHAR,                -- the last finished step
    targets JSON,                -- the resolved source ids and how they were named
    reason VARCHAR,
    journal_path VARCHAR,
    receipt_path VARCHAR,
    receipt_sha256 VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    error VARCHAR
);
