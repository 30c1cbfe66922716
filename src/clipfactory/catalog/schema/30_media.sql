-- Builds: versioned WebDataset exports. A build is immutable; a takedown or a change writes a new version
-- that names the one it supersedes.
CREATE TABLE IF NOT EXISTS builds (
    build_id VARCHAR PRIMARY KEY,   -- <name>-v<version>
    name VARCHAR,
    version INTEGER,
    purpose VARCHAR,                -- the purpose profile the policy gate checked every source against
    status VARCHAR,                 -- complete | superseded
    created_at TIMESTAMP,
    out_dir VARCHAR,                -- folder holding the shards, index.parquet and build.json
    n_clips INTEGER,
    n_shards INTEGER,
    supersedes VARCHAR,             -- build_id of the previous version, if any
    config JSON                     -- shard size, content hash, run id, refused sources
);

-- One row per clip in a build: where it lies and the hashes of its three members.
CREATE TABLE IF NOT EXISTS build_members (
    build_id VARCHAR,
    clip_id VARCHAR,
    source_id VARCHAR,
    shard VARCHAR,                  -- shard file name, e.g. shard-000000.tar
    member_key VARCHAR,             -- WebDataset key: <key>.mp4, <key>.json, <key>.jpg
    mp4_sha256 VARCHAR,
    json_sha256 VARCHAR,
    jpg_sha256 VARCHAR,
    PRIMARY KEY (build_id, clip_id)
);
