-- Each event fans out to one delivery per sink, retried on its own; a
-- principal's events carry a gapless sequence (aggseq) for ordered sinks.
DROP INDEX credentials.outbox_pending;
ALTER TABLE credentials.outbox DROP COLUMN published_at;
ALTER TABLE credentials.outbox DROP COLUMN attempts;
ALTER TABLE credentials.outbox DROP COLUMN claimed_until;
ALTER TABLE credentials.outbox ADD COLUMN aggseq BIGINT;
ALTER TABLE credentials.outbox ADD COLUMN fanned_out_at TIMESTAMPTZ;
CREATE INDEX outbox_unfanned ON credentials.outbox (id) WHERE fanned_out_at IS NULL;

CREATE TABLE credentials.outbox_seq (
    principal_id TEXT PRIMARY KEY,
    last_seq     BIGINT NOT NULL
);

CREATE TABLE credentials.deliveries (
    event_id        UUID NOT NULL REFERENCES credentials.outbox (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    aggseq          BIGINT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     UUID,
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    PRIMARY KEY (event_id, sink)
);
CREATE INDEX deliveries_due ON credentials.deliveries (sink, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_order ON credentials.deliveries (sink, principal_id, aggseq) WHERE status = 'pending';
CREATE INDEX deliveries_delivered ON credentials.deliveries (delivered_at) WHERE status = 'delivered';

-- Standard Webhooks endpoints; the signing secret is sealed under the master key.
CREATE TABLE credentials.webhook_endpoints (
    name                   TEXT PRIMARY KEY,
    url                    TEXT NOT NULL,
    topics                 JSONB NOT NULL,
    secret_sealed          BYTEA NOT NULL,
    secret_key_id          TEXT NOT NULL,
    from_config            BOOLEAN NOT NULL,
    disabled_at            TIMESTAMPTZ,
    disabled_reason        TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
