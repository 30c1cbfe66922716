-- Facts about the catalog itself, one value per key (see clipfactory.catalog.meta). ``store`` is the root
-- of the blob store that the catalog's runs use: commands given only --catalog (lookup) find the media
-- and fingerprints of its sources there.
CREATE TABLE IF NOT EXISTS catalog_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR,
    updated_at TIMESTAMP
);
