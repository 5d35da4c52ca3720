-- Templates registered by any process, resolved by every process through
-- its template cache. A registered version never changes: digest identifies
-- its definition (template.Digest), and a put of the same key with another
-- digest is refused. source is bytea: the document comes back byte for byte.

CREATE TABLE templates (
    namespace     text        NOT NULL,
    name          text        NOT NULL,
    version       text        NOT NULL,
    source        bytea       NOT NULL, -- the document as registered
    source_name   text        NOT NULL, -- its file path, or ''
    digest        text        NOT NULL,
    registered_at timestamptz NOT NULL,
    registered_by text        NOT NULL,
    PRIMARY KEY (namespace, name, version)
);
