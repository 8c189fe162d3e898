-- Events waiting for delivery, written in the same transaction as their change.
CREATE TABLE outbox (
    id           BLOB PRIMARY KEY NOT NULL,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
