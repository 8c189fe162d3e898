-- Each event fans out to one delivery per sink, retried on its own; a
-- principal's events carry a gapless sequence (aggseq) for ordered sinks.
DROP INDEX outbox_pending;
ALTER TABLE outbox DROP COLUMN published_at;
ALTER TABLE outbox DROP COLUMN attempts;
ALTER TABLE outbox ADD COLUMN aggseq INTEGER;
ALTER TABLE outbox ADD COLUMN fanned_out_at TEXT;
CREATE INDEX outbox_unfanned ON outbox (id) WHERE fanned_out_at IS NULL;

CREATE TABLE outbox_seq (
    principal_id TEXT PRIMARY KEY NOT NULL,
    last_seq     INTEGER NOT NULL
) STRICT;

CREATE TABLE deliveries (
    event_id        BLOB NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    aggseq          INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner     BLOB,
    lease_until     TEXT,
    last_error      TEXT,
    delivered_at    TEXT,
    PRIMARY KEY (event_id, sink)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (sink, principal_id, aggseq) WHERE status = 'pending';
CREATE INDEX deliveries_delivered ON deliveries (delivered_at) WHERE status = 'delivered';

-- Standard Webhooks endpoints; the signing secret is sealed under the master key.
CREATE TABLE webhook_endpoints (
    name                   TEXT PRIMARY KEY NOT NULL,
    url                    TEXT NOT NULL,
    topics                 TEXT NOT NULL,
    secret_sealed          BLOB NOT NULL,
    secret_key_id          TEXT NOT NULL,
    from_config            INTEGER NOT NULL,
    disabled_at            TEXT,
    disabled_reason        TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
) STRICT;
