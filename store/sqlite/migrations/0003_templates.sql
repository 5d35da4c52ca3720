-- Templates registered by any process, resolved by every process through
-- its template cache. A registered version never changes: digest identifies
-- its definition (template.Digest), and a put of the same key with another
-- digest is refused. Times are Unix microseconds.

CREATE TABLE templates (
    namespace     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    source        BLOB    NOT NULL, -- the document as registered
    source_name   TEXT    NOT NULL, -- its file path, or ''
    digest        TEXT    NOT NULL,
    registered_at INTEGER NOT NULL,
    registered_by TEXT    NOT NULL,
    PRIMARY KEY (namespace, name, version)
) WITHOUT ROWID;
